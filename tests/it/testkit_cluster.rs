//! The testkit's promises, on PostgreSQL and MariaDB: replication works, replicas refuse writes,
//! and every control breaks and heals a node for real.

use std::time::Duration;

use rstest::rstest;
use rwsplit_testkit::{BackendKind, DbKind};
use sqlx::Connection;

use crate::support::{connect, count, eventually, exec, own_cluster, shared};

const SOON: Duration = Duration::from_secs(10);

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_write_on_the_primary_reaches_every_replica(#[case] db: DbKind) {
    let cluster = shared(db);
    let tdb = cluster.create_database("visible").await.unwrap();
    let mut p = connect(&tdb.primary_url()).await;
    exec(&mut p, "CREATE TABLE t (id int primary key, v varchar(20))").await.unwrap();
    exec(&mut p, "INSERT INTO t VALUES (1, 'hello')").await.unwrap();
    let urls = tdb.replica_urls();
    assert_eq!(urls.len(), 2, "the shared cluster has two replicas");
    for url in urls {
        let took = eventually(SOON, || async { count(&url, "t").await == Some(1) }).await;
        assert!(took.is_some(), "the row never reached {url}");
        let mut r = connect(&url).await;
        let v: String =
            sqlx::query_scalar("SELECT v FROM t WHERE id = 1").fetch_one(&mut r).await.unwrap();
        assert_eq!(v, "hello");
    }
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_replica_refuses_writes(#[case] db: DbKind) {
    let cluster = shared(db);
    let tdb = cluster.create_database("refuse").await.unwrap();
    let mut p = connect(&tdb.primary_url()).await;
    exec(&mut p, "CREATE TABLE t (id int)").await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    let mut r = connect(&tdb.replica_urls()[0]).await;
    let err = exec(&mut r, "INSERT INTO t VALUES (1)").await.unwrap_err();
    let dbe = err.as_database_error().unwrap_or_else(|| panic!("a database error, got {err}"));
    match db {
        // read_only_sql_transaction
        DbKind::Postgres => assert_eq!(dbe.code().as_deref(), Some("25006"), "{err}"),
        // ER_OPTION_PREVENTS_STATEMENT: "... running with the --read-only option ..."
        _ => assert!(dbe.message().contains("read-only"), "{err}"),
    }
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn every_node_reports_its_role(#[case] db: DbKind) {
    let cluster = shared(db);
    assert!(!cluster.primary().is_replica().await.unwrap());
    assert_eq!(cluster.primary().status().await.is_replica, Some(false));
    for r in cluster.replicas() {
        assert!(r.is_replica().await.unwrap(), "{} should be a replica", r.name());
        let s = r.status().await;
        assert_eq!(s.is_replica, Some(true));
        assert!(s.position.is_some());
    }
    // Where the others replicate each node from: its URL's host and port natively, its name on
    // the replication network on containers (the application cannot reach that one).
    for n in cluster.nodes() {
        let expected = match cluster.backend() {
            BackendKind::Native => format!("127.0.0.1:{}", n.port()),
            _ => format!("{}:{}", n.name(), n.port()),
        };
        assert_eq!(n.replication_address(), expected);
        if cluster.backend() == BackendKind::Native {
            assert!(n.url().contains(&format!("@{expected}/")), "{}", n.url());
        }
    }
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn paused_replay_makes_a_replica_stale_and_resuming_heals_it(#[case] db: DbKind) {
    let cluster = own_cluster(db, "pause", 2).await;
    let tdb = cluster.create_database("pause").await.unwrap();
    let mut p = connect(&tdb.primary_url()).await;
    exec(&mut p, "CREATE TABLE t (id int)").await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    let (stale, fresh) = (&tdb.replica_urls()[0], &tdb.replica_urls()[1]);

    cluster.replicas()[0].pause_replay().await.unwrap();
    exec(&mut p, "INSERT INTO t VALUES (1), (2), (3)").await.unwrap();

    // The other replica sees the rows at once; the paused one does not, however long we wait.
    assert!(eventually(SOON, || async { count(fresh, "t").await == Some(3) }).await.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(stale, "t").await, Some(0), "a paused replica must not advance");
    let lagging =
        cluster.replicas()[0].wait_caught_up_with(cluster.primary(), Duration::from_millis(200));
    assert!(lagging.await.is_err(), "a paused replica must not report being caught up");

    cluster.replicas()[0].resume_replay().await.unwrap();
    assert!(eventually(SOON, || async { count(stale, "t").await == Some(3) }).await.is_some());
    cluster.wait_caught_up(0, SOON).await.unwrap();
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn an_apply_delay_holds_commits_back(#[case] db: DbKind) {
    let cluster = own_cluster(db, "delay", 1).await;
    let tdb = cluster.create_database("delay").await.unwrap();
    let mut p = connect(&tdb.primary_url()).await;
    exec(&mut p, "CREATE TABLE t (id int)").await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    let replica = &tdb.replica_urls()[0];

    // MariaDB's MASTER_DELAY has whole seconds: 800 ms holds the row 1–2 s there.
    cluster.replicas()[0].set_apply_delay(Duration::from_millis(800)).await.unwrap();
    exec(&mut p, "INSERT INTO t VALUES (1)").await.unwrap();
    let took = eventually(SOON, || async { count(replica, "t").await == Some(1) }).await.unwrap();
    assert!(took >= Duration::from_millis(600), "visible after {took:?}, expected about 800 ms");

    cluster.replicas()[0].clear_apply_delay().await.unwrap();
    exec(&mut p, "INSERT INTO t VALUES (2)").await.unwrap();
    let took = eventually(SOON, || async { count(replica, "t").await == Some(2) }).await.unwrap();
    assert!(took < Duration::from_millis(500), "visible after {took:?} with the delay cleared");
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_killed_replica_restarts_and_replicates_again(#[case] db: DbKind) {
    let cluster = own_cluster(db, "crash", 2).await;
    let tdb = cluster.create_database("crash").await.unwrap();
    let mut p = connect(&tdb.primary_url()).await;
    exec(&mut p, "CREATE TABLE t (id int)").await.unwrap();
    let victim = &cluster.replicas()[0];
    let old_pid = victim.pid().unwrap();

    victim.crash().unwrap();
    assert!(!victim.is_running());
    sqlx::any::install_default_drivers();
    let refused = sqlx::AnyConnection::connect(&tdb.replica_urls()[0]).await;
    assert!(refused.is_err(), "a crashed node refuses connections");
    exec(&mut p, "INSERT INTO t VALUES (1)").await.unwrap();

    victim.restart().await.unwrap();
    assert_ne!(victim.pid(), Some(old_pid));
    cluster.wait_replicating(2, SOON).await.unwrap();
    let url = &tdb.replica_urls()[0];
    assert!(eventually(SOON, || async { count(url, "t").await == Some(1) }).await.is_some());
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_hung_replica_accepts_tcp_but_answers_nothing_until_resumed(#[case] db: DbKind) {
    let cluster = own_cluster(db, "hang", 1).await;
    let node = &cluster.replicas()[0];
    node.hang().unwrap();
    assert_eq!(node.process_state(), rwsplit_testkit::ProcessState::Hung);
    // The kernel still completes the TCP handshake.
    let addr = ("127.0.0.1", node.port());
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok(), "TCP connect should succeed");
    sqlx::any::install_default_drivers();
    let attempt =
        tokio::time::timeout(Duration::from_millis(500), sqlx::AnyConnection::connect(&node.url()))
            .await;
    assert!(attempt.is_err(), "a hung server must not complete the startup handshake");
    node.unhang().unwrap();
    assert!(node.is_replica().await.unwrap());
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_promoted_replica_accepts_writes_and_another_can_follow_it(#[case] db: DbKind) {
    let cluster = own_cluster(db, "promote", 2).await;
    let tdb = cluster.create_database("promote").await.unwrap();
    let mut p = connect(&tdb.primary_url()).await;
    exec(&mut p, "CREATE TABLE t (id int)").await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    drop(p);
    let (new_primary, follower) = (&cluster.replicas()[0], &cluster.replicas()[1]);

    // A clean switchover: stop the old primary first so nothing diverges.
    cluster.primary().stop().unwrap();
    new_primary.promote().await.unwrap();
    assert!(!new_primary.is_replica().await.unwrap());
    let mut np = connect(&tdb.replica_urls()[0]).await;
    exec(&mut np, "INSERT INTO t VALUES (42)").await.unwrap();

    follower.follow(new_primary).await.unwrap();
    let url = &tdb.replica_urls()[1];
    let took = eventually(SOON, || async { count(url, "t").await == Some(1) }).await;
    assert!(took.is_some(), "the follower never saw the new primary's write");
}
