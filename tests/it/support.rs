//! Shared fixtures: the cluster `cargo xtask itest` started, private clusters for destructive
//! tests, and small SQL helpers.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rwsplit_testkit::{Cluster, ClusterState};
use sqlx::{Connection, PgConnection};

/// The guard every test goes through: without the environment `cargo xtask itest` sets, fail
/// loudly instead of skipping.
fn state_path() -> String {
    std::env::var("RWSPLIT_ITEST_CLUSTER").unwrap_or_else(|_| {
        panic!(
            "RWSPLIT_ITEST_CLUSTER is not set: run the integration tests with `cargo xtask itest`"
        )
    })
}

/// The long-lived cluster started by `cargo xtask itest`, shared by the tests that do not break
/// nodes. Tests isolate themselves with [`Cluster::create_database`].
pub(crate) fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        let path = state_path();
        let state = ClusterState::load(path.as_ref()).expect("the itest cluster state is readable");
        Cluster::attach(&state).expect("the itest cluster can be attached")
    })
}

/// A private cluster for a test that crashes, hangs, lags or promotes nodes. It is stopped when
/// dropped.
pub(crate) async fn own_cluster(name: &str, replicas: usize) -> Cluster {
    let _ = state_path();
    Cluster::builder()
        .name(name)
        .replicas(replicas)
        .start()
        .await
        .expect("a private cluster starts")
}

pub(crate) async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Polls `check` every 5 ms until it returns true or `timeout` passes; returns how long it took.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// The number of rows in table `t` of the database at `url`, or `None` when it cannot be read.
pub(crate) async fn count(url: &str, table: &str) -> Option<i64> {
    let mut c = PgConnection::connect(url).await.ok()?;
    let sql = format!("SELECT count(*) FROM {table}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut c).await.ok()
}
