//! The containers backend's own promises, whatever backend the rest of the run uses: the image
//! is cached, teardown after a crashed test process leaves nothing, and each network fault does
//! what it says on PostgreSQL and MariaDB (a node cut from replication keeps serving stale
//! reads; clients cut off hang while replication goes on; a one-way partition; latency on the
//! replication path). Each prints a `CONTAINERS-FIGURES` line.

use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_testkit::{BackendKind, Cluster, DbKind, Error};

use crate::support::{connect, count, eventually, exec, until};

const SOON: Duration = Duration::from_secs(20);

/// A private cluster on containers (the guard of `own_cluster` first: without `cargo xtask
/// itest` this fails loudly).
pub(crate) async fn containers_cluster(db: DbKind, name: &str, replicas: usize) -> Cluster {
    let _ = crate::support::shared(db);
    Cluster::builder()
        .db(db)
        .backend(BackendKind::Containers)
        .name(name)
        .replicas(replicas)
        .start()
        .await
        .unwrap_or_else(|e| panic!("a {db} cluster on containers starts: {e}"))
}

/// Connecting (startup handshake included) to `url` within `within`.
async fn reachable(url: &str, within: Duration) -> bool {
    sqlx::any::install_default_drivers();
    use sqlx::Connection;
    matches!(tokio::time::timeout(within, sqlx::AnyConnection::connect(url)).await, Ok(Ok(_)))
}

#[tokio::test]
async fn testkit_containers_image_is_built_once_and_then_cached() {
    let _ = crate::support::shared(DbKind::Postgres);
    let first =
        tokio::task::spawn_blocking(rwsplit_testkit::ensure_node_image).await.unwrap().unwrap();
    let again =
        tokio::task::spawn_blocking(rwsplit_testkit::ensure_node_image).await.unwrap().unwrap();
    eprintln!(
        "CONTAINERS-FIGURES image={} first_call_built={} first_call_s={:.2} cached_call_s={:.3}",
        first.reference, first.built, first.seconds, again.seconds
    );
    assert_eq!(first.reference, again.reference, "the same recipe gives the same image");
    assert!(!again.built, "a second call builds nothing");
    assert!(again.seconds < 2.0, "a cache hit is a lookup: {} s", again.seconds);
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn testkit_containers_start_and_teardown_leave_nothing(#[case] db: DbKind) {
    let started = Instant::now();
    let cluster = containers_cluster(db, "ctstart", 2).await;
    let up = started.elapsed();
    assert_eq!(cluster.backend(), BackendKind::Containers);
    let state = cluster.state();
    let run = state.run_id.clone().expect("a containers cluster has a run id");
    let labelled = |what: &str| {
        let out = std::process::Command::new("docker")
            .args([what, "ls", "-a", "-q", "--filter", &format!("label=rwsplit.run={run}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(labelled("container"), 3, "one container per node");
    let dir = state.dir.clone();
    assert!(dir.is_dir());
    let down = Instant::now();
    drop(cluster);
    eprintln!(
        "CONTAINERS-FIGURES db={db} start_to_ready_s={:.2} teardown_s={:.2}",
        up.as_secs_f64(),
        down.elapsed().as_secs_f64()
    );
    assert_eq!(labelled("container"), 0, "teardown removes every container of the run");
    let nets = std::process::Command::new("docker")
        .args(["network", "ls", "-q", "--filter", &format!("label=rwsplit.run={run}")])
        .output()
        .unwrap();
    assert!(nets.stdout.is_empty(), "teardown removes the networks");
    assert!(!dir.exists(), "teardown removes the data");
}

#[tokio::test]
async fn testkit_containers_a_crashed_test_is_reaped_by_its_root() {
    let _ = crate::support::shared(DbKind::Postgres);
    let root = std::env::temp_dir().join(format!("rwsplit-reap-{}", std::process::id()));
    let cluster = Cluster::builder()
        .backend(BackendKind::Containers)
        .root_dir(&root)
        .name("ctreap")
        .replicas(1)
        .start()
        .await
        .unwrap();
    let dir = cluster.dir().to_path_buf();
    // A test process that dies runs no destructor.
    std::mem::forget(cluster);
    let reaped = rwsplit_testkit::reap_containers(&root);
    assert_eq!(reaped.len(), 2, "both containers reaped: {reaped:?}");
    assert!(!dir.exists(), "and their data");
    assert!(rwsplit_testkit::reap_containers(&root).is_empty(), "nothing is left");
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn testkit_containers_network_controls_refuse_a_native_cluster() {
    let cluster = Cluster::builder()
        .backend(BackendKind::Native)
        .name("ctnative")
        .replicas(1)
        .start()
        .await
        .unwrap();
    let _ = crate::support::shared(DbKind::Postgres);
    let r = &cluster.replicas()[0];
    for err in [
        r.cut_replication().unwrap_err(),
        r.cut_clients().unwrap_err(),
        r.drop_from(cluster.primary()).unwrap_err(),
    ] {
        assert!(matches!(err, Error::InvalidControl { .. }), "{err}");
        assert!(err.to_string().contains("BackendKind::Containers"), "{err}");
    }
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn testkit_containers_a_replica_cut_from_replication_serves_stale_reads(#[case] db: DbKind) {
    let cluster = containers_cluster(db, "ctcut", 2).await;
    let tdb = cluster.create_database("ctcut").await.unwrap();
    let mut p = connect(&tdb.primary_url()).await;
    exec(&mut p, "CREATE TABLE t (id int)").await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    let (cut, fresh) = (&tdb.replica_urls()[0], &tdb.replica_urls()[1]);

    cluster.replicas()[0].cut_replication().unwrap();
    exec(&mut p, "INSERT INTO t VALUES (1), (2), (3)").await.unwrap();
    until("the other replica to have the rows", || async { count(fresh, "t").await == Some(3) })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(cut, "t").await, Some(0), "the cut replica still serves, without the rows");

    let healed = Instant::now();
    cluster.replicas()[0].heal_replication().unwrap();
    let took =
        until("the healed replica to catch up", || async { count(cut, "t").await == Some(3) })
            .await;
    eprintln!(
        "CONTAINERS-FIGURES db={db} fault=cut-replication heal_to_caught_up_ms={}",
        took.max(healed.elapsed()).as_millis()
    );
    cluster.wait_caught_up(0, SOON).await.unwrap();
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn testkit_containers_clients_cut_off_a_node_hang_while_it_replicates(#[case] db: DbKind) {
    let cluster = containers_cluster(db, "ctclients", 1).await;
    let tdb = cluster.create_database("ctclients").await.unwrap();
    let mut p = connect(&tdb.primary_url()).await;
    exec(&mut p, "CREATE TABLE t (id int)").await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    let replica = &tdb.replica_urls()[0];

    cluster.replicas()[0].cut_clients().unwrap();
    assert!(!reachable(replica, Duration::from_secs(1)).await, "clients are cut off");
    exec(&mut p, "INSERT INTO t VALUES (1)").await.unwrap();
    // Replication goes on meanwhile: right after the heal, the row is there.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.replicas()[0].heal_clients().unwrap();
    cluster.replicas()[0].heal_clients().unwrap(); // healing twice is harmless
    assert!(reachable(replica, Duration::from_secs(5)).await, "clients are back");
    assert_eq!(count(replica, "t").await, Some(1), "the node replicated while cut off");
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn testkit_containers_a_one_way_partition_starves_the_receiving_side(#[case] db: DbKind) {
    let cluster = containers_cluster(db, "ctoneway", 1).await;
    let tdb = cluster.create_database("ctoneway").await.unwrap();
    let mut p = connect(&tdb.primary_url()).await;
    exec(&mut p, "CREATE TABLE t (id int)").await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    let (replica, primary) = (&cluster.replicas()[0], cluster.primary());
    let url = &tdb.replica_urls()[0];

    // The replica hears nothing from the primary; the primary still hears the replica.
    replica.drop_from(primary).unwrap();
    exec(&mut p, "INSERT INTO t VALUES (1)").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(url, "t").await, Some(0), "nothing arrives through the partition");
    assert!(reachable(url, Duration::from_secs(2)).await, "clients still reach the replica");
    replica.undrop_from(primary).unwrap();
    let took =
        until("the replica to catch up", || async { count(url, "t").await == Some(1) }).await;
    eprintln!("CONTAINERS-FIGURES db={db} fault=one-way heal_to_caught_up_ms={}", took.as_millis());
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn testkit_containers_latency_on_the_replication_path_delays_replay(#[case] db: DbKind) {
    let cluster = containers_cluster(db, "ctdelay", 2).await;
    let tdb = cluster.create_database("ctdelay").await.unwrap();
    let mut p = connect(&tdb.primary_url()).await;
    exec(&mut p, "CREATE TABLE t (id int)").await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    let (slow, fresh) = (&tdb.replica_urls()[0], &tdb.replica_urls()[1]);
    let latency = Duration::from_millis(300);
    let proxy = cluster.replicas()[0]
        .delay_replication(cluster.primary(), latency, Duration::ZERO)
        .await
        .unwrap();
    // Replication reconnects through the proxy.
    cluster.wait_replicating(2, SOON).await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();

    exec(&mut p, "INSERT INTO t VALUES (1)").await.unwrap();
    let written = Instant::now();
    until("the direct replica to have the row", || async { count(fresh, "t").await == Some(1) })
        .await;
    let direct = written.elapsed();
    until("the delayed replica to have the row", || async { count(slow, "t").await == Some(1) })
        .await;
    let delayed = written.elapsed();
    eprintln!(
        "CONTAINERS-FIGURES db={db} fault=replication-latency-{}ms direct_ms={} delayed_ms={}",
        latency.as_millis(),
        direct.as_millis(),
        delayed.as_millis()
    );
    assert!(delayed >= latency, "the row arrived after {delayed:?}, under the {latency:?} latency");

    // Back to the direct path before the proxy goes.
    cluster.replicas()[0].follow(cluster.primary()).await.unwrap();
    drop(proxy);
    exec(&mut p, "INSERT INTO t VALUES (2)").await.unwrap();
    let took = eventually(SOON, || async { count(slow, "t").await == Some(2) }).await;
    assert!(took.is_some(), "the replica replicates directly again");
}

/// Removes a container by name when dropped, also when the test fails.
struct Removed(String);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker").args(["rm", "--force", &self.0]).output();
    }
}

#[tokio::test]
async fn testkit_containers_controls_refuse_a_container_of_another_run() {
    let _ = crate::support::shared(DbKind::Postgres);
    let image =
        tokio::task::spawn_blocking(rwsplit_testkit::ensure_node_image).await.unwrap().unwrap();
    // A container named as this cluster's n1 would be, but labelled with someone else's run.
    let run = format!("rwsplit-foreign-{}", std::process::id());
    let name = format!("{run}-n1");
    let made = std::process::Command::new("docker")
        .args(["run", "--detach", "--name", &name, "--network", "none"])
        .args(["--label", "rwsplit.testkit=1", "--label", "rwsplit.run=someone-else"])
        .args([image.reference.as_str(), "sleep", "120"])
        .output()
        .unwrap();
    let _removed = Removed(name.clone());
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let dir = std::env::temp_dir().join(format!("rwsplit-foreign-{}", std::process::id()));
    let state = serde_json::json!({
        "db": "postgres", "backend": "containers", "run_id": run, "dir": dir, "bin_dir": "",
        "settings": [],
        "nodes": [
            {"name": "n0", "port": 1, "pid": null, "data_dir": dir, "log": dir.join("n0.log")},
            {"name": "n1", "port": 2, "pid": null, "data_dir": dir, "log": dir.join("n1.log")}
        ]
    });
    let path = std::env::temp_dir().join(format!("rwsplit-foreign-{}.json", std::process::id()));
    std::fs::write(&path, state.to_string()).unwrap();
    let cluster = Cluster::attach(&rwsplit_testkit::ClusterState::load(&path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    let n1 = &cluster.replicas()[0];
    for err in [n1.cut_clients().unwrap_err(), n1.cut_replication().unwrap_err()] {
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidControl { .. }), "{text}");
        assert!(text.contains("someone-else") && text.contains("refusing"), "{text}");
    }
    // Attached, not started here: dropping it leaves the container to its owner (the guard).
    drop(cluster);
}
