//! The router's truth tables.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rstest::rstest;

use super::*;
use crate::balance::{RoundRobin, ZonePreference};
use crate::classify::{Dialect, explain};
use crate::node_id::NodeId;
use crate::token::{CausalToken, Lsn, PgPosition, ReplayPosition};
use crate::topology::Lag;

const SYS: u64 = 7_311_234_567_890_123_456;

fn at(lsn: u64) -> ReplayPosition {
    ReplayPosition::from(PgPosition::new(SYS, 1, Lsn::new(lsn)))
}

fn replica(id: u16) -> crate::topology::NodeBuilder {
    Node::builder(NodeId::new(id), Role::Replica)
}

/// Node 0 primary; 1 fresh (position 300, no lag); 2 behind (position 100, 200 bytes, 2 s).
fn topo(situation: &str) -> Topology {
    let p0 =
        Node::builder(NodeId::new(0), Role::Primary).position(at(300)).lag(Lag::zero()).build();
    let r1 = replica(1).position(at(300)).lag(Lag::zero());
    let r2 = replica(2).position(at(100)).lag(Lag::new(Some(200), Some(Duration::from_secs(2))));
    let b = Topology::builder();
    let b = match situation {
        "healthy" => b.node(p0).node(r1.build()).node(r2.build()),
        "down" => {
            b.node(p0).node(r1.health(Health::Down).build()).node(r2.health(Health::Down).build())
        }
        "suspect" => b
            .node(p0)
            .node(r1.health(Health::Suspect).build())
            .node(r2.health(Health::Down).build()),
        "mixed" => b.node(p0).node(r1.health(Health::Suspect).build()).node(r2.build()),
        "no primary" => b.node(r1.build()).node(r2.build()),
        "split" => {
            b.node(p0).node(Node::builder(NodeId::new(3), Role::Primary).build()).node(r1.build())
        }
        "primary down" => b
            .node(Node::builder(NodeId::new(0), Role::Primary).health(Health::Down).build())
            .node(r1.build()),
        "empty" => b,
        other => panic!("unknown situation {other}"),
    };
    b.build().unwrap()
}

fn outcome(r: Result<Route, RouteError>) -> String {
    match r {
        Err(e) => format!("err: {e}"),
        Ok(route) => {
            let mut s = format!(
                "{} {:?} {:?}",
                route.target(),
                route.reason(),
                route.fallbacks().iter().map(|n| n.index()).collect::<Vec<_>>()
            );
            if let Some(w) = route.wait_candidate() {
                let _ = write!(s, " wait={w}");
            }
            s
        }
    }
}

fn token(lsn: u64, timeline: u32) -> Consistency {
    Consistency::ReadYourWrites(CausalToken::new(PgPosition::new(SYS, timeline, Lsn::new(lsn))))
}

#[derive(Clone, Copy, Debug)]
enum C {
    Eventual,
    Strong,
    Time(u64),
    Bytes(u64),
    Ryw(u64),
    RywOtherTimeline,
}

impl C {
    fn get(self) -> Consistency {
        match self {
            C::Eventual => Consistency::Eventual,
            C::Strong => Consistency::Strong,
            C::Time(ms) => {
                Consistency::BoundedStaleness(Staleness::time(Duration::from_millis(ms)))
            }
            C::Bytes(n) => Consistency::BoundedStaleness(Staleness::bytes(n)),
            C::Ryw(lsn) => token(lsn, 1),
            C::RywOtherTimeline => token(100, 2),
        }
    }
}

const READ: &str = r#"SELECT "t"."id" FROM "t""#;
const WRITE: &str = r#"UPDATE "t" SET "a" = $1"#;
const REPLICA_HINT: &str = r#"/*rwsplit:replica*/ SELECT "t"."id" FROM "t""#;
const PRIMARY_HINT: &str = r#"SELECT "t"."id" FROM "t" /*rwsplit:primary*/"#;

/// (statement × consistency × override × transaction × catch-up × topology) → route.
#[rstest]
// Writes: always the primary, whatever else is asked.
#[case(WRITE, C::Eventual, None, Transaction::None, CatchUp::Primary, "healthy", "0 Write []")]
#[case(
    WRITE,
    C::Eventual,
    Some(Target::Replica),
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "0 Write []"
)]
#[case(
    WRITE,
    C::Eventual,
    Some(Target::Node(NodeId::new(1))),
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "0 Write []"
)]
#[case(WRITE, C::Ryw(100), None, Transaction::ReadOnly, CatchUp::Wait, "healthy", "0 Write []")]
#[case(WRITE, C::Eventual, None, Transaction::None, CatchUp::Primary, "down", "0 Write []")]
#[case(WRITE, C::Eventual, None, Transaction::None, CatchUp::Primary, "primary down", "0 Write []")]
#[case(
    WRITE,
    C::Eventual,
    None,
    Transaction::None,
    CatchUp::Primary,
    "no primary",
    "err: no primary in the topology"
)]
#[case(
    WRITE,
    C::Eventual,
    None,
    Transaction::None,
    CatchUp::Primary,
    "split",
    "err: 2 nodes claim the primary role, refusing to pick one"
)]
#[case(
    WRITE,
    C::Eventual,
    None,
    Transaction::None,
    CatchUp::Primary,
    "empty",
    "err: no primary in the topology"
)]
#[case(
    PRIMARY_HINT,
    C::Eventual,
    Some(Target::Replica),
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "0 Write []"
)]
// Eventual reads.
#[case(
    READ,
    C::Eventual,
    None,
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "1 Balanced [2, 0]"
)]
#[case(
    READ,
    C::Eventual,
    None,
    Transaction::None,
    CatchUp::Primary,
    "down",
    "0 NoEligibleReplica []"
)]
#[case(READ, C::Eventual, None, Transaction::None, CatchUp::Primary, "suspect", "1 Balanced [0]")]
#[case(READ, C::Eventual, None, Transaction::None, CatchUp::Primary, "mixed", "2 Balanced [1, 0]")]
#[case(
    READ,
    C::Eventual,
    None,
    Transaction::None,
    CatchUp::Primary,
    "no primary",
    "1 Balanced [2]"
)]
#[case(READ, C::Eventual, None, Transaction::None, CatchUp::Primary, "split", "1 Balanced []")]
#[case(
    READ,
    C::Eventual,
    None,
    Transaction::None,
    CatchUp::Primary,
    "primary down",
    "1 Balanced [0]"
)]
#[case(
    READ,
    C::Eventual,
    None,
    Transaction::None,
    CatchUp::Primary,
    "empty",
    "err: no eligible node for this read: there is no replica; no node is the primary now"
)]
// Transactions.
#[case(
    READ,
    C::Eventual,
    None,
    Transaction::ReadWrite,
    CatchUp::Primary,
    "healthy",
    "0 Transaction []"
)]
#[case(
    READ,
    C::Eventual,
    Some(Target::Replica),
    Transaction::ReadWrite,
    CatchUp::Primary,
    "healthy",
    "0 Transaction []"
)]
#[case(
    READ,
    C::Eventual,
    None,
    Transaction::ReadOnly,
    CatchUp::Primary,
    "healthy",
    "1 Balanced [2, 0]"
)]
#[case(READ, C::Strong, None, Transaction::ReadOnly, CatchUp::Primary, "healthy", "0 Strong []")]
// Overrides and hints.
#[case(
    READ,
    C::Eventual,
    Some(Target::Primary),
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "0 PrimaryRequested []"
)]
#[case(
    READ,
    C::Eventual,
    Some(Target::Primary),
    Transaction::None,
    CatchUp::Primary,
    "split",
    "err: 2 nodes claim the primary role, refusing to pick one"
)]
#[case(
    PRIMARY_HINT,
    C::Eventual,
    None,
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "0 Write []"
)]
#[case(
    READ,
    C::Strong,
    Some(Target::Replica),
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "1 ReplicaRequested [2, 0]"
)]
#[case(
    REPLICA_HINT,
    C::Strong,
    None,
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "1 ReplicaRequested [2, 0]"
)]
#[case(
    REPLICA_HINT,
    C::Ryw(400),
    None,
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "1 ReplicaRequested [2, 0]"
)]
#[case(
    REPLICA_HINT,
    C::Time(1),
    None,
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "1 ReplicaRequested [2, 0]"
)]
#[case(
    READ,
    C::Eventual,
    Some(Target::Replica),
    Transaction::None,
    CatchUp::Primary,
    "down",
    "0 NoEligibleReplica []"
)]
#[case(
    READ,
    C::Eventual,
    Some(Target::Primary),
    Transaction::None,
    CatchUp::Primary,
    "no primary",
    "err: no primary in the topology"
)]
#[case(
    READ,
    C::Strong,
    Some(Target::Node(NodeId::new(2))),
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "2 NodeRequested [0]"
)]
#[case(
    READ,
    C::Eventual,
    Some(Target::Node(NodeId::new(0))),
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "0 NodeRequested []"
)]
#[case(
    READ,
    C::Eventual,
    Some(Target::Node(NodeId::new(2))),
    Transaction::None,
    CatchUp::Primary,
    "down",
    "2 NodeRequested [0]"
)]
#[case(
    READ,
    C::Eventual,
    Some(Target::Node(NodeId::new(9))),
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "err: node 9 is not in the topology"
)]
// Strong.
#[case(READ, C::Strong, None, Transaction::None, CatchUp::Primary, "healthy", "0 Strong []")]
#[case(
    READ,
    C::Strong,
    None,
    Transaction::None,
    CatchUp::Primary,
    "no primary",
    "err: no primary in the topology"
)]
#[case(
    READ,
    C::Strong,
    None,
    Transaction::None,
    CatchUp::Primary,
    "split",
    "err: 2 nodes claim the primary role, refusing to pick one"
)]
// Bounded staleness: unknown or excessive lag excludes.
#[case(READ, C::Time(1000), None, Transaction::None, CatchUp::Primary, "healthy", "1 Balanced [0]")]
#[case(
    READ,
    C::Time(2000),
    None,
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "1 Balanced [2, 0]"
)]
#[case(READ, C::Bytes(100), None, Transaction::None, CatchUp::Primary, "healthy", "1 Balanced [0]")]
#[case(
    READ,
    C::Bytes(100),
    None,
    Transaction::None,
    CatchUp::Primary,
    "down",
    "0 NoEligibleReplica []"
)]
#[case(
    READ,
    C::Bytes(100),
    None,
    Transaction::None,
    CatchUp::Primary,
    "no primary",
    "1 Balanced []"
)]
// Read your writes.
#[case(READ, C::Ryw(300), None, Transaction::None, CatchUp::Primary, "healthy", "1 CaughtUp [0]")]
#[case(
    READ,
    C::Ryw(100),
    None,
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "1 CaughtUp [2, 0]"
)]
#[case(
    READ,
    C::Ryw(400),
    None,
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "0 NotCaughtUp [] wait=1"
)]
#[case(
    READ,
    C::Ryw(400),
    None,
    Transaction::None,
    CatchUp::Wait,
    "healthy",
    "1 AwaitCatchUp [0] wait=1"
)]
#[case(
    READ,
    C::Ryw(400),
    None,
    Transaction::None,
    CatchUp::Wait,
    "mixed",
    "2 AwaitCatchUp [0] wait=2"
)]
#[case(READ, C::Ryw(400), None, Transaction::None, CatchUp::Wait, "down", "0 NotCaughtUp []")]
#[case(
    READ,
    C::Ryw(400),
    None,
    Transaction::None,
    CatchUp::Wait,
    "no primary",
    "1 AwaitCatchUp [] wait=1"
)]
#[case(
    READ,
    C::Ryw(400),
    None,
    Transaction::None,
    CatchUp::Primary,
    "no primary",
    "err: no primary in the topology"
)]
#[case(
    READ,
    C::RywOtherTimeline,
    None,
    Transaction::None,
    CatchUp::Primary,
    "healthy",
    "0 NotCaughtUp []"
)]
#[case(
    READ,
    C::RywOtherTimeline,
    None,
    Transaction::None,
    CatchUp::Wait,
    "healthy",
    "0 NotCaughtUp []"
)]
#[case(READ, C::Ryw(200), None, Transaction::None, CatchUp::Primary, "suspect", "1 CaughtUp [0]")]
#[case(READ, C::Ryw(200), None, Transaction::None, CatchUp::Primary, "split", "1 CaughtUp []")]
fn truth_table(
    #[case] sql: &str,
    #[case] consistency: C,
    #[case] target: Option<Target>,
    #[case] transaction: Transaction,
    #[case] catch_up: CatchUp,
    #[case] situation: &str,
    #[case] want: &str,
) {
    let router = Router::new(RouterConfig::default().balancer(RoundRobin::default()));
    let c = explain(sql, Dialect::Postgres);
    let consistency = consistency.get();
    let mut ctx = RouteContext::new(&c, Instant::now())
        .with_consistency(&consistency)
        .with_transaction(transaction)
        .with_catch_up(catch_up);
    if let Some(t) = target {
        ctx = ctx.with_target(t);
    }
    assert_eq!(
        outcome(router.route(&topo(situation), &ctx)),
        want,
        "{sql} {consistency:?} {target:?} {transaction:?} {situation}"
    );
}

fn read_ctx(now: Instant) -> RouteContext<'static> {
    RouteContext::for_access(Access::Read, now)
}

#[rstest]
#[case(PrimaryReads::Never, "healthy", "1 Balanced [2]")]
#[case(
    PrimaryReads::Never,
    "down",
    "err: no eligible node for this read: of 2 replicas, 2 are down (failing probes, fenced or \
     joining); the primary may not serve reads a replica could (primary_reads = never)"
)]
#[case(PrimaryReads::Fallback, "down", "0 NoEligibleReplica []")]
#[case(PrimaryReads::Include, "healthy", "0 PrimaryBalanced [1, 2]")]
#[case(PrimaryReads::Include, "down", "0 PrimaryBalanced []")]
#[case(PrimaryReads::Include, "primary down", "1 Balanced [0]")]
fn primary_reads(#[case] mode: PrimaryReads, #[case] situation: &str, #[case] want: &str) {
    let router = Router::new(RouterConfig::default().primary_reads(mode));
    assert_eq!(outcome(router.route(&topo(situation), &read_ctx(Instant::now()))), want);
}

#[test]
fn primary_reads_never_still_serves_what_needs_the_primary() {
    let router = Router::new(RouterConfig::default().primary_reads(PrimaryReads::Never));
    let ryw = token(400, 1);
    let ctx = read_ctx(Instant::now()).with_consistency(&ryw);
    assert_eq!(outcome(router.route(&topo("healthy"), &ctx)), "0 NotCaughtUp [] wait=1");
    let ryw = token(300, 1);
    let ctx = read_ctx(Instant::now()).with_consistency(&ryw);
    assert_eq!(outcome(router.route(&topo("healthy"), &ctx)), "1 CaughtUp [0]");
}

#[test]
fn read_only_transactions_can_be_kept_on_the_primary() {
    let router = Router::new(RouterConfig::default().read_only_transactions_on_replicas(false));
    let ctx = read_ctx(Instant::now()).with_transaction(Transaction::ReadOnly);
    assert_eq!(outcome(router.route(&topo("healthy"), &ctx)), "0 Transaction []");
}

#[test]
fn max_replica_lag_bans_known_laggards_only() {
    let router = Router::new(
        RouterConfig::default().max_replica_lag(Staleness::time(Duration::from_secs(1))),
    );
    let t = topo("healthy").to_builder().node(replica(3).build()).build().unwrap();
    // Replica 2 (2 s behind) is out; replica 3 (unknown lag) stays.
    assert_eq!(outcome(router.route(&t, &read_ctx(Instant::now()))), "1 Balanced [3, 0]");
}

fn analytics_topology() -> Topology {
    topo("healthy")
        .to_builder()
        .node(replica(4).tag("analytics").lag(Lag::zero()).build())
        .node(replica(5).tag("analytics").lag(Lag::zero()).build())
        .build()
        .unwrap()
}

#[rstest]
#[case("SELECT count(*) FROM events", &[], "4 Balanced [5, 0]")]
#[case("SELECT count(*) FROM \"public\".\"EVENTS\" e JOIN users u ON true", &[], "4 Balanced [5, 0]")]
#[case("SELECT * FROM users", &[], "1 Balanced [2, 0]")]
#[case("SELECT * FROM users", &["analytics"], "4 Balanced [5, 1, 2, 0]")]
#[case("/*rwsplit:tag=analytics*/ SELECT * FROM users", &[], "4 Balanced [5, 1, 2, 0]")]
#[case("SELECT * FROM billing", &[], "0 Rule []")]
#[case("SELECT * FROM events FOR UPDATE", &[], "0 Write []")]
fn rules_route_by_table_and_tag(#[case] sql: &str, #[case] tags: &[&str], #[case] want: &str) {
    let router = Router::new(
        RouterConfig::default()
            .rule(TableRule::only_tagged(["events"], "analytics"))
            .rule(TableRule::primary(["billing"]))
            .rule(TagRule::prefer_tagged("analytics", "analytics"))
            .dedicated_tag("analytics"),
    );
    let c = explain(sql, Dialect::Postgres);
    let ctx = RouteContext::new(&c, Instant::now())
        .with_statement(sql, Dialect::Postgres)
        .with_tags(tags);
    assert_eq!(outcome(router.route(&analytics_topology(), &ctx)), want, "{sql}");
}

#[test]
fn an_only_tagged_group_that_is_down_falls_back_to_the_primary() {
    let router = Router::new(RouterConfig::default().rule(TagRule::only_tagged("olap", "olap")));
    let t = topo("healthy")
        .to_builder()
        .node(replica(4).tag("olap").health(Health::Down).build())
        .build()
        .unwrap();
    let ctx = read_ctx(Instant::now()).with_tags(&["olap"]);
    assert_eq!(outcome(router.route(&t, &ctx)), "0 NoEligibleReplica []");
}

#[test]
fn zone_preference_keeps_reads_local() {
    let t = Topology::builder()
        .node(Node::builder(NodeId::new(0), Role::Primary).zone("a").build())
        .node(replica(1).zone("b").build())
        .node(replica(2).zone("a").build())
        .node(replica(3).zone("b").build())
        .build()
        .unwrap();
    let router = Router::new(
        RouterConfig::default().balancer(ZonePreference::new("a", RoundRobin::default())),
    );
    for _ in 0..3 {
        assert_eq!(outcome(router.route(&t, &read_ctx(Instant::now()))), "2 Balanced [1, 3, 0]");
    }
}

#[test]
fn round_robin_rotates_targets_and_fallbacks() {
    let router = Router::default();
    let t = topo("healthy");
    let got: Vec<String> =
        (0..3).map(|_| outcome(router.route(&t, &read_ctx(Instant::now())))).collect();
    assert_eq!(got, ["1 Balanced [2, 0]", "2 Balanced [1, 0]", "1 Balanced [2, 0]"]);
}

#[test]
fn route_accessors() {
    let route = Router::default().route(&topo("healthy"), &read_ctx(Instant::now())).unwrap();
    assert_eq!(route.role(), Role::Replica);
    assert!(!route.is_primary() && !route.needs_catch_up());
    assert_eq!(route.candidates().map(NodeId::index).collect::<Vec<_>>(), [1, 2, 0]);
    assert!(format!("{route:?}").contains("fallbacks: [NodeId(2), NodeId(0)]"));
    assert_eq!(RouteReason::AwaitCatchUp.to_string(), "await catch-up");
    assert_eq!(RouteReason::AwaitCatchUp.code(), "await_catch_up");
    assert!(RouteError::NoPrimary.is_transient());
    assert!(!RouteError::UnknownNode { id: NodeId::new(1) }.is_transient());
    assert!(format!("{:?}", Router::default().config()).contains("RoundRobin"));
}

#[test]
fn thirty_two_nodes_fit() {
    let mut b = Topology::builder().node(Node::builder(NodeId::new(0), Role::Primary).build());
    for i in 1..32 {
        b = b.node(replica(i).build());
    }
    let route = Router::default().route(&b.build().unwrap(), &read_ctx(Instant::now())).unwrap();
    assert_eq!(route.fallbacks().len(), 31);
}

/// A bounded read is served by a replica only while it is provably within the bound
/// at the instant the read is routed. Replica 1 was proven fresh at `t` (it had the primary's
/// position seen then) and nothing was learnt since (the primary went quiet or away); replica 2
/// is 2 s behind. Both paths of the router agree: the plain one, and the full one that a lag
/// ban takes, which must not ban replica 1 for the silence (its measured lag is zero).
#[rstest]
#[case::plain(false, 100, "1 Balanced [0]")]
#[case::plain_past_the_bound(false, 600, "0 NoEligibleReplica []")]
#[case::with_a_lag_ban(true, 100, "1 Balanced [0]")]
#[case::with_a_lag_ban_past_the_bound(true, 600, "0 NoEligibleReplica []")]
fn a_bounded_read_needs_a_replica_proven_fresh_within_the_bound_now(
    #[case] ban: bool,
    #[case] after_ms: u64,
    #[case] want: &str,
) {
    let t = Instant::now();
    let topology = topo("healthy")
        .to_builder()
        .node(replica(1).position(at(300)).lag(Lag::zero().with_fresh_as_of(t)).build())
        .build()
        .unwrap();
    let mut config = RouterConfig::default();
    if ban {
        config = config.max_replica_lag(Staleness::time(Duration::from_millis(300)));
    }
    let router = Router::new(config);
    let bounded = Consistency::BoundedStaleness(Staleness::time(Duration::from_millis(500)));
    let ctx = read_ctx(t + Duration::from_millis(after_ms)).with_consistency(&bounded);
    assert_eq!(outcome(router.route(&topology, &ctx)), want);
    // Eventual reads are not bound by it: replicas serve them however long the silence (with
    // the ban, replica 1 only: replica 2 is measured 2 s behind).
    let later = read_ctx(t + Duration::from_secs(60));
    let eventual = router.route(&topology, &later).unwrap();
    assert_eq!(eventual.reason(), RouteReason::Balanced, "eventual read");
    if ban {
        assert_eq!(eventual.target(), NodeId::new(1));
    }
}

/// Each reason's code is its own, `snake_case`, and its text is not a code: labels carry
/// codes, logs the text.
#[test]
fn route_reasons_have_unique_snake_case_codes() {
    let mut seen = std::collections::BTreeSet::new();
    for r in RouteReason::ALL {
        let code = r.code();
        assert!(seen.insert(code), "duplicate code {code}");
        assert!(
            !code.is_empty()
                && code.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && !code.starts_with('_')
                && !code.ends_with('_'),
            "{code:?} is not snake_case"
        );
        assert_eq!(r.to_string(), r.as_str());
    }
}
