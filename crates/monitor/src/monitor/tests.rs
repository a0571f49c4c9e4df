//! The probe loops and failover against a fake PostgreSQL cluster, with paused tokio time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rwsplit_core::{
    Health, HealthPolicy, Lsn, Node, NodeId, PgPosition, ReplayPosition, Role, Topology,
};

use super::*;
use crate::Row;

const MS: fn(u64) -> Duration = Duration::from_millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Answer,
    /// Accepts connections, answers nothing (SIGSTOP).
    Hang,
    /// Refuses connections.
    Refuse,
}

#[derive(Debug)]
struct FakeNode {
    mode: Mode,
    primary: bool,
    lsn: u64,
    receiving: bool,
    /// The postmaster's start time (a different server behind the same connection has
    /// another).
    started: u64,
    /// How often a probe read the control file for its timeline (`pg_control_checkpoint()`).
    control_reads: u32,
    /// How far a standby received by streaming (`pg_last_wal_receive_lsn()`): its position
    /// while it receives, where the receiver left it after.
    streamed: u64,
    /// Another session holds the failover lock here.
    locked_elsewhere: bool,
    /// Replay cannot reach what was received (paused, delayed, blocked by a conflict).
    replay_blocked: bool,
    /// `pg_promote` reports it did not finish in time, and the standby stays in recovery.
    promote_stalls: bool,
    /// The WAL receiver's status is hidden from the account (no `pg_read_all_stats`).
    hidden_receiver: bool,
}

/// A fake cluster: per node its mode, role and position; what each node was asked to execute.
#[derive(Debug, Default)]
struct Cluster {
    nodes: Mutex<Vec<FakeNode>>,
    opens: Mutex<HashMap<usize, u32>>,
    executed: Mutex<Vec<(usize, String)>>,
    /// Per node: how many admin connections to refuse before accepting them again.
    refuse_admin: Mutex<HashMap<usize, u32>>,
    /// Per node: how many re-pointing `ALTER SYSTEM` statements fail before they succeed again.
    fail_alter: Mutex<HashMap<usize, u32>>,
    /// Per node: how long opening a connection takes (a server slow to accept).
    open_delay: Mutex<HashMap<usize, Duration>>,
    /// Per node: how long a statement takes to be answered (a saturated server).
    query_delay: Mutex<HashMap<usize, Duration>>,
    /// Per node: how long a position-feed read takes on top (a server slow to answer it alone).
    feed_delay: Mutex<HashMap<usize, Duration>>,
    /// Per node: how many of its next statements panic in the driver (sqlx-mysql 0.9 did,
    /// decoding a packet cut short).
    panics: Mutex<HashMap<usize, u32>>,
    /// Statements whose future was dropped before they were answered: a driver's query given up
    /// half-way, its connection's protocol state left to the driver's recovery.
    dropped: Mutex<Vec<(usize, String)>>,
}

impl Cluster {
    fn new(lsns: &[u64]) -> Arc<Cluster> {
        let nodes = lsns
            .iter()
            .enumerate()
            .map(|(i, &lsn)| FakeNode {
                mode: Mode::Answer,
                primary: i == 0,
                lsn,
                receiving: true,
                started: 1,
                control_reads: 0,
                streamed: lsn,
                locked_elsewhere: false,
                replay_blocked: false,
                promote_stalls: false,
                hidden_receiver: false,
            })
            .collect();
        Arc::new(Cluster { nodes: Mutex::new(nodes), ..Cluster::default() })
    }

    fn set(&self, node: usize, f: impl FnOnce(&mut FakeNode)) {
        f(&mut self.nodes.lock().unwrap()[node]);
    }

    fn mode(&self, node: usize) -> Mode {
        self.nodes.lock().unwrap()[node].mode
    }

    fn opens(&self, node: usize) -> u32 {
        self.opens.lock().unwrap().get(&node).copied().unwrap_or(0)
    }

    fn executed_on(&self, node: usize) -> Vec<String> {
        self.executed
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| *n == node)
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn answer(&self, node: usize, sql: &str) -> Option<Row> {
        let mut nodes = self.nodes.lock().unwrap();
        let n = &mut nodes[node];
        let lsn = format!("0/{:X}", n.lsn);
        let recovery = if n.primary { "false" } else { "true" };
        let started = n.started.to_string();
        if sql.contains("pg_promote") {
            if n.promote_stalls {
                return Some(Row::new([("v", Some("false"))]));
            }
            n.primary = true;
            n.receiving = false;
            return Some(Row::new([("v", Some("true"))]));
        }
        if sql.contains("pg_is_in_recovery())::text AS v") {
            return Some(Row::new([("v", Some(if n.primary { "true" } else { "false" }))]));
        }
        if sql.contains("pg_stat_wal_receiver") && sql.contains("status") {
            // A receiver that lost its primary has no row here; one the account may not see
            // has a NULL status.
            return (!n.primary && n.receiving)
                .then(|| Row::new([("status", (!n.hidden_receiver).then_some("streaming"))]));
        }
        if sql.contains("advisory_lock") || sql.contains("pg_locks") {
            let v = if sql.contains("unlock") || !n.locked_elsewhere { "true" } else { "false" };
            return Some(Row::new([("v", Some(v))]));
        }
        if sql.contains("WITH RECURSIVE w(i)") {
            return Some(Row::new([("v", Some(if n.replay_blocked { "false" } else { "true" }))]));
        }
        if sql.contains("GREATEST") {
            return Some(Row::new([
                ("in_recovery", Some(recovery)),
                ("timeline", Some("1")),
                ("received", Some(lsn.as_str())),
            ]));
        }
        if sql.contains("current_setting") {
            return Some(Row::new([(
                "v",
                Some(if sql.contains("slot") { "" } else { "host=old port=1" }),
            )]));
        }
        if is_feed_read(sql) {
            return Some(Row::new([
                ("in_recovery", Some(recovery)),
                ("replayed", Some(lsn.as_str())),
            ]));
        }
        let read = read_of(sql)?;
        // A standby without a WAL receiver (no row in `pg_stat_wal_receiver`) has its timeline
        // from the control file where the probe falls back to it when the view has no row,
        // NULL where it reads the control file only for a row's hidden one (`known`).
        let receiver = n.primary || n.receiving;
        let read_file = !receiver && read != "known";
        n.control_reads += u32::from(read_file);
        let timeline = (receiver || read_file).then_some("1");
        if n.receiving {
            n.streamed = n.lsn;
        }
        let received = format!("0/{:X}", n.streamed);
        let received = (!n.primary).then_some(received.as_str());
        let tli_received = (!n.primary && n.receiving).then_some("true");
        Some(Row::new([
            ("in_recovery", Some(recovery)),
            ("system_id", (read == "first").then_some("7")),
            ("timeline", timeline),
            ("replayed", Some(lsn.as_str())),
            ("received", received),
            ("since_replay_ms", Some("0")),
            ("paused", Some("false")),
            ("started", Some(started.as_str())),
            ("tli_received", tli_received),
        ]))
    }
}

struct FakeConn {
    cluster: Arc<Cluster>,
    node: usize,
}

/// Counts a statement dropped before it was answered ([`Cluster::dropped`]).
struct InFlight<'a> {
    cluster: &'a Cluster,
    node: usize,
    sql: &'a str,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cluster.dropped.lock().unwrap().push((self.node, self.sql.to_owned()));
        }
    }
}

/// What a full probe read: the probe statement's parameter, which the fake writes before the
/// text (`/* first */ SELECT …`, see `fetch_row_with`): `first` (a connection's first probe,
/// which reads the control file for the system identifier), `probe` or `known`.
fn read_of(sql: &str) -> Option<&str> {
    sql.strip_prefix("/* ")?.split_once(" */").map(|(read, _)| read)
}

/// A position-feed read, not a full probe.
fn is_feed_read(sql: &str) -> bool {
    read_of(sql).is_none() && sql.contains("pg_last_wal_replay_lsn")
}

/// A full probe.
fn is_full_probe(sql: &str) -> bool {
    read_of(sql).is_some()
}

impl ProbeConn for FakeConn {
    async fn fetch_row_with(&self, sql: &str, arg: &str) -> Result<Option<Row>, ProbeError> {
        // The run's parameter written before the text, for the fake to read (`read_of`).
        self.fetch_row(&format!("/* {arg} */ {sql}")).await
    }

    async fn fetch_row(&self, sql: &str) -> Result<Option<Row>, ProbeError> {
        let mut in_flight = InFlight { cluster: &self.cluster, node: self.node, sql, done: false };
        let delay = self.cluster.query_delay.lock().unwrap().get(&self.node).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let feed_delay = self.cluster.feed_delay.lock().unwrap().get(&self.node).copied();
        if let (Some(delay), true) = (feed_delay, is_feed_read(sql)) {
            tokio::time::sleep(delay).await;
        }
        let panics = match self.cluster.panics.lock().unwrap().get_mut(&self.node) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        in_flight.done = true;
        // Not under the lock: the test reads it after.
        assert!(!panics, "a driver bug: a packet cut short (node {})", self.node);
        in_flight.done = true;
        match self.cluster.mode(self.node) {
            Mode::Hang => std::future::pending().await,
            Mode::Refuse => Err(ProbeError::unreachable("connection reset")),
            Mode::Answer => {
                // A re-pointing's (not detaching one from the old primary, nor pointing it back).
                let repointing = sql.contains("ALTER SYSTEM")
                    && !sql.contains("= ''")
                    && !sql.contains("host=old");
                if repointing
                    && let Some(left) = self.cluster.fail_alter.lock().unwrap().get_mut(&self.node)
                    && *left > 0
                {
                    *left -= 1;
                    return Err(ProbeError::unreachable("could not write postgresql.auto.conf"));
                }
                self.cluster.executed.lock().unwrap().push((self.node, sql.to_owned()));
                Ok(self.cluster.answer(self.node, sql))
            }
        }
    }
}

struct FakeConnector(Arc<Cluster>);

impl Connector for FakeConnector {
    type Conn = FakeConn;

    async fn open(&self, id: NodeId, purpose: Purpose) -> Result<FakeConn, ProbeError> {
        // The fake cluster's servers are by index.
        let node = id.index();
        *self.0.opens.lock().unwrap().entry(node).or_default() += 1;
        if purpose == Purpose::Admin
            && let Some(left) = self.0.refuse_admin.lock().unwrap().get_mut(&node)
            && *left > 0
        {
            *left -= 1;
            return Err(ProbeError::unreachable("too many connections"));
        }
        let delay = self.0.open_delay.lock().unwrap().get(&node).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        match self.0.mode(node) {
            Mode::Refuse => Err(ProbeError::unreachable("connection refused")),
            // A frozen server's kernel still accepts the TCP connection; the handshake hangs.
            Mode::Hang => std::future::pending().await,
            Mode::Answer => Ok(FakeConn { cluster: Arc::clone(&self.0), node }),
        }
    }
}

/// Generation-0 ids at `indices`.
fn ids(indices: &[u16]) -> Vec<NodeId> {
    indices.iter().map(|&i| NodeId::new(i)).collect()
}

fn start(cluster: &Arc<Cluster>, failover: Option<AutoFailover>) -> Monitor {
    let n = cluster.nodes.lock().unwrap().len();
    let mut b = Topology::builder();
    for i in 0..n {
        let role = if i == 0 { Role::Primary } else { Role::Replica };
        let id = NodeId::new(u16::try_from(i).unwrap());
        b = b.node(Node::builder(id, role).name(format!("10.0.0.{i}:5432/app")).build());
    }
    let state = Arc::new(TopologyState::new(b.build().unwrap(), HealthPolicy::default()));
    let config = MonitorConfig::default()
        .probe_interval(MS(200))
        .probe_timeout(MS(500))
        .probe_jitter(Duration::ZERO)
        // The idle pace has its own test (`an_unused_cluster_is_probed_at_the_idle_pace`).
        .idle_probe_interval(MS(200));
    Monitor::start(
        state,
        FakeConnector(Arc::clone(cluster)),
        Flavor::Postgres,
        config,
        failover,
        None,
    )
}

/// A reader wants positions for `linger` from now.
fn want(m: &Monitor, linger: Duration) {
    let now = tokio::time::Instant::now().into_std();
    m.state().want_positions(now, now + linger);
}

/// How many position-feed reads (not full probes) node `node` answered.
fn feed_reads(cluster: &Cluster, node: usize) -> usize {
    cluster.executed_on(node).iter().filter(|s| is_feed_read(s)).count()
}

fn pos(lsn: u64) -> ReplayPosition {
    ReplayPosition::Postgres(PgPosition::new(7, 1, Lsn::new(lsn)))
}

#[tokio::test(start_paused = true)]
async fn the_first_round_knows_every_node_at_once() {
    let cluster = Cluster::new(&[0x300, 0x200, 0x100]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    let topo = m.state().snapshot();
    assert_eq!(topo.node(NodeId::new(2)).unwrap().position(), Some(&pos(0x100)));
    assert_eq!(topo.node(NodeId::new(2)).unwrap().lag().bytes(), Some(0x200));
}

#[tokio::test(start_paused = true)]
async fn a_frozen_node_goes_down_and_the_others_do_not_wait_for_it() {
    let cluster = Cluster::new(&[0x300, 0x300, 0x300]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    cluster.set(1, |n| n.mode = Mode::Hang);
    // A probe timeout (500 ms) plus the interval (200 ms) per failure; three fail a node.
    tokio::time::sleep(MS(3 * 700 + 100)).await;
    assert_eq!(m.state().health(NodeId::new(1)), Health::Down);
    assert_eq!(m.state().health(NodeId::new(0)), Health::Up);
    assert_eq!(m.state().health(NodeId::new(2)), Health::Up);
    // Meanwhile the others kept reporting positions.
    cluster.set(2, |n| n.lsn = 0x400);
    tokio::time::sleep(MS(250)).await;
    assert_eq!(m.state().snapshot().node(NodeId::new(2)).unwrap().position(), Some(&pos(0x400)));
    // Thawed: readmitted after its ban (5 s) and two good probes.
    cluster.set(1, |n| n.mode = Mode::Answer);
    tokio::time::sleep(MS(5_000 + 3 * 200 + 100)).await;
    assert_eq!(m.state().health(NodeId::new(1)), Health::Up);
}

/// A server slow to accept connections (a fleet connecting at once) finishes the
/// handshake it began for the next probe: were each probe to abandon its half-done connect at
/// the probe timeout and begin another, a server slower to accept than the timeout would never
/// answer a probe and be marked down, each round costing it one more backend.
#[tokio::test(start_paused = true)]
async fn a_slow_reconnect_is_finished_for_the_next_probe_not_begun_again() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    assert!(m.first_round(MS(100)).await);
    // The node drops its connection (one failed probe); reconnecting is slower than the probe
    // timeout (500 ms), faster than the patience (three timeouts).
    cluster.open_delay.lock().unwrap().insert(1, MS(600));
    cluster.set(1, |n| n.mode = Mode::Refuse);
    tokio::time::sleep(MS(250)).await;
    assert_eq!(m.state().failed_probes(node), 1);
    cluster.set(1, |n| n.mode = Mode::Answer);
    // The next probe (at 400 ms) gives up waiting at 900 ms, as a probe of a node that was
    // answering does; the one after (at 1100 ms) finds the connection the first one began.
    tokio::time::sleep(MS(700)).await;
    assert_eq!(m.state().failed_probes(node), 2);
    tokio::time::sleep(MS(2_000)).await;
    assert_eq!(m.state().failed_probes(node), 2, "two failures, then the connection it began");
    assert_eq!(cluster.opens(1), 2, "the reconnect was finished, not begun again");
    assert_eq!(m.state().health(node), Health::Up);
}

/// A fleet's start: a node's first connection is waited for as long as a connect may
/// take (the maximum probe timeout: 5 s here, ten probe timeouts), so a server slow to accept
/// while a fleet starts is not marked suspect or down before it has had a chance to answer; and
/// the connect's time is an answer's, so the probes after it are patient too.
#[tokio::test(start_paused = true)]
async fn a_first_connect_slower_than_the_probe_timeout_is_no_failure() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    // Eight probe timeouts (500 ms), within the patience (5 s).
    cluster.open_delay.lock().unwrap().insert(1, MS(4_000));
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    assert!(m.first_round(MS(4_100)).await, "the first round waits for the slow connect");
    assert_eq!(m.state().failed_probes(node), 0);
    assert_eq!(m.state().changes(node), 0, "never suspect, never down");
    assert_eq!(m.state().snapshot().node(node).unwrap().position(), Some(&pos(0x300)));
    tokio::time::sleep(MS(2_000)).await;
    assert_eq!((m.state().failed_probes(node), cluster.opens(1)), (0, 1));
    assert_eq!(m.state().health(node), Health::Up);
}

/// A node's first answer is part of its connection's setup (a new backend loads its
/// caches and reads the control file for the server's identity; on a server a whole fleet is
/// connecting to at once it waits behind theirs), so it is waited for with the connect, up to
/// the patience (5 s here), not the probe timeout (500 ms): a first answer in 2 s is no
/// failure, and the probes after it are patient while the node stays that slow.
#[tokio::test(start_paused = true)]
async fn a_first_answer_slower_than_the_probe_timeout_is_no_failure() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    cluster.query_delay.lock().unwrap().insert(1, MS(2_000));
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    assert!(m.first_round(MS(2_100)).await, "the first round waits for the slow answer");
    assert_eq!(m.state().failed_probes(node), 0);
    assert_eq!(m.state().changes(node), 0, "never suspect, never down");
    assert_eq!(m.state().snapshot().node(node).unwrap().position(), Some(&pos(0x300)));
    // Later probes: the 2 s answer stretched their timeout (three times it, at most 5 s).
    tokio::time::sleep(MS(6_000)).await;
    assert_eq!(m.state().failed_probes(node), 0);
    // A node that answers its first probe and then stops is caught at the probe timeout.
    cluster.query_delay.lock().unwrap().remove(&1);
    tokio::time::sleep(MS(60_000)).await;
    cluster.set(1, |n| n.mode = Mode::Hang);
    tokio::time::sleep(MS(2_000)).await;
    assert!(m.state().failed_probes(node) >= 1, "caught at the (relaxed) probe timeout");
}

/// A first connect that never completes (a server frozen before the application started) fails
/// the first probe when the patience (5 s) runs out; later probes wait the probe timeout as
/// usual, so the node is down that much later than one frozen while answering would be. A
/// node's first connect goes on for the probes after the first, twice the patience in all
/// (10 s), and is then begun afresh.
#[tokio::test(start_paused = true)]
async fn a_connect_that_never_completes_fails_at_the_patience_and_is_begun_afresh() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    cluster.set(1, |n| n.mode = Mode::Hang);
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    tokio::time::sleep(MS(4_900)).await;
    assert_eq!(m.state().failed_probes(node), 0, "the first probe is still waiting");
    // 5,000: the first probe fails; probes at 5,200 and 5,900 wait for the same connect and
    // fail at 5,700 and 6,400.
    tokio::time::sleep(MS(200)).await;
    assert_eq!(m.state().failed_probes(node), 1);
    assert_eq!(m.state().health(node), Health::Suspect);
    tokio::time::sleep(MS(1_400)).await;
    assert_eq!(m.state().failed_probes(node), 3);
    assert_eq!(m.state().health(node), Health::Down);
    tokio::time::sleep(MS(3_300)).await;
    assert_eq!(cluster.opens(1), 1, "9,900: still the first connect");
    tokio::time::sleep(MS(700)).await;
    assert_eq!(cluster.opens(1), 2, "given up at 10,000 and begun afresh");
}

/// A fleet's start: a first connect slower than the first probe's patience (a listen
/// queue a whole fleet is waiting in) fails that probe, and the one after, but is not given up:
/// the next probe finds it done and the node answers, never marked down (a connect dropped
/// with the first probe would begin again at the back of the queue, and the probes would time
/// out until it came round again).
#[tokio::test(start_paused = true)]
async fn a_first_connect_slower_than_the_patience_is_kept_for_the_next_probes() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    // Past the patience (5 s), within twice it.
    cluster.open_delay.lock().unwrap().insert(1, MS(6_000));
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    // 5,000: the first probe fails; the probe at 5,200 fails at 5,700; the one at 5,900 finds
    // the connect done at 6,000.
    tokio::time::sleep(MS(5_800)).await;
    assert_eq!(m.state().failed_probes(node), 2);
    assert_eq!(m.state().health(node), Health::Suspect);
    tokio::time::sleep(MS(2_200)).await;
    assert_eq!(m.state().failed_probes(node), 2, "answered on the connect it began");
    assert_eq!(cluster.opens(1), 1, "one connect");
    assert_eq!(m.state().health(node), Health::Up);
    assert_eq!(m.state().snapshot().node(node).unwrap().position(), Some(&pos(0x300)));
}

/// A fleet's start on a slow machine: the monitor's first connection to a node waits in the
/// server's listen queue (the postmaster accepts one connection after another, hundreds behind it)
/// while the application's statements, on connections opened before, are answered. Its probes time
/// out waiting for that connect after the first probe's patience, and go on timing out after the
/// application's statements stop (the fleet benchmark's window ends, an application between
/// requests); counted as failures, they would mark a serving node suspect and down. So a node the
/// monitor has not reached is busy while it answered the application within a connect timeout (5 s
/// here); one that stops answering everyone fails that much after its last answer, well before its
/// first connect is given up (10 s).
#[rstest::rstest]
#[case::accepted_at_last(MS(6_500), false)]
#[case::never_accepted(MS(60_000), true)]
#[tokio::test(start_paused = true)]
async fn a_first_connect_queued_behind_the_application_s_is_busy_while_the_node_answers(
    #[case] accepted_after: Duration,
    #[case] fails: bool,
) {
    let cluster = Cluster::new(&[0x300, 0x300]);
    cluster.open_delay.lock().unwrap().insert(1, accepted_after);
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    // The application's statements are answered for the first 2 s, then it has none to send.
    let state = Arc::clone(m.state());
    tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(MS(100)).await;
            state.record_success(node, tokio::time::Instant::now().into_std());
        }
    });
    // 7 s: the last answer (2 s) is within a connect timeout (5 s).
    tokio::time::sleep(MS(6_900)).await;
    assert_eq!(m.state().failed_probes(node), 0, "busy, not failed");
    assert!(m.state().busy_probes(node) >= 2, "busy: {}", m.state().busy_probes(node));
    assert_eq!(m.state().changes(node), 0);
    tokio::time::sleep(MS(2_000)).await;
    if fails {
        // Nothing answered since 2 s: the probes from 7 s on fail, before the first connect
        // is given up at 10 s.
        assert!(m.state().failed_probes(node) >= 1);
        assert_ne!(m.state().health(node), Health::Up);
        assert_eq!(cluster.opens(1), 1, "the first connect, still waited for");
    } else {
        // Accepted at 6.5 s: answered on the first connect.
        assert_eq!(m.state().failed_probes(node), 0);
        assert_eq!((m.state().health(node), m.state().changes(node)), (Health::Up, 0));
        assert_eq!(m.state().snapshot().node(node).unwrap().position(), Some(&pos(0x300)));
        assert_eq!(cluster.opens(1), 1);
    }
}

/// A probe that times out behind the application's own statements (a server
/// saturated by a fleet) is busy, not failed, while the node keeps answering those statements;
/// once it answers nothing (frozen), the probes fail.
#[tokio::test(start_paused = true)]
async fn a_probe_timeout_while_the_node_serves_statements_is_busy_not_a_failure() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    assert!(m.first_round(MS(100)).await);
    // Probes hang (the server is slow to get to them); the application's statements are
    // answered every 100 ms.
    cluster.set(1, |n| n.mode = Mode::Hang);
    let state = Arc::clone(m.state());
    let serving = tokio::spawn(async move {
        loop {
            tokio::time::sleep(MS(100)).await;
            state.record_success(node, tokio::time::Instant::now().into_std());
        }
    });
    tokio::time::sleep(MS(3_000)).await;
    assert_eq!(m.state().failed_probes(node), 0);
    assert!(m.state().busy_probes(node) >= 3, "busy: {}", m.state().busy_probes(node));
    assert_eq!((m.state().health(node), m.state().changes(node)), (Health::Up, 0));
    // Frozen: nothing answered any more. The probe in flight saw answers (busy); the next
    // three time out (500 ms each, 200 ms apart).
    serving.abort();
    tokio::time::sleep(MS(4 * 700)).await;
    assert_eq!(m.state().health(node), Health::Down);
    assert!(m.state().failed_probes(node) >= 3);
}

/// A probe answered after its timeout (a saturated server answers late, not never) keeps its
/// connection, and the next probe takes the answer that comes while it waits as its own.
/// (Were each timed-out probe to drop its connection, the next would make the server fork a new
/// backend and still time out, and the node would go down after three rounds.) And the late
/// answer says how slow the node is: the probes after it wait three times that, so only the
/// first probe to meet the slowness times out.
#[tokio::test(start_paused = true)]
async fn a_probe_answered_late_keeps_its_connection_and_the_next_probe_takes_the_answer() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    assert!(m.first_round(MS(100)).await);
    // Answers take 800 ms: past the probe timeout (500 ms), within the patience (1,500 ms).
    cluster.query_delay.lock().unwrap().insert(1, MS(800));
    cluster.set(1, |n| n.lsn = 0x400);
    tokio::time::sleep(MS(5_000)).await;
    assert_eq!(cluster.opens(1), 1, "the connection was kept");
    assert_eq!(m.state().health(node), Health::Up, "late is not dead");
    assert_eq!(m.state().failed_probes(node), 1, "only the first slow probe timed out");
    assert_eq!(
        m.state().snapshot().node(node).unwrap().position(),
        Some(&pos(0x400)),
        "the late answers are read"
    );
    // Back to prompt answers: still up, same connection.
    cluster.query_delay.lock().unwrap().remove(&1);
    tokio::time::sleep(MS(2_000)).await;
    assert_eq!(m.state().health(node), Health::Up);
    assert_eq!(cluster.opens(1), 1);
}

/// A node frozen long enough to be marked down answers, when it thaws, the query a probe sent
/// before the freeze: that answer measured the freeze, not the node's pace, so it stretches
/// nothing. Frozen again, the node is caught at the configured timeout (one round), not at the
/// maximum (5 s here) a stretched patience would allow.
#[tokio::test(start_paused = true)]
async fn an_answer_that_comes_after_the_node_went_down_stretches_nothing() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    assert!(m.first_round(MS(100)).await);
    // Frozen for 4 s: the query in flight is answered when it thaws.
    cluster.query_delay.lock().unwrap().insert(1, MS(4_000));
    tokio::time::sleep(MS(3_000)).await;
    assert_eq!(m.state().health(node), Health::Down);
    cluster.query_delay.lock().unwrap().remove(&1);
    // Back up once its ban (5 s) is over.
    let thawed = tokio::time::Instant::now();
    while m.state().health(node) != Health::Up {
        assert!(thawed.elapsed() < MS(10_000), "up again after its ban");
        tokio::time::sleep(MS(100)).await;
    }
    tokio::time::sleep(MS(1_000)).await;
    let failed = m.state().failed_probes(node);
    cluster.set(1, |n| n.mode = Mode::Hang);
    // One round: the interval (200 ms) and the configured timeout (500 ms).
    tokio::time::sleep(MS(200 + 500 + 100)).await;
    assert_eq!(m.state().failed_probes(node), failed + 1, "caught at the configured timeout");
    assert_eq!(m.state().health(node), Health::Suspect);
}

/// A node whose answers slow down step by step (load climbing: 100 ms, then 300, 600, 1,200,
/// 2,400 ms, past four times the configured 500 ms timeout) is never failed: each probe waits
/// three times the slowest recent answer. When it then stops answering altogether it is still
/// caught, at the stretched timeout: down within three probes of at most the maximum (ten
/// timeouts, 5 s) each.
#[tokio::test(start_paused = true)]
async fn a_node_slowing_down_step_by_step_is_busy_and_caught_when_it_stops() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    assert!(m.first_round(MS(100)).await);
    for step in [100, 300, 600, 1_200, 2_400] {
        cluster.query_delay.lock().unwrap().insert(1, MS(step));
        tokio::time::sleep(MS(4_000)).await;
    }
    assert_eq!(m.state().failed_probes(node), 0, "slow is not failed");
    assert_eq!(m.state().health(node), Health::Up);
    cluster.set(1, |n| n.mode = Mode::Hang);
    let hung = tokio::time::Instant::now();
    while m.state().health(node) != Health::Down {
        tokio::time::sleep(MS(100)).await;
        assert!(hung.elapsed() < MS(3 * (5_000 + 200) + 2_400 + 500), "caught within the maximum");
    }
    assert_eq!(m.state().failed_probes(node), 3);
}

/// A query that is never answered on a connection that stays open (the server froze after accepting
/// it) fails every probe at the probe timeout: the node is down after three rounds. The query is
/// given up after the patience (5 s) and the next probe connects afresh.
#[tokio::test(start_paused = true)]
async fn a_query_never_answered_fails_each_probe_and_is_given_up_at_the_patience() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    assert!(m.first_round(MS(100)).await);
    cluster.query_delay.lock().unwrap().insert(1, Duration::from_secs(3_600));
    // A probe timeout (500 ms) plus the interval (200 ms) per failure; three fail a node.
    tokio::time::sleep(MS(3 * 700 + 100)).await;
    assert_eq!(m.state().health(node), Health::Down);
    assert_eq!(m.state().failed_probes(node), 3);
    assert_eq!(cluster.opens(1), 1, "the query is still being waited for");
    tokio::time::sleep(MS(3_500)).await;
    assert_eq!(cluster.opens(1), 2, "given up 5 s after it was sent; one reconnect");
}

/// One `probe failed` event: the thread it was emitted on, its node and, for a timeout, what
/// the probe waited for (its `waited` field).
type ProbeEvent = (std::thread::ThreadId, String, Option<String>);

/// The `probe failed` events of the test binary, collected by a global subscriber
/// ([`probe_events`]); a test reads those of its own thread (its current-thread runtime runs
/// the monitor's tasks there).
#[derive(Debug, Clone, Default)]
struct ProbeEvents(Arc<Mutex<Vec<ProbeEvent>>>);

/// The global collector of `probe failed` events, installed once. Global rather than a
/// test's scoped default (`set_default`): a callsite's interest is cached for every thread,
/// and a test on another thread reaching the `probe failed` callsite while the scoped
/// subscriber was being registered could cache it as uninteresting (the test then saw no
/// event at all, about one full run of this crate's tests in five).
fn probe_events() -> &'static ProbeEvents {
    static EVENTS: std::sync::OnceLock<ProbeEvents> = std::sync::OnceLock::new();
    EVENTS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let events = ProbeEvents::default();
        let subscriber = tracing_subscriber::registry().with(events.clone());
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this crate's tests");
        events
    })
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ProbeEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Fields {
            message: String,
            node: String,
            waited: Option<String>,
        }
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "waited" {
                    self.waited = Some(value.to_owned());
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "message" => self.message = format!("{value:?}"),
                    "node" => self.node = format!("{value:?}"),
                    _ => {}
                }
            }
        }
        let mut f = Fields::default();
        event.record(&mut f);
        if f.message == "probe failed" {
            self.0.lock().unwrap().push((std::thread::current().id(), f.node, f.waited));
        }
    }
}

/// A probe that timed out says what it waited for: an answer on its open connection
/// (`waited = "answer"`: a server that stopped answering) or a connection being opened
/// (`"connect"`: one that accepts TCP and never completes the handshake); a failure that is no
/// timeout says neither. An operator reading why a node was banned, and the fleet benchmark,
/// tell a server slow to accept connections from one slow to answer by it.
#[tokio::test(start_paused = true)]
async fn a_probe_timeout_says_whether_it_waited_for_a_connection_or_an_answer() {
    let events = probe_events();
    // A callsite another thread registered while the collector was being installed may have
    // cached the interest of no subscriber: asked again, with the collector in place.
    tracing::callsite::rebuild_interest_cache();
    let cluster = Cluster::new(&[0x300, 0x300, 0x300]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    // Node 1 stops answering on its open connection; node 2 drops it (refused), then hangs in
    // every handshake.
    cluster.set(1, |n| n.mode = Mode::Hang);
    cluster.set(2, |n| n.mode = Mode::Refuse);
    tokio::time::sleep(MS(300)).await;
    cluster.set(2, |n| n.mode = Mode::Hang);
    tokio::time::sleep(MS(3_000)).await;
    let me = std::thread::current().id();
    let seen: Vec<_> = events.0.lock().unwrap().iter().filter(|e| e.0 == me).cloned().collect();
    let of = |node: &str| -> Vec<Option<&str>> {
        seen.iter().filter(|(_, n, _)| n.starts_with(node)).map(|(_, _, w)| w.as_deref()).collect()
    };
    let (n1, n2) = (of("10.0.0.1:"), of("10.0.0.2:"));
    assert!(n1.len() >= 3 && n1.iter().all(|w| *w == Some("answer")), "n1: {n1:?}");
    // Refused first (no timeout: nothing waited for), then handshakes that never complete.
    let refused = n2.iter().take_while(|w| w.is_none()).count();
    assert!(refused >= 1, "n2: {n2:?}");
    assert!(n2.len() >= refused + 2, "n2: {n2:?}");
    assert!(n2[refused..].iter().all(|w| *w == Some("connect")), "n2: {n2:?}");
    assert!(of("10.0.0.0:").is_empty(), "the primary answered throughout");
    assert_eq!(m.state().health(NodeId::new(0)), Health::Up);
}

/// A probe held up by a position-feed read that the node never answers (the read was in
/// flight when it froze, and handed to the probe) says so: `waited = "feed"`, not the
/// probe's own query.
#[tokio::test(start_paused = true)]
async fn a_probe_held_up_by_an_unanswered_feed_read_says_it_waited_for_the_feed() {
    let events = probe_events();
    tracing::callsite::rebuild_interest_cache();
    let cluster = Cluster::new(&[0x300, 0x300]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    // The feed reads every 20 ms; the node freezes between two probe turns (0, 200 … ms), so
    // a feed read is what is in flight at the next turn.
    want(&m, MS(10_000));
    tokio::time::sleep(MS(50)).await;
    cluster.set(1, |n| n.mode = Mode::Hang);
    tokio::time::sleep(MS(2_000)).await;
    let me = std::thread::current().id();
    let n1: Vec<Option<String>> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.0 == me && e.1.starts_with("10.0.0.1:"))
        .map(|e| e.2.clone())
        .collect();
    assert!(!n1.is_empty(), "the frozen node's probes failed");
    assert!(n1.iter().all(|w| w.as_deref() == Some("feed")), "n1: {n1:?}");
    assert_ne!(m.state().health(NodeId::new(1)), Health::Up);
}

/// A driver that panics on a probe's statement or a feed read fails that probe (or ends that
/// feed) and the connection is opened afresh: the node's loop goes on (a panic unwinding
/// through the loop would leave the node never probed again; sqlx-mysql 0.9 can panic decoding
/// a column definition cut short).
#[rstest::rstest]
#[case::probe(false)]
#[case::feed(true)]
#[tokio::test(start_paused = true)]
async fn a_driver_that_panics_costs_its_connection_not_the_node_s_monitoring(#[case] feed: bool) {
    let cluster = Cluster::new(&[0x300, 0x100]);
    let m = start(&cluster, None);
    let node = NodeId::new(1);
    assert!(m.first_round(MS(100)).await);
    tokio::time::sleep(MS(50)).await;
    if feed {
        want(&m, MS(5_000));
        tokio::time::sleep(MS(1)).await;
    }
    let before = cluster.executed_on(1).len();
    cluster.panics.lock().unwrap().insert(1, 1);
    tokio::time::sleep(MS(1_000)).await;
    assert_eq!(cluster.panics.lock().unwrap()[&1], 0, "the statement panicked");
    assert_eq!(cluster.opens(1), 2, "the connection went with the panic and was opened afresh");
    let after = cluster.executed_on(1).len();
    assert!(after >= before + 4, "the node is still probed: {before} then {after} statements");
    cluster.set(1, |n| n.lsn = 0x250);
    tokio::time::sleep(MS(250)).await;
    let seen = m.state().snapshot().node(node).unwrap().position().cloned();
    assert_eq!(seen, Some(pos(0x250)), "and its position still followed");
    assert_eq!(m.state().health(node), Health::Up);
    // A probe's panic is one failed probe; a feed read's, none (the next probe reconnects).
    assert_eq!(m.state().failed_probes(node), u64::from(!feed));
}

/// A primary and a replica whose positions are wanted for 5 s from the first round: the
/// feed reads the replica every 20 ms between the probes (every 200 ms). 150 ms in, each of
/// the replica's feed reads starts taking `delay` longer.
async fn feeding_then_slow(delay: Duration) -> (Arc<Cluster>, Monitor) {
    let cluster = Cluster::new(&[0x300, 0x100]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    want(&m, MS(5_000));
    tokio::time::sleep(MS(150)).await;
    cluster.feed_delay.lock().unwrap().insert(1, delay);
    (cluster, m)
}

/// A feed read still unanswered when the next full probe is due is handed to that probe, never
/// dropped half-way: the probe waits for its answer, then asks afresh on the same connection,
/// so the probe's statement never goes out on a connection with a query's answer still unread.
#[tokio::test(start_paused = true)]
async fn a_feed_read_unanswered_at_the_probe_s_turn_is_handed_to_the_probe() {
    // Probes at 0, 200, 400 … ms: the feed reads every 20 ms from the start, and from 150 ms
    // each takes 90 ms, so the one sent at 160 is in flight at the round's turn.
    let (cluster, m) = feeding_then_slow(MS(90)).await;
    let node = NodeId::new(1);
    cluster.set(1, |n| n.lsn = 0x250);
    tokio::time::sleep(MS(2_000)).await;
    let dropped = cluster.dropped.lock().unwrap().clone();
    assert_eq!(dropped, vec![], "statements dropped before their answer");
    assert_eq!(cluster.opens(1), 1, "one connection throughout");
    assert_eq!(m.state().failed_probes(node), 0, "a slow feed read fails no probe");
    assert_eq!(m.state().snapshot().node(node).unwrap().position(), Some(&pos(0x250)));
    let handed = feed_reads(&cluster, 1);
    assert!(handed >= 5, "the feed went on: {handed} reads");
}

/// A fleet's start: a feed read handed to the probe and answered while the probe
/// waits is the node answering within the probe's timeout, so the probe's own query is then
/// waited for a whole timeout from that answer, not what the feed read left of the probe's
/// timeout: with that rest only, a server that stalled for most of a timeout and answered
/// everything at once would have its next probe fail, and the node marked suspect, for a stall
/// shorter than the timeout. A node that answers the feed read and then freezes is still
/// caught, a timeout after its last answer.
#[rstest::rstest]
#[case::then_answers(false)]
#[case::then_freezes(true)]
#[tokio::test(start_paused = true)]
async fn a_feed_read_answered_while_the_probe_waits_leaves_the_probe_a_whole_timeout(
    #[case] freezes: bool,
) {
    // Probes at 0, 200, 400 … ms, waited 500 ms; the feed reads every 20 ms. The one sent
    // between 150 and 175 ms takes 440 ms (a stall): it is in flight at the 200 ms turn, and
    // answered at about 600 ms, 400 ms into that probe's wait.
    let (cluster, m) = feeding_then_slow(MS(440)).await;
    let node = NodeId::new(1);
    tokio::time::sleep(MS(25)).await;
    cluster.feed_delay.lock().unwrap().clear();
    // The probe's own statement then takes 150 ms: past the first 500 ms, within 500 ms of the
    // feed's answer. Or the node freezes once it has answered the feed read.
    tokio::time::sleep(MS(100)).await;
    cluster.query_delay.lock().unwrap().insert(1, MS(150));
    if freezes {
        tokio::time::sleep(MS(350)).await;
        cluster.set(1, |n| n.mode = Mode::Hang);
        tokio::time::sleep(MS(2_000)).await;
        assert!(m.state().failed_probes(node) >= 1, "a node frozen after the feed's answer");
        assert_ne!(m.state().health(node), Health::Up);
        return;
    }
    tokio::time::sleep(MS(2_000)).await;
    assert_eq!(m.state().failed_probes(node), 0, "a stall shorter than the timeout");
    assert_eq!(m.state().health(node), Health::Up);
    assert_eq!(cluster.opens(1), 1, "one connection throughout");
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_drops_its_connection_and_the_next_opens_a_fresh_one() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    tokio::time::sleep(MS(1_000)).await;
    assert_eq!(cluster.opens(1), 1, "a healthy node keeps its one connection");
    cluster.set(1, |n| n.mode = Mode::Refuse);
    tokio::time::sleep(MS(300)).await;
    cluster.set(1, |n| n.mode = Mode::Answer);
    tokio::time::sleep(MS(500)).await;
    assert!(cluster.opens(1) >= 2, "opens: {}", cluster.opens(1));
    assert_ne!(m.state().health(NodeId::new(1)), Health::Down);
}

/// The control file is read once per server a connection reaches.
/// `pg_control_system()` waits while a standby rewrites and fsyncs that file, which on a busy
/// disk took 1.5 s in the fleet benchmark; a server's system identifier cannot change while it
/// runs, so later probes carry the first one's while the postmaster's start time is the same,
/// and a new connection, or another server behind the same one, has it read again.
#[tokio::test(start_paused = true)]
async fn the_control_file_is_read_once_per_server_a_connection_reaches() {
    let cluster = Cluster::new(&[0x300, 0x100]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    let control_reads = |cluster: &Cluster| {
        cluster.executed_on(1).iter().filter(|s| read_of(s) == Some("first")).count()
    };
    let probes =
        |cluster: &Cluster| cluster.executed_on(1).iter().filter(|s| is_full_probe(s)).count();
    // Five probe intervals (200 ms each).
    tokio::time::sleep(MS(1_000)).await;
    assert!(probes(&cluster) >= 5, "probes: {}", probes(&cluster));
    assert_eq!(control_reads(&cluster), 1, "one connection, one read of the control file");
    let node = || m.state().snapshot().node(NodeId::new(1)).unwrap().position().cloned();
    assert_eq!(node(), Some(pos(0x100)), "later probes carry the first one's identifier");
    // The connection breaks (the server restarted): the next one reads the file again.
    cluster.set(1, |n| n.mode = Mode::Refuse);
    tokio::time::sleep(MS(250)).await;
    cluster.set(1, |n| n.mode = Mode::Answer);
    cluster.set(1, |n| n.lsn = 0x180);
    tokio::time::sleep(MS(1_000)).await;
    assert!(cluster.opens(1) >= 2, "opens: {}", cluster.opens(1));
    assert_eq!(control_reads(&cluster), 2, "a new connection reads it once more");
    assert_eq!(node(), Some(pos(0x180)));
    // Another server behind the same connection (a pooler re-pointed): its start time differs,
    // and the probe that sees it reads who it is at once, on the same connection.
    let opens = cluster.opens(1);
    cluster.set(1, |n| n.started = 2);
    tokio::time::sleep(MS(1_000)).await;
    assert_eq!(cluster.opens(1), opens, "the same connection");
    assert_eq!(control_reads(&cluster), 3, "read again for the other server, once");
}

/// A standby without a WAL receiver — as every standby is while its primary is gone,
/// probed by every instance of a fleet — has its timeline read from the control file
/// (`pg_control_checkpoint()`, which waits like `pg_control_system()`) only once it replays
/// past what it received by streaming; until then it is on the timeline the receiver last
/// reported.
#[tokio::test(start_paused = true)]
async fn a_standby_without_a_receiver_reads_the_control_file_only_past_what_it_streamed() {
    let cluster = Cluster::new(&[0x300, 0x100]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    let control_reads = |cluster: &Cluster| cluster.nodes.lock().unwrap()[1].control_reads;
    let probes =
        |cluster: &Cluster| cluster.executed_on(1).iter().filter(|s| is_full_probe(s)).count();
    let node = || m.state().snapshot().node(NodeId::new(1)).unwrap().clone();
    // Streaming: the receiver says the timeline.
    tokio::time::sleep(MS(1_000)).await;
    assert_eq!(control_reads(&cluster), 0);
    // The primary goes away, having streamed up to 0x200: no receiver. Ten probe intervals
    // (200 ms each), replaying what it streamed.
    cluster.set(1, |n| {
        n.receiving = false;
        n.streamed = 0x200;
    });
    let before = probes(&cluster);
    tokio::time::sleep(MS(1_000)).await;
    cluster.set(1, |n| n.lsn = 0x200);
    tokio::time::sleep(MS(1_000)).await;
    assert!(probes(&cluster) - before >= 10, "probes: {}", probes(&cluster) - before);
    assert_eq!(control_reads(&cluster), 0, "what it streamed: the receiver's last timeline");
    assert_eq!(node().position(), Some(&pos(0x200)));
    assert_eq!(node().health(), Health::Up);
    // It replays past that, from an archive: every probe reads the control file.
    cluster.set(1, |n| n.lsn = 0x280);
    tokio::time::sleep(MS(1_000)).await;
    let past = control_reads(&cluster);
    assert!((4..=6).contains(&past), "a read each probe past what it streamed: {past}");
    assert_eq!(node().position(), Some(&pos(0x280)));
    assert_eq!(node().health(), Health::Up);
    // The receiver is back: its timeline again, and no more reads.
    cluster.set(1, |n| n.receiving = true);
    tokio::time::sleep(MS(400)).await;
    let back = control_reads(&cluster);
    cluster.set(1, |n| n.receiving = false);
    tokio::time::sleep(MS(1_000)).await;
    assert_eq!(control_reads(&cluster), back, "remembered again once the receiver reported it");
}

/// Every probe on a connection runs one statement, its parameter saying what it
/// reads, so a connection prepares one probe statement, on its first probe: the reads of a
/// standby's first probe, of its later probes, and of a probe after its WAL receiver went,
/// all one text.
#[tokio::test(start_paused = true)]
async fn every_probe_on_a_connection_runs_one_statement() {
    let cluster = Cluster::new(&[0x300, 0x100]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    tokio::time::sleep(MS(1_000)).await;
    // The receiver goes, and the standby replays past what it streamed: the control file.
    cluster.set(1, |n| {
        n.receiving = false;
        n.streamed = 0x100;
        n.lsn = 0x180;
    });
    tokio::time::sleep(MS(1_000)).await;
    let probes: Vec<String> =
        cluster.executed_on(1).into_iter().filter(|s| is_full_probe(s)).collect();
    let reads: std::collections::BTreeSet<&str> =
        probes.iter().filter_map(|s| read_of(s)).collect();
    assert_eq!(reads, ["first", "known", "probe"].into(), "each read, asked");
    let texts: std::collections::BTreeSet<&str> =
        probes.iter().map(|s| s.split_once(" */ ").map_or(s.as_str(), |(_, t)| t)).collect();
    assert_eq!(texts.len(), 1, "one statement: {texts:?}");
    assert_eq!(cluster.opens(1), 1, "on one connection");
    assert_eq!(m.state().snapshot().node(NodeId::new(1)).unwrap().position(), Some(&pos(0x180)));
}

#[tokio::test(start_paused = true)]
async fn the_position_feed_moves_replicas_between_full_probes() {
    let cluster = Cluster::new(&[0x300, 0x100]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    tokio::time::sleep(MS(10)).await;
    let probes_before = cluster.executed_on(1).iter().filter(|s| is_full_probe(s)).count();
    cluster.set(1, |n| n.lsn = 0x250);
    want(&m, MS(500));
    // The full probe is 200 ms away; the feed reads at once, then every 20 ms.
    tokio::time::sleep(MS(45)).await;
    assert_eq!(m.state().snapshot().node(NodeId::new(1)).unwrap().position(), Some(&pos(0x250)));
    let probes_after = cluster.executed_on(1).iter().filter(|s| is_full_probe(s)).count();
    assert_eq!(probes_before, probes_after, "moved by the feed, not by a full probe");
}

/// Idle, a node pays for its full probe and nothing else — one statement per probe
/// interval (200 ms here): no position feed runs while no reader wants positions.
#[tokio::test(start_paused = true)]
async fn an_idle_node_pays_one_statement_per_probe_and_no_feed() {
    let cluster = Cluster::new(&[0x300, 0x100, 0x100]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    let before: Vec<usize> = (0..3).map(|n| cluster.executed_on(n).len()).collect();
    tokio::time::sleep(MS(10_000)).await;
    for (node, before) in before.into_iter().enumerate() {
        let statements = cluster.executed_on(node).len() - before;
        // The 50th probe is due at the last instant of the 10 s.
        assert!((49..=50).contains(&statements), "node {node}: {statements} statements in 10 s");
        assert_eq!(feed_reads(&cluster, node), 0, "node {node}: no feed while idle");
    }
    // Positions still move, with the full probes.
    cluster.set(1, |n| n.lsn = 0x300);
    tokio::time::sleep(MS(201)).await;
    assert_eq!(m.state().snapshot().node(NodeId::new(1)).unwrap().lag().bytes(), Some(0));
}

/// An unused cluster is probed at the idle pace, and the first use brings the usual
/// pace back with a probe at once. Probes every 200 ms, every 1 s once unused for 1 s.
#[tokio::test(start_paused = true)]
async fn an_unused_cluster_is_probed_at_the_idle_pace() {
    let cluster = Cluster::new(&[0x300, 0x100]);
    let b = Topology::builder()
        .node(Node::builder(NodeId::new(0), Role::Primary).name("10.0.0.0:5432/app").build())
        .node(Node::builder(NodeId::new(1), Role::Replica).name("10.0.0.1:5432/app").build());
    let state = Arc::new(TopologyState::new(b.build().unwrap(), HealthPolicy::default()));
    let config = MonitorConfig::default()
        .probe_interval(MS(200))
        .probe_jitter(Duration::ZERO)
        .idle_probe_interval(MS(1_000));
    let m = Monitor::start(
        Arc::clone(&state),
        FakeConnector(Arc::clone(&cluster)),
        Flavor::Postgres,
        config,
        None,
        None,
    );
    assert!(m.first_round(MS(100)).await);
    let probes = |node: usize| cluster.executed_on(node).len();
    // The state's creation counts as a use: the usual pace for the first second (probes at 0,
    // 200, ... 1,000 ms), then one per second (the last at 10 s).
    tokio::time::sleep(MS(10_300)).await;
    for node in 0..2 {
        let n = probes(node);
        assert!((14..=16).contains(&n), "node {node}: {n} probes in 10 s, mostly idle");
    }
    // A use: both nodes are probed at once (their usual turn, 10.2 s, has passed) ...
    let before = (probes(0), probes(1));
    let now = tokio::time::Instant::now().into_std();
    state.used(now);
    tokio::time::sleep(MS(1)).await;
    assert_eq!((probes(0), probes(1)), (before.0 + 1, before.1 + 1), "probed at once on use");
    // ... and at the usual pace while uses keep coming (every 100 ms for 2 s).
    let busy = (probes(0), probes(1));
    for _ in 0..20 {
        tokio::time::sleep(MS(100)).await;
        state.used(tokio::time::Instant::now().into_std());
    }
    for (node, before) in [busy.0, busy.1].into_iter().enumerate() {
        let n = probes(node) - before;
        assert!((9..=11).contains(&n), "node {node}: {n} probes in 2 s of use");
    }
    // A node that dies while the cluster is idle is judged by the first use's probe: the next
    // probes fail at the usual pace from then on.
    tokio::time::sleep(MS(3_000)).await;
    cluster.set(1, |n| n.mode = Mode::Refuse);
    state.used(tokio::time::Instant::now().into_std());
    // Three failed probes at the usual pace: the first at the node's next busy turn (at most
    // 200 ms after the use), then 200 ms apart; idle, the third would come 2 s later.
    tokio::time::sleep(MS(650)).await;
    assert_eq!(state.health(NodeId::new(1)), Health::Down, "down at the usual pace once used");
}

/// A wanted sample of one node (a monotonic floor's) is one feed read of that node,
/// at once, and nothing on the others; a later want reads it again.
#[tokio::test(start_paused = true)]
async fn a_wanted_sample_reads_its_node_once() {
    let cluster = Cluster::new(&[0x300, 0x100, 0x100]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    tokio::time::sleep(MS(100)).await;
    let now = tokio::time::Instant::now().into_std();
    m.state().want_sample(NodeId::new(0), now, now + MS(500));
    tokio::time::sleep(MS(1)).await;
    assert!(m.state().sampled_since(NodeId::new(0), now), "sampled at once");
    let reads = |c: &Cluster| (0..3).map(|n| feed_reads(c, n)).collect::<Vec<_>>();
    assert_eq!(reads(&cluster), [1, 0, 0], "one read of the primary's position, none elsewhere");
    tokio::time::sleep(MS(80)).await;
    assert_eq!(reads(&cluster), [1, 0, 0], "and no more");
    // A replica's: one read, again only of it.
    let now = tokio::time::Instant::now().into_std();
    m.state().want_sample(NodeId::new(2), now, now + MS(500));
    tokio::time::sleep(MS(50)).await;
    assert_eq!(reads(&cluster), [1, 0, 1]);
    assert!(m.state().sampled_since(NodeId::new(2), now));
}

/// A process whose reads hit the primary without pause asks for a sample of it after
/// each; those wants are read once per position interval (20 ms), not every quarter interval,
/// while a want that comes after a pause is read at once.
#[tokio::test(start_paused = true)]
async fn steady_wanted_samples_are_read_once_per_interval() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    tokio::time::sleep(MS(100)).await;
    let before = feed_reads(&cluster, 0);
    // A read on the primary every 2 ms for 1 s, each asking for the sample after it.
    for _ in 0..500 {
        let now = tokio::time::Instant::now().into_std();
        m.state().want_floor(NodeId::new(0), now, now + MS(500));
        tokio::time::sleep(MS(2)).await;
    }
    let steady = feed_reads(&cluster, 0) - before;
    // 1 s at one read per 20 ms, the full probes (samples too) aside.
    assert!((40..=55).contains(&steady), "{steady} primary feed reads in 1 s of steady wants");
    // After a pause, one want is read at once.
    tokio::time::sleep(MS(600)).await;
    let now = tokio::time::Instant::now().into_std();
    m.state().want_floor(NodeId::new(0), now, now + MS(500));
    tokio::time::sleep(MS(1)).await;
    assert!(m.state().sampled_since(NodeId::new(0), now), "sampled at once after a pause");
}

/// A wanted floor is the node's next sample, then that position on the replicas:
/// each replica's feed runs until it is seen there, and stops; one already there never reads.
#[tokio::test(start_paused = true)]
async fn a_wanted_floor_feeds_the_replicas_until_they_have_it() {
    let cluster = Cluster::new(&[0x300, 0x100, 0x300]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    tokio::time::sleep(MS(100)).await;
    let now = tokio::time::Instant::now().into_std();
    m.state().want_floor(NodeId::new(0), now, now + MS(500));
    tokio::time::sleep(MS(50)).await;
    assert!(m.state().sampled_since(NodeId::new(0), now), "the primary sampled");
    assert!(feed_reads(&cluster, 1) >= 2, "the lagging replica's feed runs");
    assert_eq!(feed_reads(&cluster, 2), 0, "a replica already at the floor never reads");
    cluster.set(1, |n| n.lsn = 0x300);
    tokio::time::sleep(MS(30)).await;
    let caught_up = feed_reads(&cluster, 1);
    tokio::time::sleep(MS(60)).await;
    assert_eq!(feed_reads(&cluster, 1), caught_up, "seen at the floor: its feed stopped");
}

/// The feed's state machine. A want wakes every node's feed at once (not at the next
/// probe), it reads every position interval while the want lasts, a later want extends it, and
/// once it lapses the feed stops again: idle costs the full probes alone.
#[tokio::test(start_paused = true)]
async fn a_want_runs_the_feed_at_once_for_its_linger_then_it_stops() {
    let cluster = Cluster::new(&[0x300, 0x100]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    // Mid-round: the next full probe is 100 ms away.
    tokio::time::sleep(MS(100)).await;
    cluster.set(1, |n| n.lsn = 0x200);
    want(&m, MS(300));
    tokio::time::sleep(MS(1)).await;
    assert_eq!(feed_reads(&cluster, 1), 1, "read at once");
    assert_eq!(feed_reads(&cluster, 0), 1, "the primary's position too (bounded reads)");
    assert_eq!(m.state().snapshot().node(NodeId::new(1)).unwrap().position(), Some(&pos(0x200)));
    // 300 ms at one read per 20 ms, full probes aside (a probe is a sample: the feed resumes
    // 20 ms after it).
    tokio::time::sleep(MS(400)).await;
    let during = feed_reads(&cluster, 1);
    assert!((12..=16).contains(&during), "{during} feed reads in a 300 ms want");
    tokio::time::sleep(MS(1_000)).await;
    assert_eq!(feed_reads(&cluster, 1), during, "the want lapsed: the feed stopped");
    // Wants that keep coming keep it running.
    for _ in 0..10 {
        want(&m, MS(300));
        tokio::time::sleep(MS(100)).await;
    }
    let steady = feed_reads(&cluster, 1) - during;
    assert!((40..=52).contains(&steady), "{steady} feed reads in 1 s of repeated wants");
    // A position interval of zero turns the feed off, wanted or not.
    let quiet = Cluster::new(&[0x300, 0x100]);
    let config = MonitorConfig::default()
        .probe_interval(MS(200))
        .probe_jitter(Duration::ZERO)
        .position_interval(Duration::ZERO);
    let state = Arc::clone(m.state());
    drop(m);
    let off = Monitor::start(
        Arc::new(TopologyState::new(
            state.snapshot_arc().as_ref().clone(),
            HealthPolicy::default(),
        )),
        FakeConnector(Arc::clone(&quiet)),
        Flavor::Postgres,
        config,
        None,
        None,
    );
    assert!(off.first_round(MS(100)).await);
    want(&off, MS(1_000));
    tokio::time::sleep(MS(1_000)).await;
    assert_eq!(feed_reads(&quiet, 1), 0);
}

/// A node that answers slowly is asked for its position less often, not back to back:
/// each feed read waits ten times the last answer's time after it. A replica answering in 15 ms
/// gets about one feed read per 200 ms probe round instead of one per 20 ms interval (the
/// whole fleet's reads had queued in front of its probes); once it answers fast again, the
/// feed is back at the interval. The fast primary beside it keeps the interval throughout.
#[tokio::test(start_paused = true)]
async fn a_slow_node_is_fed_less_often_and_at_the_interval_again_once_fast() {
    let cluster = Cluster::new(&[0x300, 0x100]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    cluster.query_delay.lock().unwrap().insert(1, MS(15));
    // The slowness is learnt from the next probe; count from the round after it.
    tokio::time::sleep(MS(250)).await;
    let (slow0, fast0) = (feed_reads(&cluster, 1), feed_reads(&cluster, 0));
    for _ in 0..10 {
        want(&m, MS(300));
        tokio::time::sleep(MS(100)).await;
    }
    let slow = feed_reads(&cluster, 1) - slow0;
    let fast = feed_reads(&cluster, 0) - fast0;
    // 1 s: five rounds of a 15 ms probe, a read 150 ms after it, the next due after the next
    // probe. Without the backoff, ~45.
    assert!((3..=7).contains(&slow), "{slow} feed reads of the slow node in 1 s");
    assert!((38..=52).contains(&fast), "{fast} feed reads of the fast node in 1 s");
    cluster.query_delay.lock().unwrap().remove(&1);
    tokio::time::sleep(MS(250)).await;
    let again = feed_reads(&cluster, 1);
    for _ in 0..10 {
        want(&m, MS(300));
        tokio::time::sleep(MS(100)).await;
    }
    let again = feed_reads(&cluster, 1) - again;
    assert!((38..=52).contains(&again), "{again} feed reads in 1 s once fast again");
}

/// A write's position wanted by its scope runs the replicas' feeds until each is seen
/// with the write — then each stops, well before the want's time is up — and never the
/// primary's (what the scope reads on the primary meanwhile asks for the primary's next sample
/// as it ends).
#[tokio::test(start_paused = true)]
async fn a_wanted_write_position_feeds_each_replica_until_it_has_the_write() {
    let cluster = Cluster::new(&[0x300, 0x100, 0x100]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    tokio::time::sleep(MS(50)).await;
    let token = rwsplit_core::CausalToken::new(pos(0x300));
    let until = tokio::time::Instant::now().into_std() + MS(2_000);
    m.state().want_replayed(&token, until);
    tokio::time::sleep(MS(1)).await;
    assert_eq!((feed_reads(&cluster, 1), feed_reads(&cluster, 2)), (1, 1), "at once");
    // Replica 1 replays the write 60 ms later, replica 2 at 130 ms.
    tokio::time::sleep(MS(60)).await;
    cluster.set(1, |n| n.lsn = 0x300);
    tokio::time::sleep(MS(70)).await;
    cluster.set(2, |n| n.lsn = 0x300);
    tokio::time::sleep(MS(1_000)).await;
    let (one, two) = (feed_reads(&cluster, 1), feed_reads(&cluster, 2));
    assert!((4..=6).contains(&one), "replica 1: {one} feed reads, then none");
    assert!((7..=10).contains(&two), "replica 2: {two} feed reads, then none");
    // Not the primary's: a read made there asks for its next sample itself (`want_floor`), so
    // feeding it while a replica lacks the write would only add reads (7-10 here).
    assert_eq!(feed_reads(&cluster, 0), 0, "the primary is not fed for a write's position");
    assert_eq!(m.state().snapshot().node(NodeId::new(2)).unwrap().position(), Some(&pos(0x300)));
}

/// A switchover seen by the position feed: the primary stops (its feed read fails) and a
/// replica is promoted (its feed read answers for the other role). Each node's next full probe
/// runs at once rather than at its turn (200 ms away), so the stopped primary's claim to the
/// role is gone, and the promoted node holds it, within a few feed intervals: there is no
/// moment with two primaries. A node whose feed keeps failing is still probed at the usual
/// pace: at most one early probe per round.
#[tokio::test(start_paused = true)]
async fn a_switchover_is_seen_within_feed_intervals_not_probe_intervals() {
    let cluster = Cluster::new(&[0x300, 0x300, 0x300]);
    let m = start(&cluster, None);
    assert!(m.first_round(MS(100)).await);
    tokio::time::sleep(MS(30)).await;
    let state = Arc::clone(m.state());
    let primaries = move || {
        let t = state.snapshot();
        t.nodes().iter().filter(|n| n.role() == Role::Primary).map(Node::id).collect::<Vec<_>>()
    };
    assert_eq!(primaries(), ids(&[0]));
    // A reader wants positions throughout (the feed runs only then).
    want(&m, MS(5_000));
    cluster.set(0, |n| n.mode = Mode::Refuse);
    tokio::time::sleep(MS(45)).await;
    assert_eq!(m.state().probe_failures(NodeId::new(0)), 1, "probed at once, not in 200 ms");
    cluster.set(1, |n| n.primary = true);
    tokio::time::sleep(MS(45)).await;
    assert_eq!(primaries(), ids(&[1]), "the promotion is followed within feed intervals");
    // From here the stopped node is probed at the usual pace (200 ms) and never twice early.
    let opens = cluster.opens(0);
    tokio::time::sleep(MS(1_000)).await;
    let probed = cluster.opens(0) - opens;
    assert!((4..=6).contains(&probed), "{probed} opens in 1 s at a 200 ms interval");
    assert_eq!(primaries(), ids(&[1]));
}

/// Automatic failover without its grace (the tests of the grace set it themselves).
fn quick() -> AutoFailover {
    AutoFailover::default().grace(Duration::ZERO)
}

/// Re-pointing follows the promoted node at its replication address when one is set (the
/// replicas may not reach it where this process does), else at its name's host and port.
#[rstest::rstest]
#[case::at_the_name(None, "host=10.0.0.2 port=5432")]
#[case::at_the_replication_address(Some("pg-3:5433"), "host=pg-3 port=5433")]
#[tokio::test(start_paused = true)]
async fn failover_promotes_the_most_advanced_replica_fences_and_repoints(
    #[case] address: Option<&str>,
    #[case] conninfo: &str,
) {
    let cluster = Cluster::new(&[0x300, 0x100, 0x200]);
    let mut failover = quick();
    if let Some(a) = address {
        failover = failover.replication_address(NodeId::new(2), a.parse().unwrap());
    }
    let m = start(&cluster, Some(failover));
    assert!(m.first_round(MS(100)).await);
    cluster.set(0, |n| n.mode = Mode::Refuse);
    cluster.set(1, |n| n.receiving = false);
    cluster.set(2, |n| n.receiving = false);
    tokio::time::sleep(MS(3_000)).await;
    assert_eq!(m.promotions(), 1);
    assert!(cluster.executed_on(2).iter().any(|s| s.contains("pg_promote")));
    assert!(!cluster.executed_on(1).iter().any(|s| s.contains("pg_promote")));
    assert!(
        cluster
            .executed_on(1)
            .iter()
            .any(|s| s.contains("ALTER SYSTEM SET primary_conninfo") && s.contains(conninfo))
    );
    assert!(m.state().is_fenced(NodeId::new(0)));
    assert_eq!(m.state().primary_id(), Some(NodeId::new(2)));
    // The old primary comes back still claiming the role: fenced, so one primary remains.
    cluster.set(0, |n| n.mode = Mode::Answer);
    tokio::time::sleep(MS(500)).await;
    assert_eq!(m.state().primary_id(), Some(NodeId::new(2)));
}

/// Failover after a leave and a join at the same index: the node that joined under the index's
/// next generation is promoted under its own id, and the replicas are re-pointed at its own
/// name, not at the replication address configured for the removed node that had the index.
#[tokio::test(start_paused = true)]
async fn failover_after_an_index_is_reused_names_the_new_node() {
    let cluster = Cluster::new(&[0x300, 0x100, 0x200]);
    let failover = quick().replication_address(NodeId::new(2), "pg-3:5433".parse().unwrap());
    let m = start(&cluster, Some(failover));
    assert!(m.first_round(MS(100)).await);
    let state = Arc::clone(m.state());
    assert!(state.remove_node(NodeId::new(2)) && m.stop_node(NodeId::new(2)));
    assert!(state.release(NodeId::new(2)));
    // The fake cluster's server 2 answers for index 2 whatever the generation.
    let new = state
        .add_node(|id| Node::builder(id, Role::Replica).name("10.0.0.9:5432/app").build())
        .unwrap();
    assert_eq!(new, NodeId::with_generation(2, 1));
    m.start_node(new);
    tokio::time::sleep(MS(50)).await;
    assert!(state.snapshot().node(new).is_some(), "joined");
    cluster.set(0, |n| n.mode = Mode::Refuse);
    cluster.set(1, |n| n.receiving = false);
    cluster.set(2, |n| n.receiving = false);
    tokio::time::sleep(MS(3_000)).await;
    assert_eq!(m.promotions(), 1);
    assert_eq!(state.primary_id(), Some(new), "the new node, under its own id");
    assert!(cluster.executed_on(2).iter().any(|s| s.contains("pg_promote")));
    let repointed = cluster.executed_on(1);
    assert!(
        repointed
            .iter()
            .any(|s| s.contains("primary_conninfo") && s.contains("host=10.0.0.9 port=5432")),
        "re-pointed at the new node's own address: {repointed:?}"
    );
    assert!(!repointed.iter().any(|s| s.contains("pg-3")), "not at the removed node's");
}

/// A replica that cannot be re-pointed at once (busy, slow to write its settings) is tried
/// again.
#[tokio::test(start_paused = true)]
async fn re_pointing_a_replica_is_retried() {
    let cluster = Cluster::new(&[0x300, 0x100, 0x200]);
    // Node 1's first two re-pointing attempts fail.
    cluster.fail_alter.lock().unwrap().insert(1, 2);
    let m = start(&cluster, Some(quick()));
    assert!(m.first_round(MS(100)).await);
    cluster.set(0, |n| n.mode = Mode::Refuse);
    cluster.set(1, |n| n.receiving = false);
    cluster.set(2, |n| n.receiving = false);
    tokio::time::sleep(MS(3_000)).await;
    assert_eq!(m.promotions(), 1);
    assert_eq!(cluster.fail_alter.lock().unwrap()[&1], 0, "both failures were met");
    assert!(
        cluster.executed_on(1).iter().any(|s| s.contains("ALTER SYSTEM SET primary_conninfo")),
        "re-pointed on the second attempt"
    );
}

#[tokio::test(start_paused = true)]
async fn no_failover_while_the_replicas_still_receive_from_the_primary() {
    let cluster = Cluster::new(&[0x300, 0x100, 0x200]);
    let m = start(&cluster, Some(quick().retry_after(MS(100))));
    assert!(m.first_round(MS(100)).await);
    // Cut off from this process only: the replicas still stream from it.
    cluster.set(0, |n| n.mode = Mode::Refuse);
    tokio::time::sleep(MS(5_000)).await;
    assert_eq!(m.promotions(), 0);
    assert!(!m.state().is_fenced(NodeId::new(0)));
    assert_eq!(m.state().health(NodeId::new(0)), Health::Down, "it is reported down all the same");
    assert!(cluster.executed.lock().unwrap().iter().all(|(_, s)| !s.contains("pg_promote")));
}

/// The primary is lost with the replicas no longer receiving from it; `setup` changes the
/// fake cluster first. Returns the monitor after `wait`.
async fn lose_the_primary(
    failover: AutoFailover,
    setup: impl FnOnce(&Cluster),
    wait: Duration,
) -> (Arc<Cluster>, Monitor) {
    let cluster = Cluster::new(&[0x300, 0x100, 0x200]);
    setup(&cluster);
    let m = start(&cluster, Some(failover));
    assert!(m.first_round(MS(100)).await);
    tokio::time::sleep(MS(50)).await;
    cluster.set(0, |n| n.mode = Mode::Refuse);
    cluster.set(1, |n| n.receiving = false);
    cluster.set(2, |n| n.receiving = false);
    tokio::time::sleep(wait).await;
    (cluster, m)
}

fn promoted_on(cluster: &Cluster) -> Vec<usize> {
    let executed = cluster.executed.lock().unwrap();
    executed.iter().filter(|(_, s)| s.contains("pg_promote")).map(|(n, _)| *n).collect()
}

/// What keeps a failover from promoting, each on its own: the candidate, or any replica, is
/// never promoted past one of these, and the old primary is not fenced.
#[rstest::rstest]
#[case::a_replica_that_cannot_be_asked(|c: &Cluster| { c.refuse_admin.lock().unwrap().insert(1, 1_000); })]
#[case::a_receiver_status_the_account_may_not_see(|c: &Cluster| c.set(1, |n| { n.hidden_receiver = true; n.receiving = true; }))]
#[case::the_lock_held_by_another_process(|c: &Cluster| c.set(1, |n| n.locked_elsewhere = true))]
#[case::replay_that_cannot_reach_what_was_received(|c: &Cluster| c.set(2, |n| n.replay_blocked = true))]
#[tokio::test(start_paused = true)]
async fn failover_vetoes(#[case] setup: fn(&Cluster)) {
    let failover = quick().retry_after(MS(500));
    let (cluster, m) = lose_the_primary(failover, |_| {}, MS(0)).await;
    setup(&cluster);
    if cluster.nodes.lock().unwrap()[1].hidden_receiver {
        // The receiver runs (its status hidden): still a veto, not "not receiving".
        cluster.set(1, |n| n.receiving = true);
    }
    tokio::time::sleep(MS(5_000)).await;
    assert_eq!(m.promotions(), 0);
    assert_eq!(promoted_on(&cluster), Vec::<usize>::new(), "no promotion was sent");
    assert!(!m.state().is_fenced(NodeId::new(0)), "nothing was sent: nothing fenced");
}

/// A primary with one replica never fails over automatically: without the lost primary, one
/// server of two is no majority, so the failover lock cannot be held.
#[tokio::test(start_paused = true)]
async fn a_primary_with_one_replica_never_fails_over() {
    let cluster = Cluster::new(&[0x300, 0x300]);
    let m = start(&cluster, Some(quick().retry_after(MS(500))));
    assert!(m.first_round(MS(100)).await);
    cluster.set(0, |n| n.mode = Mode::Refuse);
    cluster.set(1, |n| n.receiving = false);
    tokio::time::sleep(MS(10_000)).await;
    assert_eq!(m.promotions(), 0);
    assert_eq!(promoted_on(&cluster), Vec::<usize>::new());
    let locked = cluster.executed_on(1).iter().any(|s| s.contains("pg_try_advisory_lock"));
    assert!(locked, "it tried: the lock on the replica alone is not a majority");
}

/// A primary that comes back within the grace (a crash and a restart) is not failed over.
#[tokio::test(start_paused = true)]
async fn a_primary_back_within_the_grace_is_not_failed_over() {
    let failover = AutoFailover::default().grace(MS(3_000));
    let (cluster, m) = lose_the_primary(failover, |_| {}, MS(1_500)).await;
    assert_eq!(m.state().health(NodeId::new(0)), Health::Down);
    cluster.set(0, |n| n.mode = Mode::Answer);
    tokio::time::sleep(MS(5_000)).await;
    assert_eq!(m.promotions(), 0);
    assert_eq!(promoted_on(&cluster), Vec::<usize>::new());
    assert_eq!(m.state().primary_id(), Some(NodeId::new(0)));
}

/// A promotion that does not report success within the deadline is never undone: the old
/// primary stays fenced (the server may still finish it), and when the standby does finish,
/// the monitor follows it.
#[tokio::test(start_paused = true)]
async fn a_promotion_that_does_not_finish_leaves_the_old_primary_fenced() {
    let failover = quick().deadline(MS(2_000));
    let (cluster, m) =
        lose_the_primary(failover, |c| c.set(2, |n| n.promote_stalls = true), MS(5_000)).await;
    assert_eq!(promoted_on(&cluster), vec![2], "sent once");
    assert_eq!(m.promotions(), 0, "not finished");
    assert!(m.state().is_fenced(NodeId::new(0)));
    // The old primary comes back: still out.
    cluster.set(0, |n| n.mode = Mode::Answer);
    tokio::time::sleep(MS(1_000)).await;
    assert_ne!(m.state().primary_id(), Some(NodeId::new(0)));
    // The standby finishes its promotion later: followed.
    cluster.set(2, |n| {
        n.primary = true;
        n.receiving = false;
    });
    tokio::time::sleep(MS(1_000)).await;
    assert_eq!(m.state().primary_id(), Some(NodeId::new(2)));
}

/// A candidate further behind the primary's last sampled position than the bound is not
/// promoted; with the bound lifted it is.
#[rstest::rstest]
#[case::bounded(1 << 20, 0)]
#[case::unbounded(u64::MAX, 1)]
#[tokio::test(start_paused = true)]
async fn a_candidate_too_far_behind_is_not_promoted(#[case] limit: u64, #[case] promotions: u64) {
    let failover = quick().max_lag_bytes(limit);
    // The primary has written 32 MiB more than either replica received.
    let (_cluster, m) =
        lose_the_primary(failover, |c| c.set(0, |n| n.lsn = 0x200_0000), MS(3_000)).await;
    assert_eq!(m.promotions(), promotions);
}

/// A replica that is a primary already (another process promoted it) is followed, not raced:
/// this process promotes nothing.
#[tokio::test(start_paused = true)]
async fn a_replica_promoted_by_another_process_is_followed() {
    // In the grace of this process's attempt, another process promotes node 1.
    let failover = AutoFailover::default().grace(MS(2_000));
    let (cluster, m) = lose_the_primary(failover, |_| {}, MS(1_000)).await;
    assert!(m.state().probe_failures(NodeId::new(0)) >= 3, "the attempt has begun");
    // Another process promoted node 1 before this one's attempt asked the candidates.
    cluster.set(1, |n| n.primary = true);
    tokio::time::sleep(MS(3_000)).await;
    assert_eq!(promoted_on(&cluster), Vec::<usize>::new());
    assert_eq!(m.state().primary_id(), Some(NodeId::new(1)));
}

/// `Duration::MAX` as interval, timeout, jitter or feed interval does not panic inside the
/// probe task (`Instant + Duration::MAX` would, freezing health silently): the loops sleep
/// "forever" instead, alive.
#[tokio::test(start_paused = true)]
async fn maximal_durations_do_not_kill_the_probe_loops() {
    let cluster = Cluster::new(&[0x300, 0x200]);
    let mut b = Topology::builder();
    for i in 0..2u16 {
        let role = if i == 0 { Role::Primary } else { Role::Replica };
        b = b
            .node(Node::builder(NodeId::new(i), role).name(format!("10.0.0.{i}:5432/app")).build());
    }
    let state = Arc::new(TopologyState::new(b.build().unwrap(), HealthPolicy::default()));
    let config = MonitorConfig::default()
        .probe_interval(Duration::MAX)
        .probe_timeout(Duration::MAX)
        .probe_jitter(Duration::MAX)
        .position_interval(Duration::MAX);
    let m = Monitor::start(
        state,
        FakeConnector(Arc::clone(&cluster)),
        Flavor::Postgres,
        config,
        None,
        None,
    );
    assert!(m.first_round(MS(100)).await);
    tokio::time::sleep(MS(1_000)).await;
    assert!(m.tasks.lock().unwrap().values().all(|t| !t.is_finished()), "a probe loop died");
}

#[tokio::test(start_paused = true)]
async fn a_node_added_at_run_time_is_probed_and_joins_and_a_removed_one_is_not_probed() {
    let cluster = Cluster::new(&[0x300, 0x300, 0x300]);
    // The monitor starts with nodes 0 and 1; node 2 exists but is not configured.
    let b = Topology::builder()
        .node(Node::builder(NodeId::new(0), Role::Primary).name("10.0.0.0:5432/app").build())
        .node(Node::builder(NodeId::new(1), Role::Replica).name("10.0.0.1:5432/app").build());
    let state = Arc::new(TopologyState::new(b.build().unwrap(), HealthPolicy::default()));
    let config = MonitorConfig::default()
        .probe_interval(MS(200))
        .probe_timeout(MS(500))
        .probe_jitter(Duration::ZERO)
        // The idle pace has its own test (`an_unused_cluster_is_probed_at_the_idle_pace`).
        .idle_probe_interval(MS(200));
    let m = Monitor::start(
        Arc::clone(&state),
        FakeConnector(Arc::clone(&cluster)),
        Flavor::Postgres,
        config,
        None,
        None,
    );
    assert!(m.first_round(MS(100)).await);
    assert_eq!((m.running(), cluster.opens(2)), (ids(&[0, 1]), 0));

    let id = state
        .add_node(|id| Node::builder(id, Role::Replica).name("10.0.0.2:5432/app").build())
        .unwrap();
    assert_eq!(id, NodeId::new(2), "index 2 never held a node: its generation 0");
    m.start_node(id);
    tokio::time::sleep(MS(50)).await;
    assert_eq!(m.running(), ids(&[0, 1, 2]));
    let joined = state.snapshot();
    let node = joined.node(NodeId::new(2)).expect("joined at its first probe, caught up");
    assert_eq!(
        (node.role(), node.health(), node.position()),
        (Role::Replica, Health::Up, Some(&pos(0x300)))
    );

    assert!(state.remove_node(id));
    assert!(m.stop_node(id));
    assert!(!m.stop_node(id), "no loop left to stop");
    let asked = cluster.executed_on(2).len();
    tokio::time::sleep(MS(2_000)).await;
    assert_eq!(cluster.executed_on(2).len(), asked, "a removed node is not probed any more");
    assert!(state.snapshot().node(NodeId::new(2)).is_none());
    assert_eq!(m.running(), ids(&[0, 1]));
    assert!(state.release(id));
}
