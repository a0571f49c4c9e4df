//! One application process of a fleet under automatic failover, for `tests/it/failover.rs`: a
//! `RoutedConnection` with `AutoFailover` on, and a writer that records every acknowledged write.
//!
//! It is given its cluster and settings in `RWSPLIT_ITEST_FW_*` variables (the test's own, which
//! `RoutedConnection::from_env` never reads: it builds the connection itself):
//! - `PRIMARY`, `REPLICAS` (comma-separated, in this process's own order), `ADDRESSES` (each
//!   node's replication address, primary first, comma-separated);
//! - `ADMIN` (`user:password`, optional), `WRITER` (this process's number, which makes its ids
//!   `WRITER * 1e9 + n`), `TABLE`;
//! - `GRACE_MS`, `DEADLINE_MS`, `AFTER_FAILURES`, `RETRY_MS`, `PROBE_MS`, `PROBE_TIMEOUT_MS`.
//!
//! Its monitor's log (`RUST_LOG`) goes to standard error. It prints `READY` once connected, `ACK <id>` for each acknowledged write, and when its
//! standard input closes, `PROMOTIONS <n>` (the promotions its monitor made) and `END`.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rwsplit_sea_orm::advanced::{AutoFailover, HealthPolicy, MonitorConfig};
use rwsplit_sea_orm::{Replica, RoutedConnection};
use sea_orm::{ConnectionTrait, Statement};
use tokio::io::AsyncReadExt;

fn var(name: &str) -> anyhow::Result<String> {
    let key = format!("RWSPLIT_ITEST_FW_{name}");
    std::env::var(&key).map_err(|_| anyhow::anyhow!("{key} is not set"))
}

fn millis(name: &str) -> anyhow::Result<Duration> {
    Ok(Duration::from_millis(var(name)?.parse()?))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let replicas: Vec<String> = var("REPLICAS")?.split(',').map(str::to_owned).collect();
    let addresses: Vec<String> = var("ADDRESSES")?.split(',').map(str::to_owned).collect();
    let writer: i64 = var("WRITER")?.parse()?;
    let table = var("TABLE")?;
    let mut failover = AutoFailover::default()
        .grace(millis("GRACE_MS")?)
        .deadline(millis("DEADLINE_MS")?)
        .retry_after(millis("RETRY_MS")?)
        .after_failures(var("AFTER_FAILURES")?.parse()?);
    if let Ok(admin) = var("ADMIN") {
        let (user, password) = admin.split_once(':').unwrap_or((admin.as_str(), ""));
        failover = failover.admin_credentials(user, password);
    }
    let replicas: Vec<Replica> = replicas
        .iter()
        .zip(addresses.iter().skip(1))
        .map(|(url, address)| Replica::new(url).replication_address(address))
        .collect();
    let db = RoutedConnection::builder()
        .primary(var("PRIMARY")?)
        .primary_replication_address(&addresses[0])
        .replicas(replicas)
        .monitor(
            MonitorConfig::default()
                .probe_interval(millis("PROBE_MS")?)
                .probe_timeout(millis("PROBE_TIMEOUT_MS")?),
        )
        .health_policy(HealthPolicy::default().ban_base(Duration::from_secs(1)))
        .acquire_timeout(Duration::from_secs(2))
        .auto_failover(failover)
        .connect()
        .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    tokio::spawn(async move {
        // Until the test closes this process's standard input.
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
        stopping.store(true, Ordering::Release);
    });
    say("READY");
    let backend = db.get_database_backend();
    let mut n: i64 = 0;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let id = writer * 1_000_000_000 + n;
        let sql = format!("INSERT INTO {table} (id, writer) VALUES ({id}, {writer})");
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            db.execute_raw(Statement::from_string(backend, sql)),
        );
        match sent.await {
            Ok(Ok(_)) => say(&format!("ACK {id}")),
            // Refused, failed or unclear: not acknowledged, so not counted. A write refused
            // at once (no primary) is tried again after a pause, not in a spin.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    say(&format!("PROMOTIONS {}", db.stats().promotions()));
    say("END");
    // A write abandoned on a deposed primary may hold a connection its pool waits for.
    let _ = tokio::time::timeout(Duration::from_secs(2), db.close()).await;
    Ok(())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
