use std::time::Duration;

use rstest::rstest;
use rwsplit_core::{Lag, Role};

use super::*;
use crate::product::{lag, probe};

/// A node that answers each query with a fixed row (by the query's first word).
struct Fake {
    pg: Option<Row>,
    vars: Option<Row>,
    status: Option<Row>,
    delay: Duration,
}

impl ProbeConn for Fake {
    async fn fetch_row(&self, sql: &str) -> Result<Option<Row>, ProbeError> {
        tokio::time::sleep(self.delay).await;
        Ok(if sql.starts_with("SHOW") {
            self.status.clone()
        } else if sql.contains("gtid") {
            self.vars.clone()
        } else {
            self.pg.clone()
        })
    }
}

fn pg(
    in_recovery: &str,
    replayed: &str,
    received: Option<&str>,
    since_ms: Option<&str>,
    paused: &str,
) -> Fake {
    Fake {
        pg: Some(Row::new([
            ("in_recovery", Some(in_recovery)),
            ("system_id", Some("7300000000000000001")),
            ("timeline", Some("1")),
            ("replayed", Some(replayed)),
            ("received", received),
            ("since_replay_ms", since_ms),
            ("paused", Some(paused)),
        ])),
        vars: None,
        status: None,
        delay: Duration::ZERO,
    }
}

fn maria(read_only: &str, binlog: &str, slave: &str, status: Option<(&str, Option<&str>)>) -> Fake {
    Fake {
        pg: None,
        vars: Some(Row::new([
            ("read_only", Some(read_only)),
            ("binlog_pos", Some(binlog)),
            ("slave_pos", Some(slave)),
        ])),
        status: status.map(|(sql_running, sbm)| {
            Row::new([("Slave_SQL_Running", Some(sql_running)), ("Seconds_Behind_Master", sbm)])
        }),
        delay: Duration::ZERO,
    }
}

async fn seen(fake: &Fake, flavor: Flavor) -> Observation {
    probe(fake, flavor, Duration::from_secs(1)).await.unwrap()
}

#[tokio::test]
async fn postgres_roles_and_positions() {
    let primary =
        seen(&pg("false", "0/3000100", None, Some("99999"), "false"), Flavor::Postgres).await;
    assert_eq!(primary.role(), Role::Primary);
    let replica =
        seen(&pg("true", "0/3000000", Some("0/3000100"), Some("1500"), "false"), Flavor::Postgres)
            .await;
    assert_eq!(replica.role(), Role::Replica);
    assert_eq!(lag(&primary, &replica), Lag::new(Some(0x100), Some(Duration::from_millis(1500))));
}

#[tokio::test]
async fn an_idle_primary_does_not_make_a_caught_up_replica_late() {
    // No commit for an hour: pg_last_xact_replay_timestamp() is an hour old, yet nothing is
    // waiting to be replayed.
    let primary = seen(&pg("false", "0/3000100", None, None, "false"), Flavor::Postgres).await;
    let replica = seen(
        &pg("true", "0/3000100", Some("0/3000100"), Some("3600000"), "false"),
        Flavor::Postgres,
    )
    .await;
    assert_eq!(lag(&primary, &replica), Lag::new(Some(0), Some(Duration::ZERO)));
}

#[tokio::test]
async fn a_paused_replica_reports_it() {
    let replica =
        seen(&pg("true", "0/3000000", Some("0/3900000"), Some("2000"), "true"), Flavor::Postgres)
            .await;
    assert!(replica.replay_stopped());
    assert_eq!(replica.received_lsn().map(|l| l.get()), Some(0x390_0000));
}

#[tokio::test]
async fn another_timeline_has_unknown_lag() {
    let primary = seen(&pg("false", "0/3000100", None, None, "false"), Flavor::Postgres).await;
    let mut other = pg("true", "0/3000100", None, None, "false");
    other.pg = Some(Row::new([
        ("in_recovery", Some("true")),
        ("system_id", Some("7300000000000000001")),
        ("timeline", Some("2")),
        ("replayed", Some("0/3000100")),
        ("paused", Some("false")),
    ]));
    let replica = seen(&other, Flavor::Postgres).await;
    assert_eq!(lag(&primary, &replica), Lag::unknown());
}

#[rstest]
#[case::caught_up("0-1-10", Some(("Yes", Some("0"))), Lag::new(None, Some(Duration::ZERO)))]
#[case::behind_applying("0-1-7", Some(("Yes", Some("3"))), Lag::new(None, Some(Duration::from_secs(3))))]
// Seconds_Behind_Master is NULL while the SQL thread is stopped: the lag is unknown, not zero.
#[case::behind_stopped("0-1-7", Some(("No", None)), Lag::unknown())]
// SBM says 0 when idle, before the next event, or while waiting out a MASTER_DELAY: behind,
// it says nothing (whole seconds), and the monitor's estimate from positions decides.
#[case::behind_but_sbm_zero("0-1-7", Some(("Yes", Some("0"))), Lag::unknown())]
#[tokio::test]
async fn mariadb_lag_comes_from_positions_first(
    #[case] slave_pos: &str,
    #[case] status: Option<(&str, Option<&str>)>,
    #[case] expected: Lag,
) {
    let primary = seen(&maria("false", "0-1-10", "", None), Flavor::MariaDb).await;
    assert_eq!(primary.role(), Role::Primary);
    let replica = seen(&maria("true", "0-1-10", slave_pos, status), Flavor::MariaDb).await;
    assert_eq!(replica.role(), Role::Replica);
    assert_eq!(lag(&primary, &replica), expected);
}

#[tokio::test]
async fn a_writable_node_that_replicates_is_a_replica() {
    let node =
        seen(&maria("false", "0-1-10", "0-1-10", Some(("Yes", Some("0")))), Flavor::MariaDb).await;
    assert_eq!(node.role(), Role::Replica);
}

/// A MariaDB node for the probe's memo: the variables row (with the running SQL threads and the
/// configuration epoch) and, if replication is configured, a status row; counts the statements.
struct Maria {
    read_only: bool,
    sql_threads: u32,
    configured: std::sync::atomic::AtomicBool,
    epoch: std::sync::Mutex<u32>,
    /// `SHOW SLAVE STATUS` refused (no SLAVE MONITOR privilege).
    refuse_status: bool,
    /// `SHOW SLAVE STATUS` fails from now on (a lock wait, a broken connection).
    fail_status: std::sync::atomic::AtomicBool,
    statements: std::sync::atomic::AtomicU32,
    shows: std::sync::atomic::AtomicU32,
}

impl Maria {
    fn new(read_only: bool, sql_threads: u32, configured: bool) -> Maria {
        Maria {
            read_only,
            sql_threads,
            configured: configured.into(),
            epoch: std::sync::Mutex::new(1),
            refuse_status: false,
            fail_status: Default::default(),
            statements: Default::default(),
            shows: Default::default(),
        }
    }
}

impl ProbeConn for Maria {
    async fn fetch_row(&self, sql: &str) -> Result<Option<Row>, ProbeError> {
        use std::sync::atomic::Ordering::Relaxed;
        self.statements.fetch_add(1, Relaxed);
        if sql.starts_with("SHOW") {
            self.shows.fetch_add(1, Relaxed);
            if self.fail_status.load(Relaxed) {
                return Err(ProbeError::unreachable("Lock wait timeout exceeded"));
            }
            if self.refuse_status {
                return Err(ProbeError::unreachable(
                    "Access denied; you need the SLAVE MONITOR privilege",
                ));
            }
            return Ok(self.configured.load(Relaxed).then(|| {
                Row::new([("Slave_SQL_Running", Some("No")), ("Seconds_Behind_Master", None)])
            }));
        }
        let epoch = self.epoch.lock().unwrap().to_string();
        let threads = self.sql_threads.to_string();
        Ok(Some(Row::new([
            ("read_only", Some(if self.read_only { "true" } else { "false" })),
            ("binlog_pos", Some("0-1-10")),
            ("slave_pos", Some("0-1-9")),
            ("server_id", Some("2")),
            ("sql_threads", Some(threads.as_str())),
            ("config_epoch", Some(epoch.as_str())),
        ])))
    }
}

type MariaMemo = <crate::product::MariaDb as crate::product::Product>::Memo;

async fn maria_probe(node: &Maria, memo: &mut MariaMemo) -> Result<Observation, ProbeError> {
    crate::product::probe_with::<crate::product::MariaDb, _>(node, memo, Duration::from_secs(1))
        .await
}

/// A MariaDB probe is one statement; `SHOW SLAVE STATUS` runs on a connection's first
/// two probes (the second confirms the first: see `Memo`) and again only after the
/// configuration epoch moves (`CHANGE MASTER`, `RESET`), and what it said is remembered — but
/// for a writable replica whose SQL thread is stopped, asked every probe (`each`: that answer
/// alone keeps it from being the primary), which stays a replica.
#[rstest]
#[case::primary(Maria::new(false, 0, false), Role::Primary, false)]
#[case::read_only_replica(Maria::new(true, 1, true), Role::Replica, false)]
#[case::writable_applying_replica(Maria::new(false, 1, true), Role::Replica, false)]
#[case::writable_replica_stopped(Maria::new(false, 0, true), Role::Replica, true)]
#[tokio::test]
async fn a_mariadb_probe_is_one_statement_once_the_configuration_is_known(
    #[case] node: Maria,
    #[case] role: Role,
    #[case] each: bool,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let shows = |once: u32, probes: u32| if each { probes } else { once };
    let mut memo = MariaMemo::default();
    let first = maria_probe(&node, &mut memo).await.unwrap();
    assert_eq!(first.role(), role);
    let lineage = first.lineage.as_ref().expect("the probe reads server_id and the slave position");
    assert_eq!((lineage.server_id, lineage.slave_pos.to_string()), (2, "0-1-9".to_owned()));
    assert_eq!((node.statements.load(Relaxed), node.shows.load(Relaxed)), (2, 1), "first probe");
    for _ in 0..5 {
        assert_eq!(maria_probe(&node, &mut memo).await.unwrap().role(), role, "remembered");
    }
    assert_eq!(node.shows.load(Relaxed), shows(2, 6), "read, confirmed, remembered");
    assert_eq!(node.statements.load(Relaxed), 6 + shows(2, 6), "one statement each");
    *node.epoch.lock().unwrap() += 1;
    for _ in 0..3 {
        assert_eq!(maria_probe(&node, &mut memo).await.unwrap().role(), role);
    }
    assert_eq!(node.shows.load(Relaxed), shows(4, 9), "the configuration may have changed");
    // A new connection remembers nothing.
    let mut fresh = MariaMemo::default();
    maria_probe(&node, &mut fresh).await.unwrap();
    assert_eq!(node.shows.load(Relaxed), shows(5, 10));
}

/// The server counts `RESET SLAVE ALL` and `CHANGE MASTER` when they begin: a probe can see the
/// epoch move and still read the status as it was. Promotion (`STOP SLAVE; RESET SLAVE ALL`,
/// writable): the probe that read the status mid-`RESET` says replica, and the next one sees
/// the primary, not a replica for good. Demotion (`CHANGE MASTER` on a writable node with no
/// SQL thread started yet): the probe that read it mid-`CHANGE` says primary, the next one a
/// replica. (`configured`: before, then as the epoch moved; the roles of the two probes.)
#[rstest]
#[case::promoted(true, false, Role::Replica, Role::Primary)]
#[case::demoted(false, true, Role::Primary, Role::Replica)]
#[tokio::test]
async fn a_status_read_while_the_statement_that_moved_the_epoch_runs_is_read_again(
    #[case] before: bool,
    #[case] after: bool,
    #[case] mid: Role,
    #[case] then: Role,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let node = Maria::new(false, 0, before);
    let mut memo = MariaMemo::default();
    for _ in 0..3 {
        maria_probe(&node, &mut memo).await.unwrap();
    }
    // The statement begins: counted, not done.
    *node.epoch.lock().unwrap() += 1;
    assert_eq!(maria_probe(&node, &mut memo).await.unwrap().role(), mid, "read mid-statement");
    // It is done.
    node.configured.store(after, Relaxed);
    for _ in 0..3 {
        assert_eq!(maria_probe(&node, &mut memo).await.unwrap().role(), then);
    }
}

/// A status read that fails after one succeeded on the connection changes nothing: a stopped,
/// writable replica (asked every probe) is not taken for the primary because one read failed.
#[tokio::test]
async fn a_failed_status_read_keeps_what_was_read() {
    use std::sync::atomic::Ordering::Relaxed;
    let node = Maria::new(false, 0, true);
    let mut memo = MariaMemo::default();
    for _ in 0..3 {
        assert_eq!(maria_probe(&node, &mut memo).await.unwrap().role(), Role::Replica);
    }
    node.fail_status.store(true, Relaxed);
    for _ in 0..3 {
        assert_eq!(maria_probe(&node, &mut memo).await.unwrap().role(), Role::Replica);
    }
    assert_eq!(node.shows.load(Relaxed), 6, "asked each probe");
}

/// Without the SLAVE MONITOR privilege, the status is asked each probe (nothing to remember),
/// and the role comes from `read_only` and the running SQL threads.
#[tokio::test]
async fn without_the_privilege_the_role_comes_from_read_only_and_running_threads() {
    use std::sync::atomic::Ordering::Relaxed;
    let mut node = Maria::new(true, 1, true);
    node.refuse_status = true;
    let mut memo = Default::default();
    for _ in 0..3 {
        let seen = crate::product::probe_with::<crate::product::MariaDb, _>(
            &node,
            &mut memo,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(seen.role(), Role::Replica);
        assert_eq!(seen.applying, Some(true), "from the running SQL threads");
    }
    assert_eq!(node.shows.load(Relaxed), 3);
}

#[tokio::test(start_paused = true)]
async fn a_hung_node_times_out() {
    let mut hung = pg("true", "0/1", None, None, "false");
    hung.delay = Duration::from_secs(3600);
    let err = probe(&hung, Flavor::Postgres, Duration::from_millis(500)).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[rstest]
#[case::bad_flag("in_recovery", "maybe")]
#[case::bad_lsn("replayed", "nonsense")]
#[case::bad_sysid("system_id", "x")]
#[tokio::test]
async fn unreadable_answers_are_named(#[case] column: &str, #[case] value: &str) {
    let mut node = pg("true", "0/1", None, None, "false");
    let mut cols: Vec<(String, Option<String>)> = [
        ("in_recovery", "true"),
        ("system_id", "1"),
        ("timeline", "1"),
        ("replayed", "0/1"),
        ("paused", "false"),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), Some((*v).to_owned())))
    .collect();
    for c in &mut cols {
        if c.0 == column {
            c.1 = Some(value.to_owned());
        }
    }
    node.pg = Some(Row::new(cols));
    let err = probe(&node, Flavor::Postgres, Duration::from_secs(1)).await.unwrap_err();
    assert!(err.to_string().contains(value), "{err}");
}

/// Each setter sets what its getter reads.
#[test]
fn the_setters_set_what_the_getters_read() {
    let d = |ms| Duration::from_millis(ms);
    let new = MonitorConfig::default()
        .probe_interval(d(100))
        .probe_timeout(d(200))
        .max_probe_timeout(d(3000))
        .probe_jitter(d(5))
        .idle_probe_interval(d(900));
    assert_eq!(new.probe_interval_value(), d(100));
    assert_eq!(new.probe_timeout_value(), d(200));
    assert_eq!(new.max_probe_timeout_value(), d(3000));
    assert_eq!(new.idle_probe_interval_value(), d(900));
}
