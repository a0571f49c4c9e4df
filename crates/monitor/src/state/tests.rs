//! The topology state machine with controlled time: no database, no sleeps.

use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_core::{
    Health, HealthPolicy, Lsn, Node, NodeId, PgPosition, ReplayPosition, Role, Topology,
};

use super::TopologyState;
use crate::probe::{Lineage, Observation, ProbeError};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn state(n: u16, policy: HealthPolicy) -> TopologyState {
    let mut b = Topology::builder();
    for i in 0..n {
        let role = if i == 0 { Role::Primary } else { Role::Replica };
        b = b.node(Node::builder(NodeId::new(i), role).name(format!("n{i}:5432/app")).build());
    }
    TopologyState::new(b.build().unwrap(), policy)
}

fn policy() -> HealthPolicy {
    HealthPolicy::default()
        .failure_threshold(3)
        .recovery_threshold(2)
        .ban_base(Duration::from_secs(5))
}

fn pos(lsn: u64) -> ReplayPosition {
    ReplayPosition::Postgres(PgPosition::new(7, 1, Lsn::new(lsn)))
}

fn seen(role: Role, lsn: u64) -> Result<Observation, ProbeError> {
    Ok(Observation {
        role,
        position: Some(pos(lsn)),
        received_lsn: None,
        since_replay: Some(Duration::ZERO),
        replay_paused: false,
        seconds_behind: None,
        applying: None,
        latency: MS(1),
        lineage: None,
    })
}

fn refused() -> Result<Observation, ProbeError> {
    Err(ProbeError::unreachable("connection refused"))
}

fn timed_out() -> Result<Observation, ProbeError> {
    Err(ProbeError::Timeout { after: MS(500) })
}

/// Every node healthy, node 0 primary at 100, the replicas at 100.
fn steady(s: &TopologyState, t: Instant) {
    s.observe(NodeId::new(0), &seen(Role::Primary, 100), t);
    for id in s.ids().into_iter().skip(1) {
        s.observe(id, &seen(Role::Replica, 100), t);
    }
}

fn roles(s: &TopologyState) -> Vec<Role> {
    s.snapshot().nodes().iter().map(Node::role).collect()
}

fn healths(s: &TopologyState) -> Vec<Health> {
    s.snapshot().nodes().iter().map(Node::health).collect()
}

#[test]
fn a_promotion_is_followed_once_the_old_primary_stops_answering() {
    let s = state(3, policy());
    let t = Instant::now();
    steady(&s, t);
    assert_eq!(s.primary_id(), Some(NodeId::new(0)));
    // Node 1 promoted by an operator: while node 0 still answers as primary, two primaries.
    s.observe(NodeId::new(1), &seen(Role::Primary, 200), t + MS(100));
    assert_eq!(s.primary_id(), None, "two reachable primaries are a split brain");
    assert_eq!(s.snapshot().primary_count(), 2);
    // Node 0 goes away: node 1 is the primary, node 0 loses the role.
    s.observe(NodeId::new(0), &refused(), t + MS(200));
    assert_eq!(s.primary_id(), Some(NodeId::new(1)));
    assert_eq!(roles(&s), [Role::Replica, Role::Primary, Role::Replica]);
    // Lag is measured against the new primary.
    let lag = s.snapshot().node(NodeId::new(2)).unwrap().lag();
    assert_eq!(lag.bytes(), Some(100));
}

fn on_timeline(role: Role, timeline: u32, lsn: u64) -> Result<Observation, ProbeError> {
    let mut o = seen(role, lsn)?;
    o.position = Some(ReplayPosition::Postgres(PgPosition::new(7, timeline, Lsn::new(lsn))));
    Ok(o)
}

/// A promotion starts a new timeline: a primary on an older one of the same system is deposed
/// (out of rotation, never the primary), whether this process saw the promotion or only a
/// node on the newer timeline, and stays so while its probes say the same; a node of another
/// system's timelines is not compared.
#[test]
fn a_primary_on_an_older_timeline_is_superseded() {
    let s = state(3, policy());
    let t = Instant::now();
    steady(&s, t);
    // Node 1 promoted (timeline 2) while node 0 still answers as a primary on timeline 1: not
    // a split brain, node 1 is the primary.
    s.observe(NodeId::new(1), &on_timeline(Role::Primary, 2, 200), t + MS(100));
    assert_eq!(s.primary_id(), Some(NodeId::new(1)));
    assert!(s.is_superseded(NodeId::new(0)) && s.is_fenced(NodeId::new(0)));
    assert_eq!(roles(&s), [Role::Replica, Role::Primary, Role::Replica]);
    assert_eq!(healths(&s)[0], Health::Down, "out of rotation for reads too");
    // The new primary unreachable from here: the old one is still deposed, and nothing
    // takes writes rather than the old primary.
    for i in 0..3 {
        s.observe(NodeId::new(1), &refused(), t + MS(200 + i));
    }
    s.observe(NodeId::new(0), &on_timeline(Role::Primary, 1, 300), t + MS(300));
    assert_ne!(s.primary_id(), Some(NodeId::new(0)));
    assert!(s.is_superseded(NodeId::new(0)));

    // A process that starts now, and sees only the old primary and a replica that follows
    // the new one, takes the old primary as deposed too.
    let fresh = state(3, policy());
    fresh.observe(NodeId::new(0), &on_timeline(Role::Primary, 1, 300), t);
    fresh.observe(NodeId::new(2), &on_timeline(Role::Replica, 2, 250), t);
    assert!(fresh.is_superseded(NodeId::new(0)));
    assert_eq!(fresh.primary_id(), None);

    // Another system's timeline says nothing of this one's.
    let other = state(2, policy());
    other.observe(NodeId::new(0), &on_timeline(Role::Primary, 1, 300), t);
    let mut stranger = on_timeline(Role::Replica, 5, 10).unwrap();
    stranger.position = Some(ReplayPosition::Postgres(PgPosition::new(8, 5, Lsn::new(10))));
    other.observe(NodeId::new(1), &Ok(stranger), t);
    assert!(!other.is_superseded(NodeId::new(0)));
    assert_eq!(other.primary_id(), Some(NodeId::new(0)));
}

/// A MariaDB node as its probe reads it: `server_id`, its position (binlog on a writable
/// node, slave position on a replica) and its slave position, what it last applied.
fn mariadb(role: Role, server_id: u32, position: &str, slave_pos: &str) -> Observation {
    let gtids = |text: &str| text.parse::<rwsplit_core::MariaDbPosition>().unwrap();
    Observation {
        role,
        position: Some(ReplayPosition::MariaDb(gtids(position))),
        received_lsn: None,
        since_replay: None,
        replay_paused: false,
        seconds_behind: (role == Role::Replica).then_some(0),
        applying: (role == Role::Replica).then_some(true),
        latency: MS(1),
        lineage: Some(Lineage { server_id, slave_pos: gtids(slave_pos) }),
    }
}

/// MariaDB's epoch is its GTID history: a writable node whose slave position holds a GTID
/// another server wrote took over from it, and that server, writable again, is deposed —
/// whether this process saw the promotion or starts afterwards — unless it has since taken
/// over at a later sequence number. Two nodes promoted from one primary name nobody but it:
/// a split brain. A replica's slave position deposes no one.
#[test]
fn a_mariadb_primary_taken_over_from_is_superseded() {
    let (n0, n1, n2) = (NodeId::new(0), NodeId::new(1), NodeId::new(2));
    let t = Instant::now();
    let s = state(3, policy());
    s.observe(n0, &Ok(mariadb(Role::Primary, 1, "0-1-100", "")), t);
    s.observe(n1, &Ok(mariadb(Role::Replica, 2, "0-1-100", "0-1-100")), t);
    s.observe(n2, &Ok(mariadb(Role::Replica, 3, "0-1-100", "0-1-100")), t);
    assert_eq!(s.primary_id(), Some(n0), "replicas that applied its GTIDs depose no one");
    // Node 1 promoted at 100 while node 0 still takes writes (and wrote past 100).
    s.observe(n1, &Ok(mariadb(Role::Primary, 2, "0-2-105", "0-1-100")), t + MS(100));
    s.observe(n0, &Ok(mariadb(Role::Primary, 1, "0-1-103", "")), t + MS(100));
    assert_eq!(s.primary_id(), Some(n1));
    assert!(s.is_superseded(n0) && s.is_fenced(n0));
    assert_eq!(roles(&s), [Role::Replica, Role::Primary, Role::Replica]);
    // The new primary unreachable from here: the old one stays deposed.
    for i in 0..3 {
        s.observe(n1, &refused(), t + MS(200 + i));
    }
    s.observe(n0, &Ok(mariadb(Role::Primary, 1, "0-1-103", "")), t + MS(300));
    assert_ne!(s.primary_id(), Some(n0));
    assert!(s.is_superseded(n0));
    // Node 0 rejoins under node 1, applies to 150 and is promoted back: node 1, writable
    // again, is the deposed one, node 0 the primary.
    s.observe(n0, &Ok(mariadb(Role::Primary, 1, "0-1-160", "0-2-150")), t + MS(400));
    s.observe(n1, &Ok(mariadb(Role::Primary, 2, "0-2-150", "0-1-100")), t + MS(400));
    assert!(!s.is_superseded(n0) && s.is_superseded(n1));
    assert_eq!(s.primary_id(), Some(n0));

    // A process that starts after the promotion takes the old primary as deposed too.
    let fresh = state(3, policy());
    fresh.observe(n0, &Ok(mariadb(Role::Primary, 1, "0-1-103", "")), t);
    fresh.observe(n1, &Ok(mariadb(Role::Primary, 2, "0-2-105", "0-1-100")), t);
    assert!(fresh.is_superseded(n0));
    assert_eq!(fresh.primary_id(), Some(n1));

    // Two replicas promoted from one primary: it is deposed, and they are a split brain.
    let split = state(3, policy());
    split.observe(n0, &Ok(mariadb(Role::Primary, 1, "0-1-101", "")), t);
    split.observe(n1, &Ok(mariadb(Role::Primary, 2, "0-2-102", "0-1-100")), t);
    split.observe(n2, &Ok(mariadb(Role::Primary, 3, "0-3-102", "0-1-101")), t);
    assert!(split.is_superseded(n0));
    assert!(!split.is_superseded(n1) && !split.is_superseded(n2));
    assert_eq!(split.primary_id(), None, "two primaries of one epoch are a split brain");
}

#[test]
fn a_demoted_primary_that_returns_as_a_replica_is_one() {
    let s = state(2, policy());
    let t = Instant::now();
    steady(&s, t);
    s.observe(NodeId::new(0), &refused(), t + MS(100));
    s.observe(NodeId::new(1), &seen(Role::Primary, 200), t + MS(200));
    s.observe(NodeId::new(0), &seen(Role::Replica, 200), t + MS(300));
    assert_eq!(s.primary_id(), Some(NodeId::new(1)));
    assert_eq!(roles(&s), [Role::Replica, Role::Primary]);
}

#[test]
fn a_fenced_node_is_out_whatever_it_claims_until_unfenced() {
    let s = state(3, policy());
    let t = Instant::now();
    steady(&s, t);
    assert!(s.set_fenced(NodeId::new(0), true));
    assert!(!s.set_fenced(NodeId::new(0), true), "fencing twice changes nothing");
    assert_eq!(s.primary_id(), None, "no primary until a replica is promoted");
    s.observe(NodeId::new(1), &seen(Role::Primary, 200), t + MS(100));
    // The fenced old primary comes back still claiming the role: ignored, not routed to.
    s.observe(NodeId::new(0), &seen(Role::Primary, 150), t + MS(200));
    assert_eq!(s.primary_id(), Some(NodeId::new(1)));
    assert_eq!(s.health(NodeId::new(0)), Health::Down);
    assert_eq!(s.snapshot().node(NodeId::new(0)).unwrap().role(), Role::Replica);
    // Unfenced while it still claims the role: two primaries, writes refused by the router.
    s.set_fenced(NodeId::new(0), false);
    assert_eq!(s.snapshot().primary_count(), 2);
    // Rebuilt as a replica of the new primary: one primary again, and it is routable.
    s.observe(NodeId::new(0), &seen(Role::Replica, 200), t + MS(300));
    assert_eq!(s.primary_id(), Some(NodeId::new(1)));
    assert_eq!(s.health(NodeId::new(0)), Health::Up);
}

/// The events of target `rwsplit` logged on this thread, each as its message and its fields.
#[derive(Clone, Default)]
struct Logged(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logged {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Line(String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "message" => self.0.insert_str(0, &format!("{value:?}")),
                    name => self.0.push_str(&format!(" {name}={value:?}")),
                }
            }
        }
        if event.metadata().target() == "rwsplit" {
            let mut line = Line(String::new());
            event.record(&mut line);
            self.0.lock().unwrap().push(line.0);
        }
    }
}

#[test]
fn fencing_the_primary_logs_it_fenced_not_as_a_replica() {
    use tracing_subscriber::layer::SubscriberExt;
    let s = state(3, policy());
    steady(&s, Instant::now());
    let logged = Logged::default();
    let subscriber = tracing_subscriber::registry().with(logged.clone());
    tracing::subscriber::with_default(subscriber, || s.set_fenced(NodeId::new(0), true));
    let lines = logged.0.lock().unwrap().clone();
    let primary: Vec<&String> = lines.iter().filter(|l| l.contains("node=n0:")).collect();
    assert_eq!(
        primary,
        ["node changed: fenced, out of rotation node=n0:5432/app fenced=true"],
        "{lines:?}"
    );
}

#[rstest]
#[case::refusals(refused)]
#[case::timeouts(timed_out)]
fn probe_failures_of_either_kind_take_a_replica_down(
    #[case] failure: fn() -> Result<Observation, ProbeError>,
) {
    let s = state(2, policy());
    let t = Instant::now();
    steady(&s, t);
    assert_eq!(s.observe(NodeId::new(1), &failure(), t + MS(500)), 1);
    assert_eq!(s.health(NodeId::new(1)), Health::Suspect);
    assert_eq!(s.observe(NodeId::new(1), &failure(), t + MS(1000)), 2);
    assert_eq!(s.observe(NodeId::new(1), &failure(), t + MS(1500)), 3);
    assert_eq!(s.health(NodeId::new(1)), Health::Down);
    assert_eq!(s.probe_failures(NodeId::new(1)), 3);
    assert!(!s.refused(NodeId::new(1)), "a reset or a timeout is not a refused connection");
    s.observe(NodeId::new(1), &Err(ProbeError::refused("connection refused")), t + MS(2000));
    assert!(s.refused(NodeId::new(1)));
    // A success resets the count the failover watches.
    s.observe(NodeId::new(1), &seen(Role::Replica, 100), t + MS(2500));
    assert_eq!(s.probe_failures(NodeId::new(1)), 0);
}

/// A server that refuses the monitor's connection for lack of room answered: it is
/// alive and busy. No failure, no change of health or role, its last position stands (a
/// replica's replay only moves forward), and the refusals are counted apart.
#[test]
fn a_busy_server_is_not_a_failing_one() {
    let s = state(2, policy());
    let t = Instant::now();
    steady(&s, t);
    let changes = s.changes(NodeId::new(1));
    let busy = || Err(ProbeError::busy("sorry, too many clients already"));
    for i in 1..=10 {
        assert_eq!(s.observe(NodeId::new(1), &busy(), t + MS(500 * i)), 0, "not a failure");
    }
    assert_eq!(healths(&s), [Health::Up, Health::Up]);
    assert_eq!(roles(&s), [Role::Primary, Role::Replica]);
    assert_eq!(s.snapshot().node(NodeId::new(1)).unwrap().position(), Some(&pos(100)));
    assert_eq!((s.busy_probes(NodeId::new(1)), s.failed_probes(NodeId::new(1))), (10, 0));
    assert_eq!((s.probe_failures(NodeId::new(1)), s.changes(NodeId::new(1))), (0, changes));
    // Busy refusals in between do not reset a run of real failures either.
    s.observe(NodeId::new(1), &refused(), t + MS(6_000));
    s.observe(NodeId::new(1), &busy(), t + MS(6_500));
    s.observe(NodeId::new(1), &refused(), t + MS(7_000));
    assert_eq!(s.observe(NodeId::new(1), &refused(), t + MS(7_500)), 3);
    assert_eq!(s.health(NodeId::new(1)), Health::Down);
}

/// Steps: `f` failed probe, `s` successful probe, each 500 ms after the last; `+N` N seconds more.
#[rstest]
#[case::one_failure_is_suspect("f", Health::Suspect)]
#[case::threshold_is_down("fff", Health::Down)]
#[case::one_success_is_not_enough("fs", Health::Suspect)]
#[case::recovery_threshold("fss", Health::Up)]
#[case::banned_successes_wait("fffss", Health::Down)]
#[case::ban_expires_then_two_successes("fff+5ss", Health::Up)]
#[case::flapping_never_settles_up("fsfsfsfs", Health::Suspect)]
#[case::a_failed_readmission_probe_bans_again_as_long("fff+5f+2ss", Health::Down)]
#[case::a_long_outage_does_not_grow_the_ban("fff+5f+5f+5ss", Health::Up)]
#[case::flapping_after_a_ban_is_banned_longer("fff+5ssfff+5ss", Health::Down)]
#[case::the_longer_ban_expires("fff+5ssfff+10ss", Health::Up)]
fn replica_health_follows_probes(#[case] steps: &str, #[case] expected: Health) {
    let s = state(2, policy());
    let mut t = Instant::now();
    steady(&s, t);
    let mut chars = steps.chars().peekable();
    while let Some(c) = chars.next() {
        t += MS(500);
        match c {
            'f' => {
                s.observe(NodeId::new(1), &refused(), t);
            }
            's' => {
                s.observe(NodeId::new(1), &seen(Role::Replica, 100), t);
            }
            '+' => {
                let mut n = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    n.push(d);
                }
                t += Duration::from_secs(n.parse().unwrap());
            }
            other => panic!("unknown step {other}"),
        }
    }
    assert_eq!(s.health(NodeId::new(1)), expected, "{steps}");
}

#[test]
fn statements_failures_count_and_successes_readmit() {
    let s = state(2, policy());
    let t = Instant::now();
    steady(&s, t);
    s.record_failure(NodeId::new(1), t);
    assert_eq!(s.health(NodeId::new(1)), Health::Suspect);
    s.record_success(NodeId::new(1), t + MS(1));
    s.record_success(NodeId::new(1), t + MS(2));
    assert_eq!(s.health(NodeId::new(1)), Health::Up);
    s.ban(NodeId::new(1), t + MS(3));
    assert_eq!(s.health(NodeId::new(1)), Health::Down);
}

#[test]
fn the_position_feed_moves_positions_not_roles() {
    let s = state(2, policy());
    let t = Instant::now();
    steady(&s, t);
    let before = s.snapshot().generation();
    s.observe_position(NodeId::new(1), pos(150), t + MS(20));
    let topo = s.snapshot();
    assert_eq!(topo.node(NodeId::new(1)).unwrap().position(), Some(&pos(150)));
    assert_eq!(topo.node(NodeId::new(1)).unwrap().role(), Role::Replica);
    assert!(topo.generation() > before);
    // The same position again publishes nothing new.
    let g = topo.generation();
    drop(topo);
    s.observe_position(NodeId::new(1), pos(150), t + MS(40));
    assert_eq!(s.snapshot().generation(), g);
    // The primary's feed moves the primary's position.
    s.observe_position(NodeId::new(0), pos(999), t + MS(60));
    assert_eq!(s.snapshot().node(NodeId::new(0)).unwrap().position(), Some(&pos(999)));
    assert_eq!(s.snapshot().node(NodeId::new(0)).unwrap().role(), Role::Primary);
    // Not so for a node whose last probe failed.
    s.observe(NodeId::new(1), &refused(), t + MS(500));
    s.observe_position(NodeId::new(1), pos(160), t + MS(520));
    assert_ne!(s.snapshot().node(NodeId::new(1)).unwrap().position(), Some(&pos(160)));
}

/// A replica as MariaDB reports one whose replication link was cut silently: applying, no delay
/// (`Seconds_Behind_Master` 0), its position standing still.
fn quiet_mariadb(role: Role, gtid: u64) -> Result<Observation, ProbeError> {
    let position = format!("0-1-{gtid}");
    Ok(Observation { lineage: None, ..mariadb(role, 1, &position, "") })
}

fn gtid(n: u64) -> ReplayPosition {
    ReplayPosition::MariaDb(format!("0-1-{n}").parse().unwrap())
}

fn lag_time(s: &TopologyState, node: u16) -> Option<Duration> {
    s.snapshot().node(NodeId::new(node)).unwrap().lag().time()
}

/// A MariaDB replica whose link is cut says it is 0 s behind until
/// `slave_net_timeout`; its time lag comes from how long ago the primary was where the replica
/// stands, so bounded-staleness reads leave it within one feed interval of the bound.
#[test]
fn a_silently_cut_replica_grows_late_from_positions_while_the_server_says_zero() {
    let s = state(3, policy());
    let t = Instant::now();
    s.observe(NodeId::new(0), &quiet_mariadb(Role::Primary, 10), t);
    s.observe(NodeId::new(1), &quiet_mariadb(Role::Replica, 10), t);
    s.observe(NodeId::new(2), &quiet_mariadb(Role::Replica, 10), t);
    assert_eq!(lag_time(&s, 1), Some(Duration::ZERO));
    // The primary writes one transaction every 20 ms; replica 2 keeps up, replica 1 was cut at
    // 200 ms (it stays at 20).
    for i in 1..=100_u64 {
        let at = t + MS(20 * i);
        s.observe_position(NodeId::new(0), gtid(10 + i), at);
        s.observe_position(NodeId::new(2), gtid(10 + i), at + MS(2));
        s.observe_position(NodeId::new(1), gtid(10 + i.min(10)), at + MS(3));
        if i % 25 == 0 {
            // A full probe of the cut replica: still "0 s behind", applying.
            s.observe(NodeId::new(1), &quiet_mariadb(Role::Replica, 20), at + MS(4));
        }
        let cut_for = MS(20 * i).saturating_sub(MS(200));
        let late = lag_time(&s, 1).unwrap();
        // Never less than the time since the primary left the replica's position (at most one
        // feed interval more).
        assert!(late + MS(20) >= cut_for, "i={i}: {late:?} for a cut of {cut_for:?}");
        assert!(late <= cut_for + MS(25), "i={i}: {late:?} for a cut of {cut_for:?}");
        assert!(lag_time(&s, 2).unwrap() <= MS(25), "the live replica is fresh");
    }
    let bound = rwsplit_core::Staleness::time(MS(500));
    assert!(
        !bound.allows(&s.snapshot().node(NodeId::new(1)).unwrap().lag()),
        "the cut replica is out of bounded reads"
    );
    assert!(bound.allows(&s.snapshot().node(NodeId::new(2)).unwrap().lag()));
    // Healed: it catches up, and is fresh again at once.
    s.observe_position(NodeId::new(1), gtid(110), t + MS(2_010));
    assert_eq!(lag_time(&s, 1), Some(Duration::ZERO));
}

/// A MariaDB replica probed with one statement (no status row, so no
/// `Seconds_Behind_Master`), or whose `Seconds_Behind_Master` is 0 while it lacks a GTID, that
/// applies is as late as its positions say; one whose SQL thread is stopped stays unknown.
#[test]
fn a_replica_that_applies_without_saying_how_late_is_as_late_as_its_positions() {
    let s = state(3, policy());
    let t = Instant::now();
    let silent = |gtid_n: u64, applying: bool| {
        let mut obs = quiet_mariadb(Role::Replica, gtid_n).unwrap();
        obs.seconds_behind = None;
        obs.applying = Some(applying);
        Ok(obs)
    };
    s.observe(NodeId::new(0), &quiet_mariadb(Role::Primary, 10), t);
    for i in 1..=10_u64 {
        s.observe_position(NodeId::new(0), gtid(10 + i), t + MS(20 * i));
    }
    // Both stand at 15, which the primary left 100 ms after t (it was last seen there at t + 100).
    let now = t + MS(300);
    s.observe(NodeId::new(1), &silent(15, true), now);
    s.observe(NodeId::new(2), &silent(15, false), now);
    assert_eq!(lag_time(&s, 1), Some(MS(200)), "applying: estimated from positions");
    assert_eq!(lag_time(&s, 2), None, "SQL thread stopped: unknown, as MariaDB says");
    // Behind with `Seconds_Behind_Master` 0 (whole seconds; 0 while waiting out a
    // `MASTER_DELAY`): as late as its positions say too.
    let mut zero = silent(15, true).unwrap();
    zero.seconds_behind = Some(0);
    s.observe(NodeId::new(2), &Ok(zero), now);
    assert_eq!(lag_time(&s, 2), Some(MS(200)), "0 while behind: estimated from positions");
    // Caught up: zero, whatever the server says.
    s.observe(NodeId::new(1), &silent(20, true), now + MS(1));
    assert_eq!(lag_time(&s, 1), Some(Duration::ZERO));
}

/// What the server reports still counts when it is larger, and unknown stays unknown.
#[test]
fn the_servers_own_delay_counts_when_larger_and_unknown_stays_unknown() {
    let s = state(2, policy());
    let t = Instant::now();
    s.observe(NodeId::new(0), &quiet_mariadb(Role::Primary, 10), t);
    s.observe_position(NodeId::new(0), gtid(11), t + MS(20));
    let mut behind = quiet_mariadb(Role::Replica, 10).unwrap();
    behind.seconds_behind = Some(7);
    s.observe(NodeId::new(1), &Ok(behind.clone()), t + MS(30));
    assert_eq!(lag_time(&s, 1), Some(Duration::from_secs(7)));
    behind.applying = Some(false);
    s.observe(NodeId::new(1), &Ok(behind), t + MS(40));
    assert_eq!(lag_time(&s, 1), None, "SQL thread stopped: unknown, not estimated");
}

/// PostgreSQL: the same estimate, beside the replay-timestamp measure; a caught-up replica of
/// an idle primary is never late, however long the primary has been idle.
#[test]
fn an_idle_primary_makes_no_replica_late() {
    let s = state(2, policy());
    let t = Instant::now();
    steady(&s, t);
    for i in 1..=50 {
        s.observe_position(NodeId::new(0), pos(100), t + MS(20 * i));
        s.observe_position(NodeId::new(1), pos(100), t + MS(20 * i + 1));
    }
    assert_eq!(lag_time(&s, 1), Some(Duration::ZERO));
    // One write after a second of idling: the replica misses it for at most the feed interval.
    s.observe_position(NodeId::new(0), pos(101), t + MS(1_020));
    s.observe_position(NodeId::new(1), pos(100), t + MS(1_021));
    assert!(lag_time(&s, 1).unwrap() <= MS(21), "{:?}", lag_time(&s, 1));
}

#[test]
fn the_primary_is_reported_down_but_never_banned() {
    let s = state(2, policy());
    let t = Instant::now();
    steady(&s, t);
    for i in 1..=3 {
        s.observe(NodeId::new(0), &timed_out(), t + MS(500 * i));
    }
    assert_eq!(s.health(NodeId::new(0)), Health::Down);
    // It answers again: up after the recovery threshold, without waiting out a ban.
    s.observe(NodeId::new(0), &seen(Role::Primary, 100), t + MS(2000));
    s.observe(NodeId::new(0), &seen(Role::Primary, 100), t + MS(2500));
    assert_eq!(healths(&s), [Health::Up, Health::Up]);
}

/// Where a read goes on the current snapshot, by the core router (no I/O).
fn read_targets(s: &TopologyState, t: Instant, reads: usize) -> Vec<NodeId> {
    use rwsplit_core::{Access, RouteContext, Router, RouterConfig};
    let router = Router::new(RouterConfig::default());
    let topo = s.snapshot();
    (0..reads)
        .map(|_| {
            let ctx = RouteContext::for_access(Access::Read, t);
            router.route(&topo, &ctx).unwrap().target()
        })
        .collect()
}

fn added(s: &TopologyState, name: &str) -> NodeId {
    s.add_node(|id| Node::builder(id, Role::Replica).name(name).build()).unwrap()
}

#[test]
fn an_added_node_joins_once_probed_healthy_and_caught_up() {
    let s = state(2, policy());
    let t = Instant::now();
    steady(&s, t);
    let id = added(&s, "n2:5432/app");
    assert_eq!(id, NodeId::new(2), "an index never used starts at generation 0");
    assert!(s.contains(id));
    assert!(s.snapshot().node(NodeId::new(2)).is_none(), "not routed before its first probe");
    // Its first probe finds it far behind (a fresh standby replaying its base backup).
    let behind = Observation {
        since_replay: Some(Duration::from_secs(30)),
        ..seen(Role::Replica, 40).unwrap()
    };
    s.observe(id, &Ok(behind), t + MS(100));
    assert!(s.snapshot().node(NodeId::new(2)).is_none(), "a lagging newcomer waits");
    assert!(!read_targets(&s, t, 8).contains(&id));
    // Caught up: it joins and takes reads.
    s.observe(NodeId::new(0), &seen(Role::Primary, 100), t + MS(200));
    s.observe(id, &seen(Role::Replica, 100), t + MS(300));
    let joined = s.snapshot();
    let node = joined.node(NodeId::new(2)).unwrap();
    assert_eq!(
        (node.role(), node.health(), node.name()),
        (Role::Replica, Health::Up, "n2:5432/app")
    );
    assert!(read_targets(&s, t, 8).contains(&id));
}

/// A configured replica that never answered (frozen before the application started) is held
/// out of rotation: no read goes to it until its first probe answers, and then it is back at
/// once, healthy, even if it lags (the router judges lag). One that answered already is not
/// held.
#[test]
fn a_configured_node_nobody_vouches_for_takes_no_reads_until_it_answers() {
    let s = state(3, policy());
    let t = Instant::now();
    s.observe(NodeId::new(0), &seen(Role::Primary, 100), t);
    s.observe(NodeId::new(1), &seen(Role::Replica, 100), t);
    let (answered, frozen) = (NodeId::new(1), NodeId::new(2));
    assert!(read_targets(&s, t, 8).contains(&frozen), "in rotation from the start, unprobed");
    assert!(!s.hold_until_answered(answered), "it answered: not held");
    assert!(s.hold_until_answered(frozen));
    assert!(s.snapshot().node(frozen).is_none());
    assert!(s.contains(frozen), "still probed");
    assert!(read_targets(&s, t, 8).iter().all(|&n| n == answered));
    // Its probes time out meanwhile: it stays out.
    s.observe(frozen, &timed_out(), t + MS(1000));
    assert!(s.snapshot().node(frozen).is_none());
    // It answers, 30 s behind: it is back, and the router decides what to send it.
    let behind = Observation {
        since_replay: Some(Duration::from_secs(30)),
        ..seen(Role::Replica, 40).unwrap()
    };
    s.observe(frozen, &Ok(behind), t + MS(2000));
    let node = s.snapshot().node(frozen).map(|n| (n.role(), n.health()));
    assert_eq!(node, Some((Role::Replica, Health::Up)));
}

/// A member listed before its server takes connections fails its first probes: enough to
/// ban a node in rotation, but it never served, so it joins healthy at its first good probe
/// rather than waiting out a ban.
#[test]
fn an_added_node_that_failed_probes_before_it_came_up_joins_healthy() {
    let s = state(2, policy());
    let t = Instant::now();
    steady(&s, t);
    let id = added(&s, "n2:5432/app");
    for i in 0..6 {
        s.observe(id, &refused(), t + MS(100 * i));
    }
    assert!(s.snapshot().node(NodeId::new(2)).is_none(), "not routed while it refuses");
    s.observe(NodeId::new(0), &seen(Role::Primary, 100), t + MS(700));
    s.observe(id, &seen(Role::Replica, 100), t + MS(800));
    let node = s.snapshot().node(NodeId::new(2)).cloned().expect("joined");
    assert_eq!((node.role(), node.health()), (Role::Replica, Health::Up));
    assert!(read_targets(&s, t + MS(800), 8).contains(&id), "it takes reads at once");
    // From then on it is judged like any node: failures take it out again.
    for i in 0..3 {
        s.observe(id, &timed_out(), t + MS(900 + 100 * i));
    }
    assert_eq!(s.snapshot().node(NodeId::new(2)).unwrap().health(), Health::Down);
}

/// `len` is the number of ids there are through adds, holds, removals racing each other and
/// releases: one atomic the publishing lock keeps equal to `ids().len()`.
#[test]
fn the_node_count_follows_every_change_of_membership() {
    let s = std::sync::Arc::new(state(3, policy()));
    let agree = |s: &TopologyState| assert_eq!(s.len(), s.ids().len());
    agree(&s);
    assert!(s.hold_until_answered(NodeId::new(2)), "joining again still counts");
    agree(&s);
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let s = std::sync::Arc::clone(&s);
            std::thread::spawn(move || s.remove_node(NodeId::new(1)))
        })
        .collect();
    let removed = racers.into_iter().map(|r| r.join().unwrap()).filter(|&r| r).count();
    assert_eq!(removed, 1, "of racing removals of one node, one removes it");
    assert_eq!(s.len(), 2);
    agree(&s);
    assert!(s.release(NodeId::new(1)));
    agree(&s);
    assert_eq!(added(&s, "n9:5432/app"), NodeId::with_generation(1, 1));
    assert_eq!(s.len(), 3);
    agree(&s);
}

#[test]
fn a_removed_node_leaves_the_snapshot_at_once_and_is_never_routed() {
    let s = state(3, policy());
    let t = Instant::now();
    steady(&s, t);
    assert!(read_targets(&s, t, 8).contains(&NodeId::new(2)));
    let load = std::sync::Arc::clone(s.snapshot().node(NodeId::new(2)).unwrap().load());
    let in_flight = load.start(t);
    assert!(s.remove_node(NodeId::new(2)));
    assert!(!s.remove_node(NodeId::new(2)), "removing twice changes nothing");
    assert!(s.snapshot().node(NodeId::new(2)).is_none());
    assert!(!read_targets(&s, t, 16).iter().any(|id| id.index() == 2));
    // Probes, statements and fencing that still arrive for it change nothing.
    s.observe(NodeId::new(2), &seen(Role::Primary, 500), t + MS(100));
    s.record_failure(NodeId::new(2), t + MS(100));
    assert!(!s.set_fenced(NodeId::new(2), true));
    assert_eq!(
        s.primary_id(),
        Some(NodeId::new(0)),
        "a removed node's claim to the primary role is ignored"
    );
    assert_eq!(s.len(), 2);
    assert_eq!(s.ids(), [NodeId::new(0), NodeId::new(1)]);
    // Its index is not given out while a statement is in flight on it.
    assert!(!s.release(NodeId::new(2)));
    assert_eq!(added(&s, "n3:5432/app"), NodeId::new(3), "the draining index is skipped");
    drop(in_flight);
    assert!(s.release(NodeId::new(2)));
    assert_eq!(
        added(&s, "n4:5432/app"),
        NodeId::with_generation(2, 1),
        "a drained index is reused under its next generation"
    );
}

/// An index reused after its node was removed gets a new generation, and nothing that still
/// carries the old id (a late probe, a statement's failure, fencing, a waiter) reaches the
/// new node.
#[test]
fn a_reused_index_gets_a_new_generation_and_old_ids_reach_nothing() {
    let s = state(3, policy());
    let t = Instant::now();
    steady(&s, t);
    let old = NodeId::new(2);
    assert!(s.remove_node(old));
    assert!(s.release(old));
    assert!(s.release(old), "releasing again: the id still names no node");
    let new = added(&s, "n2-again:5432/app");
    assert_eq!((new.index(), new.generation()), (2, 1));
    assert_eq!(new.to_string(), "2.1");
    s.observe(new, &seen(Role::Replica, 100), t + MS(100));
    let joined = s.snapshot();
    assert_eq!(joined.node(new).map(|n| n.name()), Some("n2-again:5432/app"));
    assert!(joined.node(old).is_none(), "the old id finds nothing at its index");
    assert_eq!(s.ids(), [NodeId::new(0), NodeId::new(1), new]);
    // Inputs under the old id are dropped, not applied to the new node.
    for i in 0..5 {
        s.observe(old, &refused(), t + MS(200 + i));
        s.record_failure(old, t + MS(200 + i));
    }
    assert!(!s.set_fenced(old, true) && !s.is_fenced(new));
    assert!(!s.remove_node(old) && s.contains(new) && !s.contains(old));
    assert_eq!((s.health(new), s.health(old)), (Health::Up, Health::Down));
    assert_eq!((s.probe_failures(new), s.probe_failures(old)), (0, 0));
    assert!(s.latest().iter().all(|(id, _)| *id != old));
    // A waiter on the old id never wakes for it; a waiter on the new one does.
    let mut on_new: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
        Box::pin(s.changed(new));
    for i in 0..3 {
        s.observe(new, &refused(), t + MS(300 + i));
    }
    assert!(ready(&mut on_new), "the new node went down");
    assert!(!s.release(new), "a live node is not released");
}

/// An index whose generations are used up is retired: never given out again, so no id can
/// ever name two nodes.
#[test]
fn an_index_with_its_generations_used_up_is_retired() {
    let last = NodeId::with_generation(1, u16::MAX);
    let topology = Topology::builder()
        .node(Node::builder(NodeId::new(0), Role::Primary).build())
        .node(Node::builder(last, Role::Replica).build())
        .build()
        .unwrap();
    let s = TopologyState::new(topology, policy());
    assert_eq!(s.ids(), [NodeId::new(0), last]);
    assert!(s.remove_node(last));
    assert!(s.release(last));
    assert_eq!(added(&s, "n:5432/app"), NodeId::new(2), "index 1 is skipped for good");
    assert!(s.release(last));
}

#[test]
fn ids_are_bounded_by_live_nodes_not_by_nodes_ever_added() {
    let s = state(1, policy());
    let t = Instant::now();
    for round in 0..(3 * rwsplit_core::MAX_NODES) {
        let id = added(&s, &format!("r{round}:5432/app"));
        s.observe(id, &seen(Role::Replica, 0), t + MS(round as u64));
        assert!(s.remove_node(id));
        assert!(s.release(id));
        let generation = u16::try_from(round).unwrap();
        assert_eq!(id, NodeId::with_generation(1, generation), "round {round}");
    }
    // Every index taken: the next add says so instead of growing.
    for _ in 1..rwsplit_core::MAX_NODES {
        added(&s, "x");
    }
    let full = s.add_node(|id| Node::builder(id, Role::Replica).build()).unwrap_err();
    assert_eq!(full.max(), rwsplit_core::MAX_NODES);
}

#[test]
fn removing_the_primary_leaves_no_primary_until_another_reports_it() {
    let s = state(3, policy());
    let t = Instant::now();
    steady(&s, t);
    assert!(s.remove_node(NodeId::new(0)));
    assert_eq!(s.primary_id(), None);
    assert_eq!(s.snapshot().nodes().iter().map(|n| n.id().index()).collect::<Vec<_>>(), [1, 2]);
    s.observe(NodeId::new(1), &seen(Role::Primary, 200), t + MS(100));
    assert_eq!(s.primary_id(), Some(NodeId::new(1)));
    // A newcomer that is the primary (a member that moved) joins at its first probe.
    assert_eq!(added(&s, "n9:5432/app"), NodeId::new(3), "node 0's index is taken until released");
    assert!(s.release(NodeId::new(0)), "nothing was in flight on node 0");
    let id = added(&s, "n8:5432/app");
    assert_eq!(id, NodeId::with_generation(0, 1), "the lowest free index, its next generation");
    s.observe(id, &seen(Role::Primary, 300), t + MS(200));
    assert!(s.snapshot().node(id).is_some(), "a primary joins at its first probe");
    assert_eq!(s.primary_id(), None, "two primaries: 1 still reports the role");
}

/// Whether `f` is ready when polled once.
fn ready(f: &mut std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    f.as_mut().poll(&mut cx).is_ready()
}

/// Statements waiting on a node's standing wake at a change of its role or health, its join or
/// its removal — not at the position feed's lag updates, which come every few milliseconds,
/// and not at another node's change.
#[test]
fn waiters_wake_on_their_nodes_role_and_health_changes_only() {
    let s = state(3, policy());
    let t = Instant::now();
    steady(&s, t);
    let mut on_1: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
        Box::pin(s.changed(NodeId::new(1)));
    let mut on_2: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
        Box::pin(s.changed(NodeId::new(2)));
    assert!(!ready(&mut on_1) && !ready(&mut on_2));
    s.observe_position(NodeId::new(0), pos(150), t + MS(20));
    s.observe_position(NodeId::new(1), pos(150), t + MS(30));
    s.observe(NodeId::new(2), &seen(Role::Replica, 150), t + MS(40));
    assert!(!ready(&mut on_1) && !ready(&mut on_2), "positions and lag moved, nothing else did");
    for i in 0..3 {
        s.observe(NodeId::new(2), &refused(), t + MS(100 + i));
    }
    assert_eq!(s.health(NodeId::new(2)), Health::Down);
    assert!(ready(&mut on_2), "node 2 went down");
    assert!(!ready(&mut on_1), "node 1 did not change");
    assert!(s.remove_node(NodeId::new(1)));
    assert!(ready(&mut on_1), "node 1 left");
}

fn lag_of(s: &TopologyState, node: u16) -> rwsplit_core::Lag {
    s.snapshot().node(NodeId::new(node)).unwrap().lag()
}

/// A bounded-staleness read judges a replica at the read's own instant, counting from
/// the last news of the primary. The primary dies (no promotion): the snapshot stops changing,
/// but the replicas' staleness keeps growing, and each leaves bounded reads once the bound has
/// passed since the last sighting of the primary at a position it holds. Before the change,
/// the replica that held every write showed "0 behind" for as long as the primary was gone
/// (and, once its probe failed, "unknown" for all of them: bounded reads failed at once).
#[test]
fn a_replica_is_fresh_only_as_of_the_last_news_of_the_primary() {
    use rwsplit_core::Staleness;
    let s = state(3, policy());
    let t = Instant::now();
    steady(&s, t);
    // The primary writes every 20 ms; replica 1 keeps up, replica 2 stops at 150.
    for i in 1..=10_u64 {
        let at = t + MS(20 * i);
        s.observe_position(NodeId::new(0), pos(100 + 10 * i), at);
        s.observe_position(NodeId::new(1), pos(100 + 10 * i), at + MS(1));
        s.observe_position(NodeId::new(2), pos((100 + 10 * i).min(150)), at + MS(2));
    }
    let last = t + MS(200);
    assert_eq!(lag_of(&s, 1).fresh_as_of(), Some(last), "has the primary's last position");
    assert_eq!(lag_of(&s, 2).fresh_as_of(), Some(t + MS(100)), "last sighting at 150");
    // The primary's probe fails; the replicas answer their full probes, where they stand.
    s.observe(NodeId::new(0), &refused(), last + MS(100));
    s.observe(NodeId::new(1), &seen(Role::Replica, 200), last + MS(101));
    s.observe(NodeId::new(2), &seen(Role::Replica, 150), last + MS(102));
    assert_eq!(lag_of(&s, 1).time(), None, "no primary to measure against");
    assert_eq!(
        lag_of(&s, 1).fresh_as_of(),
        Some(last),
        "the last primary's history still proves it"
    );
    let bound = Staleness::time(MS(500));
    let allowed = |node, after_last: u64| bound.allows_at(&lag_of(&s, node), last + MS(after_last));
    assert!(allowed(1, 300) && allowed(2, 300));
    assert!(allowed(1, 450) && !allowed(2, 450), "replica 2 is 550 ms past its last proof");
    assert!(!allowed(1, 600), "no news of the primary for 600 ms: nothing is within 500 ms");
    // Replica 1 is promoted, on a new timeline; replica 2 still stands on the old one.
    let promoted = PgPosition::new(7, 2, Lsn::new(201));
    let mut obs = seen(Role::Primary, 0).unwrap();
    obs.position = Some(ReplayPosition::Postgres(promoted));
    s.observe(NodeId::new(1), &Ok(obs), last + MS(700));
    s.observe(NodeId::new(2), &seen(Role::Replica, 150), last + MS(701));
    assert_eq!(lag_of(&s, 1), rwsplit_core::Lag::zero(), "the new primary");
    assert_eq!(lag_of(&s, 2).staleness_at(last + MS(701)), None, "the old timeline proves nothing");
}

/// Two nodes claiming the primary role: no replica is proven fresh against either.
#[test]
fn under_split_brain_no_replica_is_proven_fresh() {
    let s = state(3, policy());
    let t = Instant::now();
    steady(&s, t);
    assert!(lag_of(&s, 2).fresh_as_of().is_some());
    s.observe(NodeId::new(1), &seen(Role::Primary, 100), t + MS(10));
    s.observe(NodeId::new(2), &seen(Role::Replica, 100), t + MS(11));
    assert_eq!(lag_of(&s, 2).staleness_at(t + MS(11)), None);
    s.observe_position(NodeId::new(2), pos(100), t + MS(12));
    assert_eq!(lag_of(&s, 2).staleness_at(t + MS(12)), None, "nor through the position feed");
}

/// Monotonic reads' bound: a read that ended at `at` is bounded once a sample *sent* at or
/// after `at` is in the snapshot, whatever its answer time, and whether or not the position
/// moved (an unmoved position publishes nothing new); a probe's sample dates from when it was
/// sent (its answer time less its latency); a fenced primary's samples are never published,
/// so never bound anything.
#[test]
fn a_read_is_bounded_by_the_first_sample_sent_after_it_ended() {
    let s = state(2, policy());
    let t = s.demand.base();
    steady(&s, t + MS(10)); // probes sent at t + 9 ms
    let replica = NodeId::new(1);
    assert!(s.sampled_since(replica, t + MS(9)));
    assert!(!s.sampled_since(replica, t + MS(10)), "sent 1 ms before its answer");
    // A sample sent before the read ended, answered after: no bound.
    let read_end = t + MS(30);
    s.observe_position_sent(replica, pos(100), t + MS(35), t + MS(29));
    assert!(!s.sampled_since(replica, read_end));
    // The same position, sent after: a bound, though nothing was republished.
    let g = s.snapshot().generation();
    s.observe_position_sent(replica, pos(100), t + MS(45), t + MS(40));
    assert_eq!(s.snapshot().generation(), g);
    assert!(s.sampled_since(replica, read_end));
    assert!(!s.sampled_since(replica, t + MS(41)));
    // Never earlier than it was: samples answered out of order keep the latest.
    s.observe_position_sent(replica, pos(100), t + MS(50), t + MS(20));
    assert!(s.sampled_since(replica, t + MS(40)));
    // A fenced primary's positions are not published: they bound nothing.
    let primary = NodeId::new(0);
    assert!(s.set_fenced(primary, true));
    s.observe_position_sent(primary, pos(200), t + MS(70), t + MS(60));
    assert!(!s.sampled_since(primary, t + MS(60)));
    // An id of no node bounds nothing.
    assert!(!s.sampled_since(NodeId::new(5), t));
}

/// A statement's answer after a probe was sent shows the node served since then, give or take
/// the 10 ms grain; none before, and none after a later instant.
#[test]
fn served_since_a_probe_was_sent() {
    let s = state(1, HealthPolicy::default());
    let probe_sent = Instant::now();
    assert!(!s.served_since(NodeId::new(0), probe_sent));
    s.record_success(NodeId::new(0), probe_sent + MS(300));
    assert!(s.served_since(NodeId::new(0), probe_sent));
    assert!(!s.served_since(NodeId::new(0), probe_sent + Duration::from_secs(1)));
}

/// A use is seen by `used_within` for as long as the window lasts.
#[test]
fn a_use_counts_within_its_window() {
    let s = state(1, HealthPolicy::default());
    let later = Instant::now() + Duration::from_secs(10);
    assert!(!s.used_within(later, Duration::from_secs(2)));
    s.used(later);
    assert!(s.used_within(later + Duration::from_secs(1), Duration::from_secs(2)));
}
