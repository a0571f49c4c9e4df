//! Each variant through the `DbErr` and back; the sites that build them (routing, positions);
//! the predicates callers branch on.

use std::collections::BTreeMap;
use std::mem::discriminant;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_core::{
    Access, HealthPolicy, Node, NodeId, Role, RouteContext, RouterConfig, Target, Topology,
};
use sea_orm::{DatabaseConnection, DbBackend, MockDatabase, Value};

use super::*;
use crate::cluster::Routing;
use crate::send::failure::Failure;

fn cause() -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sea_orm::sqlx::Error::Io(std::io::Error::other(
        "connection reset by peer",
    )))))
}

/// Of `replicas`, `down` down and `lagging` past the lag limit; the primary not allowed.
fn excluded(replicas: u8, down: u8, lagging: u8) -> rwsplit_core::Excluded {
    let mut e = rwsplit_core::Excluded::default();
    (e.replicas, e.down, e.over_max_lag) = (replicas, down, lagging);
    e
}

fn node() -> String {
    "db1:5432/app".to_owned()
}

/// Two nodes out, each for a reason.
fn outs() -> Vec<NodeOut> {
    vec![NodeOut::new(node(), OutReason::Fenced), NodeOut::new("db2:5432/app", OutReason::Down)]
}

/// Which `DbErr` variant carries it.
#[derive(Debug, PartialEq, Eq)]
enum Carrier {
    Conn,
    Query,
    /// `DbErr::Exec`, in `sqlx::Error::Configuration`: nothing sent, no node failed.
    Decision,
}

/// What callers branch on: retryable, outcome unknown.
const RETRY: (bool, bool) = (true, false);
const FINAL: (bool, bool) = (false, false);
const UNKNOWN: (bool, bool) = (false, true);

/// Every variant: carried in SeaORM's variant for it, got back as itself, its predicates,
/// its node, and its text in the `DbErr`'s text.
#[rstest]
#[case::not_sent(
    RoutingError::WriteNotSent { node: node(), reason: NotSentReason::NoConnection, source: Some(cause()) },
    Carrier::Conn, RETRY, "was not sent"
)]
#[case::outcome_unknown(
    RoutingError::WriteOutcomeUnknown { node: node(), reason: UnknownReason::MarkedDown, source: None },
    Carrier::Conn, UNKNOWN, "outcome is unknown"
)]
#[case::node_down(
    RoutingError::NodeDown { node: node(), attempts: 2, reason: DownReason::Unreachable, source: Some(cause()) },
    Carrier::Conn, RETRY, "2 node(s) tried"
)]
#[case::recovery_conflict(
    RoutingError::RecoveryConflict { node: node(), attempts: 1, source: cause() },
    Carrier::Conn, RETRY, "recovery conflict"
)]
#[case::backpressure(
    RoutingError::Backpressure { node: node(), access: Access::Read, attempts: 1, source: cause() },
    Carrier::Conn, RETRY, "the read was not sent"
)]
#[case::timed_out(
    RoutingError::TimedOut {
        node: node(), after: Duration::from_millis(1500), limit: TimeLimit::Deadline, attempts: 1
    },
    Carrier::Conn, RETRY, "within 1s 500ms"
)]
#[case::replica_refused(
    RoutingError::ReplicaRefused {
        node: node(),
        sqlstate: Some("25006".into()),
        statement: Some("select bump ( ? ) ".into()),
        source: cause()
    },
    Carrier::Query, FINAL, "SQLSTATE 25006"
)]
#[case::no_primary(RoutingError::NoPrimary { nodes: outs() }, Carrier::Decision, RETRY, "no primary")]
#[case::split_brain(
    RoutingError::SplitBrain { primaries: 2, nodes: vec![node(), "db2:5432/app".into()] },
    Carrier::Decision, RETRY, "2 nodes claim"
)]
#[case::unroutable(
    RoutingError::Unroutable { source: RouteError::UnknownNode { id: NodeId::new(7) } },
    Carrier::Decision, FINAL, "not in the topology"
)]
#[case::no_node_left(RoutingError::NoNodeLeft { nodes: outs() }, Carrier::Decision, RETRY, "no node left")]
#[case::unroutable_excluded(
    RoutingError::Unroutable {
        source: RouteError::NoEligibleNode { excluded: excluded(3, 2, 1) }
    },
    Carrier::Decision, RETRY,
    "of 3 replicas, 2 are down (failing probes, fenced or joining), 1 is known to lag past the \
     router's max_replica_lag; the primary may not serve reads a replica could (primary_reads = never)"
)]
#[case::node_removed(
    RoutingError::NodeRemoved { node: node() }, Carrier::Decision, RETRY, "db1:5432/app was removed"
)]
#[case::position_unreadable(
    RoutingError::PositionUnreadable { node: Some(node()), what: "lsn", value: Some("zz".into()), source: None },
    Carrier::Query, FINAL, "`lsn` is `zz`"
)]
#[case::position_missing(
    RoutingError::PositionUnreadable { node: None, what: "MASTER_GTID_WAIT", value: None, source: None },
    Carrier::Query, FINAL, "is missing"
)]
#[case::position_unsupported(
    RoutingError::PositionUnsupported { backend: DbBackend::Sqlite },
    Carrier::Decision, FINAL, "not supported on Sqlite"
)]
#[case::internal(
    RoutingError::Internal { what: "nothing to send" },
    Carrier::Conn, FINAL,
    concat!("nothing to send (a bug in rwsplit-sea-orm ", env!("CARGO_PKG_VERSION"), "): report it")
)]
fn every_variant_survives_the_db_err(
    #[case] e: RoutingError,
    #[case] carrier: Carrier,
    #[case] (retryable, unknown): (bool, bool),
    #[case] says: &str,
) {
    let err: DbErr = e.clone().into();
    let got = match &err {
        DbErr::Conn(_) => Carrier::Conn,
        DbErr::Query(_) => Carrier::Query,
        DbErr::Exec(_) => Carrier::Decision,
        other => panic!("{other:?}"),
    };
    assert_eq!(got, carrier);
    // A decision's text claims no network fault; a node's failure is one.
    let decided = carrier == Carrier::Decision;
    assert_eq!(e.is_decision(), decided);
    assert_eq!(!err.to_string().contains("error communicating with database"), decided, "{err}");
    let back = routing_error(&err).expect("the accessor finds it");
    assert_eq!(discriminant(back), discriminant(&e));
    assert_eq!(back.to_string(), e.to_string());
    assert_eq!((back.is_retryable(), back.outcome_unknown()), (retryable, unknown), "{back:?}");
    // A variant about several nodes names them all in its text, and none as `node()`.
    let several = matches!(
        e,
        RoutingError::NoPrimary { .. }
            | RoutingError::SplitBrain { .. }
            | RoutingError::NoNodeLeft { .. }
    );
    assert_eq!(back.node().is_some(), e.to_string().contains("db1:5432/app") && !several);
    let text = err.to_string();
    assert!(text.contains(&format!("rwsplit: {e}")), "{text}");
    assert!(text.contains(says), "{text}");
    if std::error::Error::source(back).is_some_and(|s| s.to_string().contains("reset by peer")) {
        assert!(text.contains("reset by peer"), "the cause is in the text: {text}");
    }
    // The cause is in the text once, whether the variant's own text says it or the carrier
    // adds it.
    if let Some(cause) = std::error::Error::source(back).map(ToString::to_string) {
        assert_eq!(text.matches(&cause).count(), 1, "the cause once: {text}");
    }
    // A clone of the DbErr carries the same error.
    assert!(routing_error(&err.clone()).is_some());
}

/// The database's and SeaORM's own errors are not the adapter's.
#[rstest]
#[case::record_not_found(DbErr::RecordNotFound("x".into()))]
#[case::custom(DbErr::Custom("x".into()))]
#[case::internal_text(DbErr::Conn(RuntimeErr::Internal("x".into())))]
#[case::driver_io(cause())]
#[case::pool(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout))]
fn other_errors_are_not_routing_errors(#[case] err: DbErr) {
    assert!(routing_error(&err).is_none(), "{err:?}");
}

/// The replica's refusal stays reachable, with its code, through `source()`.
#[test]
fn a_refusal_keeps_the_replicas_error_as_its_source() {
    #[derive(Debug)]
    struct ReadOnly;
    impl std::fmt::Display for ReadOnly {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot execute INSERT in a read-only transaction")
        }
    }
    impl std::error::Error for ReadOnly {}
    impl sea_orm::sqlx::error::DatabaseError for ReadOnly {
        fn message(&self) -> &str {
            "cannot execute INSERT in a read-only transaction"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some("25006".into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sea_orm::sqlx::error::ErrorKind {
            sea_orm::sqlx::error::ErrorKind::Other
        }
    }
    let refusal = DbErr::Query(RuntimeErr::SqlxError(Arc::new(sea_orm::sqlx::Error::Database(
        Box::new(ReadOnly),
    ))));
    let err = crate::send::refusal::misrouted(refusal, "db2:5432/app", None);
    let e = routing_error(&err).expect("typed");
    let RoutingError::ReplicaRefused { sqlstate, .. } = e else { panic!("{e:?}") };
    assert_eq!(sqlstate.as_deref(), Some("25006"));
    let source = std::error::Error::source(e).expect("the replica's error");
    let source = source.downcast_ref::<DbErr>().expect("a DbErr");
    let DbErr::Query(RuntimeErr::SqlxError(sqlx)) = source else { panic!("{source:?}") };
    let sea_orm::sqlx::Error::Database(db) = &**sqlx else { panic!("{sqlx:?}") };
    assert_eq!(db.code().as_deref(), Some("25006"));
}

/// `with_attempts` restamps the variants that count nodes and leaves the rest alone.
#[test]
fn attempts_are_restamped_only_where_counted() {
    let down: DbErr = RoutingError::NodeDown {
        node: node(),
        attempts: 1,
        reason: DownReason::MarkedDown,
        source: None,
    }
    .into();
    let down = with_attempts(down, 3);
    assert!(matches!(routing_error(&down), Some(RoutingError::NodeDown { attempts: 3, .. })));
    let unknown = crate::send::deadline::write_outcome_unknown("db1:5432/app");
    assert_eq!(with_attempts(unknown.clone(), 3).to_string(), unknown.to_string());
    let theirs = DbErr::RecordNotFound("x".into());
    assert!(matches!(with_attempts(theirs, 3), DbErr::RecordNotFound(_)));
}

fn topology(roles: &[Role]) -> Topology {
    let mut b = Topology::builder();
    for (i, role) in roles.iter().enumerate() {
        let id = NodeId::new(u16::try_from(i).unwrap());
        b = b.node(Node::builder(id, *role).build());
    }
    b.build().unwrap()
}

/// The router's refusals, as the statement sees them: no primary, two primaries, an override
/// naming no node. Nothing is sent.
#[rstest]
#[case::no_primary(&[Role::Replica, Role::Replica], Access::Write, None, "NoPrimary")]
#[case::split_brain(&[Role::Primary, Role::Primary], Access::Write, None, "SplitBrain")]
#[case::unknown_node(
    &[Role::Primary, Role::Replica], Access::Read, Some(Target::Node(NodeId::new(9))), "Unroutable"
)]
fn a_route_that_cannot_be_made_is_typed(
    #[case] roles: &[Role],
    #[case] access: Access,
    #[case] target: Option<Target>,
    #[case] want: &str,
) {
    let routing = Routing::fresh(topology(roles), RouterConfig::default(), HealthPolicy::default());
    let mut ctx = RouteContext::for_access(access, Instant::now());
    if let Some(t) = target {
        ctx = ctx.with_target(t);
    }
    let Err(err) = routing.route(&ctx) else { panic!("routed") };
    assert!(matches!(err, DbErr::Exec(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("Execution Error: error with configuration: rwsplit: "),
        "{err}"
    );
    let e = routing_error(&err).expect("typed");
    let got = match e {
        RoutingError::NoPrimary { .. } => "NoPrimary",
        RoutingError::SplitBrain { primaries: 2, .. } => "SplitBrain",
        RoutingError::Unroutable { source: RouteError::UnknownNode { .. } } => "Unroutable",
        other => panic!("{other:?}"),
    };
    assert_eq!(got, want);
}

/// The text of each variant that names several nodes, or a limit: every node named by its
/// address, with why it is out; the limit that fired, with its value.
#[rstest]
#[case::split_brain(
    RoutingError::SplitBrain { primaries: 2, nodes: vec![node(), "db2:5432/app".into()] },
    "2 nodes claim the primary role (db1:5432/app, db2:5432/app), refusing to pick one (split \
     brain): fence the stale one by name with `RoutedConnection::fence(name)`"
)]
#[case::no_primary(
    RoutingError::NoPrimary { nodes: vec![
        NodeOut::new(node(), OutReason::Fenced),
        NodeOut::new("db2:5432/app", OutReason::Down),
        NodeOut::new("db3:5432/app", OutReason::Replica),
        NodeOut::new("db4:5432/app", OutReason::Unsupported),
        NodeOut::new("db5:5432/app", OutReason::Joining),
    ] },
    "no primary in the topology: the statement needs one; the nodes: db1:5432/app (fenced), \
     db2:5432/app (marked down: its probes fail), db3:5432/app (a replica), db4:5432/app \
     (fenced: its server is not one rwsplit supports), db5:5432/app (joining: not yet seen \
     healthy and caught up)"
)]
#[case::no_node_left(
    RoutingError::NoNodeLeft { nodes: vec![
        NodeOut::new("db2:5432/app", OutReason::NotCaughtUp { waited: Duration::from_millis(50) }),
        NodeOut::new("db3:5432/app", OutReason::Stalled),
        NodeOut::new(node(), OutReason::Removed),
    ] },
    "no node left to run the statement on: every candidate was skipped: db2:5432/app (did not \
     replay the session's writes within 50ms (wait_for_replica)), db3:5432/app (stalled: \
     answering nothing past its hedge delay), db1:5432/app (removed from the connection, \
     draining)"
)]
#[case::node_removed(
    RoutingError::NodeRemoved { node: node() },
    "db1:5432/app was removed from the connection (its topology source stopped listing it) \
     before the statement could run there"
)]
#[case::position_unreadable(
    RoutingError::PositionUnreadable { node: Some(node()), what: "lsn", value: Some("zz".into()), source: None },
    "unreadable replication position on db1:5432/app: `lsn` is `zz`"
)]
#[case::position_missing(
    RoutingError::PositionUnreadable { node: Some(node()), what: "timeline", value: None, source: None },
    "unreadable replication position on db1:5432/app: `timeline` is missing"
)]
#[case::replica_read_timeout(
    RoutingError::TimedOut {
        node: node(), after: Duration::from_secs(2), limit: TimeLimit::ReplicaReadTimeout, attempts: 2
    },
    "db1:5432/app did not answer within 2s (replica_read_timeout; 2 node(s) tried)"
)]
#[case::deadline(
    RoutingError::TimedOut {
        node: node(), after: Duration::from_millis(300), limit: TimeLimit::Deadline, attempts: 1
    },
    "db1:5432/app did not answer within 300ms (what was left of the caller's deadline; 1 node(s) \
     tried)"
)]
fn each_error_names_its_subject(#[case] e: RoutingError, #[case] text: &str) {
    assert_eq!(e.to_string(), text);
}

fn named(roles: &[Role]) -> Topology {
    let mut b = Topology::builder();
    for (i, role) in roles.iter().enumerate() {
        let id = NodeId::new(u16::try_from(i).unwrap());
        b = b.node(Node::builder(id, *role).name(format!("db{i}:5432/app")).build());
    }
    b.build().unwrap()
}

/// Split brain names the nodes that claim the primary role, by the names `fence` takes.
#[test]
fn split_brain_names_the_primaries() {
    let topo = named(&[Role::Primary, Role::Replica, Role::Primary]);
    let routing = Routing::fresh(topo, RouterConfig::default(), HealthPolicy::default());
    let err = routing.route(&RouteContext::for_access(Access::Write, Instant::now())).unwrap_err();
    let Some(RoutingError::SplitBrain { primaries: 2, nodes }) = routing_error(&err) else {
        panic!("{err:?}")
    };
    assert_eq!(nodes, &["db0:5432/app", "db2:5432/app"]);
    let text = err.to_string();
    assert!(text.contains("(db0:5432/app, db2:5432/app)") && text.contains("fence("), "{text}");
}

/// No primary names every node, the joining ones too, and why each is not the primary, as
/// the monitor's state has it.
#[test]
fn no_primary_names_every_node_and_why() {
    let topo = named(&[Role::Replica, Role::Replica, Role::Replica, Role::Replica]);
    let routing = Routing::fresh(topo, RouterConfig::default(), HealthPolicy::default());
    routing.set_fenced(NodeId::new(1), true);
    routing.fence_unsupported(NodeId::new(2));
    routing.ban(NodeId::new(3));
    let joining = routing
        .state()
        .add_node(|id| Node::builder(id, Role::Replica).name("db9:5432/app").build())
        .unwrap();
    assert!(routing.state().snapshot().node(joining).is_none(), "joining");
    let err = routing.route(&RouteContext::for_access(Access::Write, Instant::now())).unwrap_err();
    let Some(RoutingError::NoPrimary { nodes }) = routing_error(&err) else { panic!("{err:?}") };
    let want = [
        ("db0:5432/app", OutReason::Replica),
        ("db1:5432/app", OutReason::Fenced),
        ("db2:5432/app", OutReason::Unsupported),
        ("db3:5432/app", OutReason::Down),
        ("db9:5432/app", OutReason::Joining),
    ];
    let want: Vec<NodeOut> = want.into_iter().map(|(n, why)| NodeOut::new(n, why)).collect();
    assert_eq!(nodes, &want);
    // Unfenced, a node is no longer said to be unsupported.
    routing.set_fenced(NodeId::new(2), false);
    let err = routing.route(&RouteContext::for_access(Access::Write, Instant::now())).unwrap_err();
    let Some(RoutingError::NoPrimary { nodes }) = routing_error(&err) else { panic!("{err:?}") };
    assert_eq!(nodes[2], NodeOut::new("db2:5432/app", OutReason::Replica));
}

/// A read no node can take names the rule that excluded each replica, and why the primary
/// could not take it.
#[rstest]
#[case::no_replica_never(
    &[Role::Primary], RouterConfig::default().primary_reads(rwsplit_core::PrimaryReads::Never),
    "there is no replica; the primary may not serve reads a replica could (primary_reads = never)"
)]
#[case::unprovable_never(
    &[Role::Primary, Role::Replica, Role::Replica],
    RouterConfig::default().primary_reads(rwsplit_core::PrimaryReads::Never),
    "of 2 replicas, 2 are not provably within the read's staleness bound; the primary may not"
)]
#[case::no_primary(
    &[Role::Replica, Role::Replica],
    RouterConfig::default().max_replica_lag(rwsplit_core::Staleness::bytes(0)),
    "; no node is the primary now"
)]
fn an_unroutable_read_names_the_rule(
    #[case] roles: &[Role],
    #[case] config: RouterConfig,
    #[case] says: &str,
) {
    let routing = Routing::fresh(topology(roles), config, HealthPolicy::default());
    let classified = rwsplit_core::explain("SELECT * FROM events", rwsplit_core::Dialect::Postgres);
    let consistency = rwsplit_core::Consistency::BoundedStaleness(rwsplit_core::Staleness::time(
        Duration::from_secs(1),
    ));
    let ctx = RouteContext::new(&classified, Instant::now()).with_consistency(&consistency);
    let Err(err) = routing.route(&ctx) else { panic!("routed") };
    let e = routing_error(&err).expect("typed");
    assert!(
        matches!(e, RoutingError::Unroutable { source: RouteError::NoEligibleNode { .. } }),
        "{e:?}"
    );
    assert!(e.to_string().contains(says), "{e}");
    assert!(err.to_string().contains(says), "{err}");
}

fn rows(backend: DbBackend, row: &[(&'static str, Option<&str>)]) -> DatabaseConnection {
    let row: BTreeMap<&str, Value> =
        row.iter().map(|(k, v)| (*k, Value::String(v.map(|v| v.to_owned())))).collect();
    MockDatabase::new(backend).append_query_results([vec![row]]).into_connection()
}

fn no_rows(backend: DbBackend) -> DatabaseConnection {
    MockDatabase::new(backend)
        .append_query_results([Vec::<BTreeMap<&str, Value>>::new()])
        .into_connection()
}

/// What a position capture makes of what the primary returned.
#[rstest]
#[case::bad_lsn(rows(DbBackend::Postgres, &[("lsn", Some("zz")), ("timeline", Some("1"))]), "lsn", Some("zz"))]
#[case::null_timeline(rows(DbBackend::Postgres, &[("lsn", Some("0/16B3748")), ("timeline", None)]), "timeline", None)]
#[case::no_row(no_rows(DbBackend::Postgres), "lsn", None)]
#[case::bad_gtid(rows(DbBackend::MySql, &[("pos", Some("not-a-gtid"))]), "gtid_binlog_pos", Some("not-a-gtid"))]
#[tokio::test]
async fn an_unreadable_position_is_typed(
    #[case] conn: DatabaseConnection,
    #[case] what: &str,
    #[case] value: Option<&str>,
) {
    // System id 7 is cached: the capture is one query.
    let product = crate::product::Product::of(conn.get_database_backend());
    let err = product.capture(&mut &conn, 7).await.expect_err("unreadable");
    assert!(matches!(err, DbErr::Query(_)), "{err:?}");
    let Some(RoutingError::PositionUnreadable { what: w, value: v, .. }) = routing_error(&err)
    else {
        panic!("{err:?}")
    };
    assert_eq!((*w, v.as_deref()), (what, value));
}

#[tokio::test]
async fn positions_on_an_unsupported_database_are_typed() {
    let conn = MockDatabase::new(DbBackend::Sqlite).into_connection();
    let product = crate::product::Product::of(conn.get_database_backend());
    let err = product.capture(&mut &conn, 0).await.expect_err("unsupported");
    assert!(matches!(
        routing_error(&err),
        Some(RoutingError::PositionUnsupported { backend: DbBackend::Sqlite })
    ));
}

/// A replica's replay position that is not an LSN fails the wait, typed, with the parser's
/// error as its source.
#[tokio::test]
async fn an_unreadable_replay_position_fails_the_wait() {
    let conn = rows(DbBackend::Postgres, &[("lsn", Some("zz"))]);
    let lsn: rwsplit_core::Lsn = "0/16B3748".parse().unwrap();
    let token = rwsplit_core::CausalToken::new(rwsplit_core::PgPosition::new(7, 1, lsn));
    let err = crate::nodes::position::wait_for(&conn, &token, Duration::from_secs(1))
        .await
        .expect_err("unreadable");
    let e = routing_error(&err).expect("typed");
    assert!(
        matches!(e, RoutingError::PositionUnreadable { what: "pg_last_wal_replay_lsn", value: Some(v), source: Some(_), .. } if v == "zz"),
        "{e:?}"
    );
    // The attempt loop does not hold it against the node.
    assert_eq!(crate::send::failure::classify(&err, true), Failure::Other);
}

/// A long server text is cut in the error.
#[test]
fn a_long_value_is_bounded() {
    assert_eq!(bounded(&"x".repeat(500)).len(), 64);
}
