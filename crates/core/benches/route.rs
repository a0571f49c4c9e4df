//! Routing cost: one decision over a primary and 8 replicas, for every balancer, plus
//! causal-token checks.
//!
//! `cargo bench -p rwsplit-core --bench route` (or `cargo xtask bench core`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rwsplit_core::{
    Access, Balancer, CausalToken, Consistency, Lag, LeastOutstanding, LowestLag, Lsn,
    MariaDbPosition, Node, NodeId, PgPosition, PowerOfTwoEwma, Random, ReplayPosition, Role,
    RoundRobin, RouteContext, Router, RouterConfig, Staleness, Topology, WeightedRoundRobin,
    ZonePreference,
};

const SYS: u64 = 7_311_234_567_890_123_456;

fn topology(now: Instant) -> Topology {
    let at = |lsn| ReplayPosition::from(PgPosition::new(SYS, 1, Lsn::new(lsn)));
    let mut b = Topology::builder()
        .node(Node::builder(NodeId::new(0), Role::Primary).position(at(9000)).build());
    for i in 1..=8u16 {
        let node = Node::builder(NodeId::new(i), Role::Replica)
            .name(format!("replica-{i}"))
            .zone(if i % 2 == 0 { "a" } else { "b" })
            .weight(u32::from(i % 3 + 1))
            .position(at(8000 + u64::from(i) * 100))
            .lag(Lag::new(
                Some(u64::from(9 - i) * 100),
                Some(Duration::from_millis(u64::from(9 - i) * 10)),
            ))
            .build();
        node.load().record_latency(Duration::from_micros(300 + u64::from(i) * 50), now);
        b = b.node(node);
    }
    b.build().unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let topo = topology(now);
    let balancers: Vec<(&str, Box<dyn Balancer>)> = vec![
        ("round_robin", Box::new(RoundRobin::default())),
        ("weighted_round_robin", Box::new(WeightedRoundRobin::default())),
        ("random", Box::new(Random::with_seed(1))),
        ("least_outstanding", Box::new(LeastOutstanding::default())),
        ("power_of_two_ewma", Box::new(PowerOfTwoEwma::with_seed(1))),
        ("lowest_lag", Box::new(LowestLag::default())),
        ("zone_preference_rr", Box::new(ZonePreference::new("a", RoundRobin::default()))),
    ];
    let eventual = RouteContext::for_access(Access::Read, now);

    let mut g = c.benchmark_group("route_8_replicas");
    for (name, balancer) in balancers {
        let router = Router::new(RouterConfig::default().balancer(balancer));
        g.bench_function(name, |b| b.iter(|| router.route(black_box(&topo), black_box(&eventual))));
    }

    let router = Router::new(RouterConfig::default().balancer(PowerOfTwoEwma::with_seed(1)));
    let bounded =
        Consistency::BoundedStaleness(Staleness::time(Duration::from_millis(45)).and_bytes(500));
    let ctx = RouteContext::for_access(Access::Read, now).with_consistency(&bounded);
    g.bench_function("bounded_staleness_p2c", |b| {
        b.iter(|| router.route(black_box(&topo), black_box(&ctx)))
    });
    let ryw =
        Consistency::ReadYourWrites(CausalToken::new(PgPosition::new(SYS, 1, Lsn::new(8500))));
    let ctx = RouteContext::for_access(Access::Read, now).with_consistency(&ryw);
    g.bench_function("read_your_writes_p2c", |b| {
        b.iter(|| router.route(black_box(&topo), black_box(&ctx)))
    });
    let write = RouteContext::for_access(Access::Write, now);
    g.bench_function("write", |b| b.iter(|| router.route(black_box(&topo), black_box(&write))));
    g.finish();

    let mut g = c.benchmark_group("causal_token");
    let token: CausalToken = "pg:1:7311234567890123456:1:0-2134"
        .parse()
        .unwrap_or_else(|_| CausalToken::new(PgPosition::new(0, 0, Lsn::new(0))));
    let pos = ReplayPosition::from(PgPosition::new(SYS, 1, Lsn::new(9000)));
    g.bench_function("pg_is_satisfied_by", |b| {
        b.iter(|| black_box(&token).is_satisfied_by(black_box(&pos)))
    });
    let token: CausalToken = "mariadb:1:0-1-500.1-2-7".parse().unwrap_or(token);
    let pos: ReplayPosition = "mariadb:1:0-1-900.1-2-7.2-3-1".parse().unwrap_or(pos);
    g.bench_function("mariadb_is_satisfied_by", |b| {
        b.iter(|| black_box(&token).is_satisfied_by(black_box(&pos)))
    });
    g.bench_function("pg_token_parse", |b| {
        b.iter(|| black_box("pg:1:7311234567890123456:1:16-B374D848").parse::<CausalToken>())
    });
    // Untrusted tokens (cookies, headers): MariaDB GTIDs in the worst order for sorted
    // insertion, 1 KiB and at the 16 KiB limit; 1 MiB is refused by its length.
    let one_kib = format!("mariadb:1:{}", descending_gtids(1024 - 10, '.'));
    g.bench_function("mariadb_token_parse_1kib", |b| {
        b.iter(|| black_box(one_kib.as_str()).parse::<CausalToken>())
    });
    let limit = format!("mariadb:1:{}", descending_gtids(16 * 1024 - 10, '.'));
    g.bench_function("mariadb_token_parse_16kib", |b| {
        b.iter(|| black_box(limit.as_str()).parse::<CausalToken>())
    });
    let one_mib = format!("mariadb:1:{}", descending_gtids((1 << 20) - 10, '.'));
    g.bench_function("mariadb_token_refuse_1mib", |b| {
        b.iter(|| black_box(one_mib.as_str()).parse::<CausalToken>())
    });
    g.finish();

    // The same megabyte through the unbounded parser of server output (`@@gtid_current_pos`),
    // which the limit does not cover: linear time matters there too.
    let mut g = c.benchmark_group("causal_token_unbounded");
    g.sample_size(10);
    let server = descending_gtids(1 << 20, ',');
    g.bench_function("mariadb_position_parse_1mib", |b| {
        b.iter(|| black_box(server.as_str()).parse::<MariaDbPosition>())
    });
    g.finish();
}

/// MariaDB GTIDs with descending domains, `sep`-separated, up to `len` bytes.
fn descending_gtids(len: usize, sep: char) -> String {
    let mut s = String::new();
    let mut d = 10_000_000u32;
    loop {
        let g = format!("{d}-1-{d}");
        if s.len() + g.len() + 1 > len {
            return s;
        }
        if !s.is_empty() {
            s.push(sep);
        }
        s.push_str(&g);
        d -= 1;
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
