//! Proof that the hot paths do not allocate: a counting global allocator observes
//! classification (every dialect, with hints and tags), routing (every balancer, every
//! consistency level, rules), causal-token checks, health updates and load tracking.
// A global allocator is an `unsafe impl GlobalAlloc`; this test file is the only place in the
// workspace allowed to use `unsafe` (the workspace lint is `deny`, not `forbid`, for this, and
// the tidy test in xtask/src/tidy.rs names this file as the one exception).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rwsplit_core::{
    Access, Balancer, CatchUp, CausalToken, Classifier, Consistency, Dialect, Health, HealthPolicy,
    HealthTracker, Lag, LeastOutstanding, LowestLag, Lsn, Node, NodeId, NodeLoad, PgPosition,
    PowerOfTwoEwma, Random, ReplayPosition, Role, RoundRobin, RouteContext, Router, RouterConfig,
    SharedTopology, Staleness, TableRule, TagRule, Target, Topology, Transaction,
    WeightedRoundRobin, ZonePreference, classify, explain, tables,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only the measuring thread counts: the test harness allocates on other threads.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns how many allocations it made on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

const SYS: u64 = 7_311_234_567_890_123_456;

const STATEMENTS: &[(&str, Dialect)] = &[
    (
        r#"SELECT "user"."id", "user"."name" FROM "user" WHERE "user"."id" = $1 LIMIT $2"#,
        Dialect::Postgres,
    ),
    (r#"INSERT INTO "user" ("name") VALUES ($1) RETURNING "id", "name""#, Dialect::Postgres),
    (
        r#"WITH "gone" AS (DELETE FROM "t" WHERE "x" = $1 RETURNING *) SELECT * FROM "gone""#,
        Dialect::Postgres,
    ),
    (r#"SELECT "id" FROM "t" FOR NO KEY UPDATE SKIP LOCKED"#, Dialect::Postgres),
    ("SELECT nextval('s'), $$x$$, E'\\'', /* a /* b */ */ 1", Dialect::Postgres),
    ("EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t; COPY (SELECT 1) TO STDOUT", Dialect::Postgres),
    ("/* rwsplit:replica, tag=analytics */ SELECT count(*) FROM events", Dialect::Postgres),
    ("SELECT 1 /*rwsplit:primary*/", Dialect::Postgres),
    ("SELECT `user`.`id` FROM `user` WHERE `user`.`id` = ? LOCK IN SHARE MODE", Dialect::MySql),
    ("SELECT 'a\\'b', @x := 1 # comment\n", Dialect::MySql),
    ("/*!40101 SET NAMES utf8 */; SELECT GET_LOCK('l', 1)", Dialect::MySql),
    ("INSERT INTO `user` (`name`) VALUES (?) ON DUPLICATE KEY UPDATE `id` = `id`", Dialect::MySql),
    ("SELECT [id] FROM [t] WHERE a = :a", Dialect::Sqlite),
    ("SELECT 'unterminated", Dialect::Sqlite),
];

fn topology() -> Topology {
    let at = |lsn| ReplayPosition::from(PgPosition::new(SYS, 1, Lsn::new(lsn)));
    let mut b = Topology::builder()
        .node(Node::builder(NodeId::new(0), Role::Primary).position(at(900)).build());
    for i in 1..=8u16 {
        let mut n = Node::builder(NodeId::new(i), Role::Replica)
            .zone(if i % 2 == 0 { "a" } else { "b" })
            .weight(u32::from(i))
            .position(at(u64::from(i) * 100))
            .lag(Lag::new(Some(u64::from(9 - i)), Some(Duration::from_millis(u64::from(9 - i)))));
        if i == 8 {
            n = n.tag("analytics");
        }
        if i == 7 {
            n = n.health(Health::Suspect);
        }
        b = b.node(n.build());
    }
    b.build().unwrap()
}

#[test]
fn hot_paths_do_not_allocate() {
    // Everything is built before counting starts.
    let now = Instant::now();
    let custom = Classifier::default().with_write_functions(["audit_*", "touch"]);
    let shared = SharedTopology::new(topology());
    let balancers: Vec<Box<dyn Balancer>> = vec![
        Box::new(RoundRobin::default()),
        Box::new(WeightedRoundRobin::default()),
        Box::new(Random::with_seed(5)),
        Box::new(LeastOutstanding::default()),
        Box::new(PowerOfTwoEwma::with_seed(5)),
        Box::new(LowestLag::default()),
        Box::new(ZonePreference::new("a", PowerOfTwoEwma::with_seed(5))),
    ];
    let routers: Vec<Router> = balancers
        .into_iter()
        .map(|b| {
            Router::new(
                RouterConfig::default()
                    .balancer(b)
                    .rule(TableRule::only_tagged(["events"], "analytics"))
                    .rule(TagRule::primary("billing"))
                    .max_replica_lag(Staleness::bytes(1000)),
            )
        })
        .collect();
    let consistencies = [
        Consistency::Eventual,
        Consistency::Strong,
        Consistency::BoundedStaleness(Staleness::time(Duration::from_millis(4)).and_bytes(4)),
        Consistency::ReadYourWrites(CausalToken::new(PgPosition::new(SYS, 1, Lsn::new(500)))),
        Consistency::ReadYourWrites(CausalToken::new(PgPosition::new(SYS, 1, Lsn::new(5000)))),
        Consistency::ReadYourWrites(CausalToken::new(PgPosition::new(SYS, 2, Lsn::new(5)))),
    ];
    let tokens: Vec<(CausalToken, ReplayPosition)> = [
        ("pg:1:1:1:0-10", "pg:1:1:1:0-20"),
        ("mariadb:1:0-1-208.1-2-5", "mariadb:1:0-1-300.1-2-4"),
        ("pg:1:1:1:0-10", "mariadb:1:"),
    ]
    .iter()
    .map(|(t, p)| (t.parse().unwrap(), p.parse().unwrap()))
    .collect();
    let mut trackers = [
        HealthTracker::new(Role::Replica, HealthPolicy::default()),
        HealthTracker::new(Role::Primary, HealthPolicy::default()),
    ];
    let load = Arc::new(NodeLoad::default());
    let tags: [&str; 1] = ["billing"];

    let mut exercise = |round: u32| {
        let now = now + Duration::from_millis(u64::from(round));
        for &(sql, d) in STATEMENTS {
            black_box(classify(sql, d));
            black_box(explain(sql, d));
            black_box(custom.explain(sql, d));
            black_box(tables(sql, d).count());
        }
        let topo = shared.load();
        for router in &routers {
            for consistency in &consistencies {
                for (sql, d) in STATEMENTS {
                    let c = explain(sql, *d);
                    for catch_up in [CatchUp::Primary, CatchUp::Wait] {
                        let ctx = RouteContext::new(&c, now)
                            .with_statement(sql, *d)
                            .with_consistency(consistency)
                            .with_catch_up(catch_up);
                        black_box(router.route(&topo, &ctx).ok());
                    }
                }
                let ctx = RouteContext::for_access(Access::Read, now)
                    .with_consistency(consistency)
                    .with_tags(&tags);
                black_box(router.route(&topo, &ctx).ok());
                for target in [Target::Primary, Target::Replica, Target::Node(NodeId::new(3))] {
                    let ctx = RouteContext::for_access(Access::Read, now)
                        .with_consistency(consistency)
                        .with_target(target);
                    black_box(router.route(&topo, &ctx).ok());
                }
                let ctx = RouteContext::for_access(Access::Read, now)
                    .with_transaction(Transaction::ReadOnly);
                black_box(router.route(&topo, &ctx).ok());
            }
        }
        for (token, pos) in &tokens {
            black_box(token.is_satisfied_by(pos));
            black_box(token.shortfall(pos));
        }
        for t in &mut trackers {
            black_box(t.record_failure(now));
            black_box(t.mark_suspect(now));
            black_box(t.record_success(now + Duration::from_secs(600)));
            black_box(t.probe_due(now));
        }
        let guard = load.start(now);
        guard.finish(now + Duration::from_micros(300));
        load.record_latency(Duration::from_millis(1), now);
        black_box(load.peak_ewma(now));
    };

    // Warm up once: lazily initialised thread-locals (arc-swap's debt list) may allocate once.
    exercise(0);
    let n = allocations(|| {
        for round in 1..=20 {
            exercise(round);
        }
    });
    assert_eq!(n, 0, "the hot paths allocated {n} times");
    // The counter itself works.
    assert!(allocations(|| drop(black_box(vec![1u8; 16]))) >= 1);
}
