//! The testkit's promises: replication works, replicas refuse writes, and every control breaks
//! and heals a node for real.

use std::time::Duration;

use sqlx::Connection;

use crate::support::{connect, count, eventually, own_cluster, shared};

const SOON: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_write_on_the_primary_reaches_every_replica() {
    let cluster = shared();
    let db = cluster.create_database("visible").await.unwrap();
    let mut p = connect(&db.primary_url()).await;
    sqlx::raw_sql("CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'hello')")
        .execute(&mut p)
        .await
        .unwrap();
    let urls = db.replica_urls();
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

#[tokio::test]
async fn a_replica_refuses_writes() {
    let cluster = shared();
    let db = cluster.create_database("refuse").await.unwrap();
    let mut p = connect(&db.primary_url()).await;
    sqlx::raw_sql("CREATE TABLE t (id int)").execute(&mut p).await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    let mut r = connect(&db.replica_urls()[0]).await;
    let err = sqlx::query("INSERT INTO t VALUES (1)").execute(&mut r).await.unwrap_err();
    let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("25006"), "read_only_sql_transaction expected, got {err}");
}

#[tokio::test]
async fn every_node_reports_its_role() {
    let cluster = shared();
    assert!(!cluster.primary().is_in_recovery().await.unwrap());
    for r in cluster.replicas() {
        assert!(r.is_in_recovery().await.unwrap(), "{} should be a replica", r.name());
        let s = r.status().await;
        assert_eq!(s.in_recovery, Some(true));
        assert!(s.position.is_some());
    }
}

#[tokio::test]
async fn paused_replay_makes_a_replica_stale_and_resuming_heals_it() {
    let cluster = own_cluster("pause", 2).await;
    let db = cluster.create_database("pause").await.unwrap();
    let mut p = connect(&db.primary_url()).await;
    sqlx::raw_sql("CREATE TABLE t (id int)").execute(&mut p).await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    let (stale, fresh) = (&db.replica_urls()[0], &db.replica_urls()[1]);

    cluster.replicas()[0].pause_replay().await.unwrap();
    sqlx::query("INSERT INTO t SELECT generate_series(1, 100)").execute(&mut p).await.unwrap();
    let primary_lsn = cluster.primary().current_lsn().await.unwrap();

    // The other replica sees the rows at once; the paused one does not, however long we wait.
    assert!(eventually(SOON, || async { count(fresh, "t").await == Some(100) }).await.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(stale, "t").await, Some(0), "a paused replica must not advance");
    let replayed = cluster.replicas()[0].replay_lsn().await.unwrap().unwrap();
    assert!(replayed < primary_lsn, "replay position {replayed} should be behind {primary_lsn}");

    cluster.replicas()[0].resume_replay().await.unwrap();
    assert!(eventually(SOON, || async { count(stale, "t").await == Some(100) }).await.is_some());
}

#[tokio::test]
async fn an_apply_delay_holds_commits_back() {
    let cluster = own_cluster("delay", 1).await;
    let db = cluster.create_database("delay").await.unwrap();
    let mut p = connect(&db.primary_url()).await;
    sqlx::raw_sql("CREATE TABLE t (id int)").execute(&mut p).await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    let replica = &db.replica_urls()[0];

    cluster.replicas()[0].set_apply_delay(Duration::from_millis(800)).await.unwrap();
    sqlx::query("INSERT INTO t VALUES (1)").execute(&mut p).await.unwrap();
    let took = eventually(SOON, || async { count(replica, "t").await == Some(1) }).await.unwrap();
    assert!(took >= Duration::from_millis(600), "visible after {took:?}, expected about 800 ms");

    cluster.replicas()[0].clear_apply_delay().await.unwrap();
    sqlx::query("INSERT INTO t VALUES (2)").execute(&mut p).await.unwrap();
    let took = eventually(SOON, || async { count(replica, "t").await == Some(2) }).await.unwrap();
    assert!(took < Duration::from_millis(500), "visible after {took:?} with the delay cleared");
}

#[tokio::test]
async fn a_killed_replica_restarts_and_streams_again() {
    let cluster = own_cluster("crash", 2).await;
    let db = cluster.create_database("crash").await.unwrap();
    let mut p = connect(&db.primary_url()).await;
    sqlx::raw_sql("CREATE TABLE t (id int)").execute(&mut p).await.unwrap();
    let victim = &cluster.replicas()[0];
    let old_pid = victim.pid().unwrap();

    victim.crash().unwrap();
    assert!(!victim.is_running());
    assert!(
        sqlx::PgConnection::connect(&db.replica_urls()[0]).await.is_err(),
        "a crashed node refuses"
    );
    sqlx::query("INSERT INTO t VALUES (1)").execute(&mut p).await.unwrap();

    victim.restart().await.unwrap();
    assert_ne!(victim.pid(), Some(old_pid));
    cluster.wait_streaming(2, SOON).await.unwrap();
    let url = &db.replica_urls()[0];
    assert!(eventually(SOON, || async { count(url, "t").await == Some(1) }).await.is_some());
}

#[tokio::test]
async fn a_hung_replica_accepts_tcp_but_answers_nothing_until_resumed() {
    let cluster = own_cluster("hang", 1).await;
    let node = &cluster.replicas()[0];
    node.hang().unwrap();
    assert_eq!(node.process_state(), rwsplit_testkit::ProcessState::Hung);
    // The kernel still completes the TCP handshake.
    let addr = ("127.0.0.1", node.port());
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok(), "TCP connect should succeed");
    let attempt =
        tokio::time::timeout(Duration::from_millis(500), sqlx::PgConnection::connect(&node.url()))
            .await;
    assert!(attempt.is_err(), "a hung server must not complete the startup handshake");
    node.unhang().unwrap();
    assert!(node.is_in_recovery().await.unwrap());
}

#[tokio::test]
async fn a_promoted_standby_accepts_writes_and_another_can_follow_it() {
    let cluster = own_cluster("promote", 2).await;
    let db = cluster.create_database("promote").await.unwrap();
    let mut p = connect(&db.primary_url()).await;
    sqlx::raw_sql("CREATE TABLE t (id int)").execute(&mut p).await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    drop(p);
    let (new_primary, follower) = (&cluster.replicas()[0], &cluster.replicas()[1]);

    // A clean switchover: stop the old primary first so nothing diverges.
    cluster.primary().stop().unwrap();
    new_primary.promote().await.unwrap();
    assert!(!new_primary.is_in_recovery().await.unwrap());
    let mut np = connect(&db.replica_urls()[0]).await;
    sqlx::query("INSERT INTO t VALUES (42)").execute(&mut np).await.unwrap();

    follower.follow(new_primary).await.unwrap();
    let url = &db.replica_urls()[1];
    let took = eventually(SOON, || async { count(url, "t").await == Some(1) }).await;
    assert!(took.is_some(), "the follower never saw the new primary's write");
}
