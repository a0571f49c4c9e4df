//! The `sea_orm` crate that SeaORM's own integration tests see when `cargo xtask seaorm-suite`
//! runs them: SeaORM itself, except that `DatabaseConnection` and `DbConn` are rwsplit's
//! `RoutedConnection`. Written into `target/seaorm-suite/support/` by the xtask (this file is
//! its template); the tests' `setup` and `block_on!` are replaced to call [`suite`].
#![allow(missing_docs, unreachable_pub)]

pub use sea_orm_real::*;

pub use rwsplit_sea_orm::RoutedConnection as DatabaseConnection;
pub use rwsplit_sea_orm::RoutedConnection as DbConn;

/// SeaORM's prelude, with the routed connection.
pub mod prelude {
    pub use crate::{DatabaseConnection, DbConn};
    pub use sea_orm_real::prelude::*;
}

/// SeaORM's `entity` module, with the routed connection in its prelude.
pub mod entity {
    pub use sea_orm_real::entity::*;
    /// SeaORM's entity prelude, with the routed connection.
    pub mod prelude {
        pub use crate::{DatabaseConnection, DbConn};
        pub use sea_orm_real::entity::prelude::*;
    }
}

/// What the replaced `setup` and `block_on!` call: the cluster from the environment, one
/// routed connection per test database, and a JSON line of counts per test.
pub mod suite {
    use std::cell::RefCell;
    use std::future::Future;
    use std::io::Write;
    use std::time::{Duration, Instant};

    use rwsplit_sea_orm::RoutedConnection;
    use sea_orm_real::{ConnectionTrait, Database, DbBackend, Statement};

    /// The primary's URL (any database; its path is replaced by the test's database).
    pub const PRIMARY: &str = "RWSPLIT_SEAORM_SUITE_PRIMARY";
    /// The replicas' URLs, comma-separated, likewise.
    pub const REPLICAS: &str = "RWSPLIT_SEAORM_SUITE_REPLICAS";
    /// `readme` (the README's builder: URLs only) or `wait-<ms>` (`.wait_for_replica(ms)`).
    pub const MODE: &str = "RWSPLIT_SEAORM_SUITE_MODE";
    /// The file each finished test appends its JSON line to.
    pub const OUT: &str = "RWSPLIT_SEAORM_SUITE_OUT";

    thread_local! {
        /// The connections the running test opened (tests run one per thread).
        static OPENED: RefCell<Vec<RoutedConnection>> = const { RefCell::new(Vec::new()) };
        /// The message of the last panic on this thread (a failed assertion).
        static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Keeps each thread's last panic message for its test's line; the default hook still
    /// prints it.
    fn catch_panic_messages() {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
                previous(info);
            }));
        });
    }

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run SeaORM's suite with `cargo xtask seaorm-suite`")
        })
    }

    /// `url` with its database replaced by `db`.
    fn with_db(url: &str, db: &str) -> String {
        let (base, _) = url.rsplit_once('/').unwrap_or((url, ""));
        format!("{base}/{db}")
    }

    /// The `wait_for_replica` bound of `mode`, or `None` for the README's configuration.
    fn wait_of(mode: &str) -> Option<Duration> {
        match mode {
            "readme" => None,
            other => {
                let ms = other.strip_prefix("wait-").and_then(|ms| ms.parse::<u64>().ok());
                let ms = ms.unwrap_or_else(|| panic!("{MODE}={other}: want readme or wait-<ms>"));
                Some(Duration::from_millis(ms))
            }
        }
    }

    /// SeaORM's `setup` on a replicated cluster: (re)creates database `db` on the primary,
    /// waits until every replica has it (as a deployment's replicas would), and connects a
    /// `RoutedConnection` configured by `RWSPLIT_SEAORM_SUITE_MODE`.
    pub async fn connect(db: &str) -> RoutedConnection {
        let primary = env(PRIMARY);
        let replicas: Vec<String> = env(REPLICAS).split(',').map(str::to_owned).collect();
        let admin = Database::connect(&primary).await.expect("connect to the primary");
        for sql in [
            format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"),
            format!("CREATE DATABASE \"{db}\""),
        ] {
            admin
                .execute_raw(Statement::from_string(DbBackend::Postgres, sql.clone()))
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let _ = admin.close().await;
        for replica in &replicas {
            let started = Instant::now();
            loop {
                match Database::connect(with_db(replica, db)).await {
                    Ok(c) => {
                        let _ = c.close().await;
                        break;
                    }
                    Err(e) if started.elapsed() > Duration::from_secs(20) => {
                        panic!("database {db} did not reach replica {replica} in 20 s: {e}")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
        let mut builder = RoutedConnection::builder()
            .primary(with_db(&primary, db))
            .replicas(replicas.iter().map(|r| with_db(r, db)));
        if let Some(wait) = wait_of(&env(MODE)) {
            builder = builder.wait_for_replica(wait);
        }
        let conn = builder.connect().await.expect("a RoutedConnection to the test database");
        OPENED.with(|o| o.borrow_mut().push(conn.clone()));
        conn
    }

    /// SeaORM's `tear_down`: drops database `db` on the primary.
    pub async fn drop_database(db: &str) {
        let admin = Database::connect(&env(PRIMARY)).await.expect("connect to the primary");
        let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
        let _ = admin.execute_raw(Statement::from_string(DbBackend::Postgres, sql)).await;
        let _ = admin.close().await;
    }

    /// What a test function returned: `()` or a `Result`.
    pub trait Outcome {
        /// The failure it reports, if it failed.
        fn failure(&self) -> Option<String>;
    }

    impl Outcome for () {
        fn failure(&self) -> Option<String> {
            None
        }
    }

    impl<T, E: std::fmt::Debug> Outcome for Result<T, E> {
        fn failure(&self) -> Option<String> {
            self.as_ref().err().map(|e| format!("returned Err({e:?})"))
        }
    }

    /// Writes the running test's line when dropped, also while a failed assertion unwinds.
    struct Record {
        suite: &'static str,
        failure: Option<String>,
        started: Instant,
    }

    impl Drop for Record {
        fn drop(&mut self) {
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            let conns = OPENED.with(|o| std::mem::take(&mut *o.borrow_mut()));
            let (mut primary, mut replica, mut writes) = (0, 0, 0);
            let (mut ryw_replica, mut ryw_primary, mut waits, mut timeouts, mut captures) =
                (0, 0, 0, 0, 0);
            for c in &conns {
                let s = c.stats();
                primary += s.primary().reads();
                replica += s.replica_reads();
                writes += s.primary().writes();
                let r = s.read_your_writes();
                ryw_replica += r.replica_reads;
                ryw_primary += r.primary_reads;
                waits += r.waits;
                timeouts += r.wait_timeouts;
                captures += r.positions_captured;
            }
            let panicked = std::thread::panicking();
            let failure = match (&self.failure, panicked) {
                (Some(f), _) => Some(f.clone()),
                (None, true) => Some(
                    PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "panicked".to_owned()),
                ),
                (None, false) => None,
            };
            let line = serde_json::json!({
                "suite": self.suite,
                "test": test,
                "passed": failure.is_none(),
                "failure": failure,
                "connections": conns.len(),
                "primary_reads": primary,
                "replica_reads": replica,
                "writes": writes,
                "ryw_replica_reads": ryw_replica,
                "ryw_primary_reads": ryw_primary,
                "waits": waits,
                "wait_timeouts": timeouts,
                "positions_captured": captures,
                "seconds": self.started.elapsed().as_secs_f64(),
            });
            let Ok(path) = std::env::var(OUT) else { return };
            let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
            if let Ok(mut f) = file {
                // One write per line: appends from parallel tests do not interleave.
                let _ = f.write_all(format!("{line}\n").as_bytes());
            }
        }
    }

    /// SeaORM's `block_on!`: a fresh tokio runtime per test, as SeaORM's own; records the
    /// test's counts and outcome when it ends.
    pub fn run<F>(suite: &'static str, fut: F) -> F::Output
    where
        F: Future,
        F::Output: Outcome,
    {
        catch_panic_messages();
        OPENED.with(|o| o.borrow_mut().clear());
        PANIC.with(|p| p.borrow_mut().take());
        let mut record = Record { suite, failure: None, started: Instant::now() };
        let out = tokio::runtime::Runtime::new().expect("a tokio runtime").block_on(fut);
        record.failure = out.failure();
        drop(record);
        out
    }
}
