//! Behaviour tables for every balancer.

use std::time::{Duration, Instant};

use rstest::rstest;

use super::*;
use crate::node_id::NodeId;
use crate::role::Role;
use crate::topology::Lag;

fn replicas(n: u16) -> Vec<Node> {
    (0..n).map(|i| Node::builder(NodeId::new(i), Role::Replica).build()).collect()
}

/// Every balancer a configuration can name ([`BALANCERS`]: a new one gets these tables at
/// once), and the zone preference around one.
fn every() -> Vec<(&'static str, Box<dyn Balancer>)> {
    let mut all: Vec<(&'static str, Box<dyn Balancer>)> =
        BALANCERS.iter().map(|(name, make)| (*name, make())).collect();
    all.push(("zone", Box::new(ZonePreference::new("a", RoundRobin::default()))));
    all
}

#[test]
fn the_named_balancers_have_distinct_snake_case_names() {
    let names: std::collections::BTreeSet<&str> = BALANCERS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len(), BALANCERS.len(), "a name given twice");
    for name in names {
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{name}");
    }
}

#[test]
fn empty_candidates_pick_nothing() {
    for (name, b) in every() {
        assert_eq!(b.pick(&[], Instant::now()), None, "{name}");
        b.order(&mut [], Instant::now());
    }
}

#[test]
fn a_single_candidate_is_always_chosen() {
    let nodes = replicas(1);
    let c: Vec<&Node> = nodes.iter().collect();
    for (name, b) in every() {
        for _ in 0..5 {
            assert_eq!(b.pick(&c, Instant::now()), Some(0), "{name}");
        }
    }
}

#[test]
fn order_is_a_permutation_starting_with_a_valid_pick() {
    let nodes = replicas(8);
    let now = Instant::now();
    for (name, b) in every() {
        for _ in 0..50 {
            let mut c: Vec<&Node> = nodes.iter().collect();
            b.order(&mut c, now);
            let mut ids: Vec<usize> = c.iter().map(|n| n.id().index()).collect();
            ids.sort_unstable();
            assert_eq!(ids, (0..8).collect::<Vec<_>>(), "{name}");
        }
    }
}

/// Idle, equal replicas: every policy spreads picks over all of them.
#[rstest]
#[case::round_robin(Box::new(RoundRobin::default()), 100, 100)]
#[case::weighted(Box::new(WeightedRoundRobin::default()), 100, 100)]
#[case::random(Box::new(Random::with_seed(3)), 60, 140)]
#[case::least_outstanding(Box::new(LeastOutstanding::default()), 100, 100)]
#[case::p2c(Box::new(PowerOfTwoEwma::with_seed(3)), 60, 140)]
#[case::lowest_lag(Box::new(LowestLag::default()), 100, 100)]
fn spreads_over_equal_nodes(#[case] b: Box<dyn Balancer>, #[case] min: usize, #[case] max: usize) {
    let nodes = replicas(4);
    let c: Vec<&Node> = nodes.iter().collect();
    let mut counts = [0usize; 4];
    for _ in 0..400 {
        let i = b.pick(&c, Instant::now()).unwrap();
        counts[i] += 1;
    }
    assert!(counts.iter().all(|&n| (min..=max).contains(&n)), "{counts:?}");
}

#[rstest]
#[case(&[1, 1, 1], &[10, 10, 10])]
#[case(&[5, 1, 1], &[50, 10, 10])]
#[case(&[3, 0, 1], &[30, 0, 10])]
#[case(&[0, 0, 0], &[10, 10, 10])]
fn weighted_proportions(#[case] weights: &[u32], #[case] want: &[usize]) {
    let nodes: Vec<Node> = weights
        .iter()
        .zip(0u16..)
        .map(|(&w, i)| Node::builder(NodeId::new(i), Role::Replica).weight(w).build())
        .collect();
    let c: Vec<&Node> = nodes.iter().collect();
    let wrr = WeightedRoundRobin::default();
    let total: usize = want.iter().sum();
    let mut counts = vec![0usize; weights.len()];
    for _ in 0..total {
        counts[wrr.pick(&c, Instant::now()).unwrap()] += 1;
    }
    assert_eq!(counts, want);
}

/// A node that reuses an index starts from no credit. Three picks of `old` (weight 5) beside
/// `other` (weight 1) leave `old`'s slot at -3 and `other`'s at +3; `new` (weight 1, the index's
/// next generation) then starts at 0, so `other` is picked twice before `new` first is. With
/// `old`'s -3 inherited, `new` would wait three picks.
#[test]
fn weighted_forgets_an_earlier_generations_credit() {
    let node = |index, generation, weight| {
        Node::builder(NodeId::with_generation(index, generation), Role::Replica)
            .weight(weight)
            .build()
    };
    let (old, other, new) = (node(0, 0, 5), node(1, 0, 1), node(0, 1, 1));
    let wrr = WeightedRoundRobin::default();
    let before: Vec<usize> =
        (0..3).map(|_| wrr.pick(&[&old, &other], Instant::now()).unwrap()).collect();
    assert_eq!(before, [0, 0, 0]);
    let after: Vec<usize> =
        (0..6).map(|_| wrr.pick(&[&new, &other], Instant::now()).unwrap()).collect();
    assert_eq!(after, [1, 1, 0, 1, 0, 1]);
}

#[test]
fn least_outstanding_orders_by_load() {
    let nodes = replicas(3);
    let now = Instant::now();
    let _g: Vec<_> = (0..3)
        .map(|_| nodes[0].load().start(now))
        .chain((0..1).map(|_| nodes[2].load().start(now)))
        .collect();
    let mut c: Vec<&Node> = nodes.iter().collect();
    LeastOutstanding::default().order(&mut c, now);
    assert_eq!(c.iter().map(|n| n.id().index()).collect::<Vec<_>>(), [1, 2, 0]);
}

#[test]
fn p2c_prefers_fast_idle_nodes() {
    let nodes = replicas(4);
    let now = Instant::now();
    nodes[0].load().record_latency(Duration::from_millis(100), now);
    for n in &nodes[1..] {
        n.load().record_latency(Duration::from_millis(2), now);
    }
    let c: Vec<&Node> = nodes.iter().collect();
    let p2c = PowerOfTwoEwma::with_seed(9);
    let slow = (0..1000).filter(|_| p2c.pick(&c, now) == Some(0)).count();
    // The slow node wins only when drawn with itself, which never happens: it always loses.
    assert_eq!(slow, 0);
    // Load counts too: a fast node with many requests in flight loses to an idle one.
    let _g: Vec<_> = (0..200).map(|_| nodes[1].load().start(now)).collect();
    let busy = (0..1000).filter(|_| p2c.pick(&c[1..], now) == Some(0)).count();
    assert_eq!(busy, 0);
    // An unsampled node costs the default, and after τ a slow node has decayed back into play.
    let later = now + Duration::from_secs(120);
    let slow_later = (0..1000).filter(|_| p2c.pick(&c, later) == Some(0)).count();
    assert!(slow_later > 100, "{slow_later}");
}

#[test]
fn random_is_reproducible_by_seed() {
    let nodes = replicas(5);
    let c: Vec<&Node> = nodes.iter().collect();
    let seq = |seed| {
        let r = Random::with_seed(seed);
        (0..20).map(|_| r.pick(&c, Instant::now()).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(seq(11), seq(11));
    assert_ne!(seq(11), seq(12));
}

#[rstest]
#[case(&[Some(5), Some(0), None, Some(1)], &[1, 3, 0, 2])]
#[case(&[None, None], &[0, 1])]
fn lowest_lag_orders_by_bytes(#[case] lags: &[Option<u64>], #[case] want: &[usize]) {
    let nodes: Vec<Node> = lags
        .iter()
        .zip(0u16..)
        .map(|(&b, i)| Node::builder(NodeId::new(i), Role::Replica).lag(Lag::new(b, None)).build())
        .collect();
    let mut c: Vec<&Node> = nodes.iter().collect();
    LowestLag::default().order(&mut c, Instant::now());
    // Ties (the two unknowns) come out in rotated order; compare sets for ties.
    let got: Vec<usize> = c.iter().map(|n| n.id().index()).collect();
    if lags.iter().all(Option::is_none) {
        assert_eq!(got.len(), want.len());
    } else {
        assert_eq!(got, want);
    }
}

#[test]
fn zone_preference_falls_back_to_other_zones() {
    let nodes: Vec<Node> = [("b", 0u16), ("a", 1), ("b", 2), ("a", 3)]
        .iter()
        .map(|&(z, i)| Node::builder(NodeId::new(i), Role::Replica).zone(z).build())
        .collect();
    let c: Vec<&Node> = nodes.iter().collect();
    let z = ZonePreference::new("a", RoundRobin::default());
    let picks: Vec<usize> = (0..4).map(|_| z.pick(&c, Instant::now()).unwrap()).collect();
    assert_eq!(picks, [1, 3, 1, 3]);
    let mut o = c.clone();
    z.order(&mut o, Instant::now());
    assert_eq!(o.iter().map(|n| n.id().index()).collect::<Vec<_>>(), [1, 3, 0, 2]);
    let remote: Vec<&Node> = vec![&nodes[0], &nodes[2]];
    assert!(z.pick(&remote, Instant::now()).is_some());
    assert_eq!(z.zone(), "a");
}

/// Only a balancer that reads latency estimates asks statements to feed them: the others save
/// a sample (an `exp`) per statement. Wrappers say what they wrap.
#[rstest]
#[case::round_robin(Box::new(RoundRobin::default()), false)]
#[case::weighted(Box::new(WeightedRoundRobin::default()), false)]
#[case::random(Box::new(Random::with_seed(1)), false)]
#[case::least_outstanding(Box::new(LeastOutstanding::default()), false)]
#[case::lowest_lag(Box::new(LowestLag::default()), false)]
#[case::p2c(Box::new(PowerOfTwoEwma::with_seed(1)), true)]
#[case::zone_round_robin(Box::new(ZonePreference::new("a", RoundRobin::default())), false)]
#[case::zone_p2c(Box::new(ZonePreference::new("a", PowerOfTwoEwma::with_seed(1))), true)]
fn balancers_say_whether_they_read_latency(#[case] b: Box<dyn Balancer>, #[case] reads: bool) {
    assert_eq!(b.uses_latency(), reads);
    assert_eq!(std::sync::Arc::new(b).uses_latency(), reads);
}
