//! The examples that read `DATABASE_URL` (quickstart, axum_ryw, metrics) never touch what they
//! did not create. On a real primary and two replicas (PostgreSQL, then MariaDB), a database
//! holds someone else's tables, named as the examples' own are (`author`, `post`,
//! `seaql_migrations`, `visits`) and one besides (`keep_me`), with rows. Each example runs in a
//! process of its own with `DATABASE_URL` and `DATABASE_REPLICA_URLS` pointing at that database
//! and must exit 0, leaving every one of those tables and rows as they were and no schema or
//! database behind (its own, `rwsplit_<example>`, is dropped at the end). Its own namespace is
//! dropped too when its body fails and when it is interrupted (Ctrl-C). And when
//! `rwsplit_quickstart` already exists, the quickstart refuses, naming it, and leaves it and
//! its table alone.
//!
//! Behind a pooler that drops the `options` startup parameter (a real PgBouncer with
//! `ignore_startup_parameters = options`), the `search_path` the examples set never reaches
//! the server: each refuses to start, saying so, before creating anything but its own schema
//! (which it drops), and the database is left as it was — no `author`, `post` or
//! `seaql_migrations` in `public`.
//!
//! ```sh
//! cargo test -p rwsplit-examples --test own_data
//! ```
//!
//! It builds the examples first (`cargo build --example …`, nothing to do when they are up to
//! date) and runs their binaries. It needs PostgreSQL's and MariaDB's server binaries and
//! PgBouncer (`apt-get install postgresql mariadb-server mariadb-client pgbouncer`).

#[path = "../own/mod.rs"]
mod own;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use own::Kind;
use rstest::rstest;
use rwsplit_testkit::{Cluster, DbKind, PoolMode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// The examples that read `DATABASE_URL`, and the namespace each works in.
const EXAMPLES: [(&str, &str); 3] = [
    ("quickstart", "rwsplit_quickstart"),
    ("axum_ryw", "rwsplit_axum_ryw"),
    ("metrics", "rwsplit_metrics"),
];

/// Someone else's tables, in the database the URLs name (the same SQL on both servers).
const THEIRS: &[&str] = &[
    "CREATE TABLE author (id int PRIMARY KEY, name varchar(100) NOT NULL)",
    "CREATE TABLE post (id int PRIMARY KEY, author_id int NOT NULL, title varchar(200) NOT NULL, \
     body varchar(200), FOREIGN KEY (author_id) REFERENCES author (id))",
    "CREATE TABLE seaql_migrations (version varchar(255) PRIMARY KEY, applied_at bigint NOT NULL)",
    "CREATE TABLE visits (id int)",
    "CREATE TABLE keep_me (id int PRIMARY KEY, note varchar(100) NOT NULL)",
    "INSERT INTO author VALUES (1, 'Alice'), (2, 'Someone')",
    "INSERT INTO post VALUES (1, 1, 'Hello', 'theirs'), (2, 2, 'Replicas', 'theirs too')",
    "INSERT INTO seaql_migrations VALUES ('m20240101_000001_their_app', 1704067200)",
    "INSERT INTO visits VALUES (7), (8)",
    "INSERT INTO keep_me VALUES (1, 'do not drop me')",
];

/// Each of those tables and its columns, for [`snapshot`].
const THEIR_TABLES: &[(&str, &str)] = &[
    ("author", "id, name"),
    ("post", "id, author_id, title, body"),
    ("seaql_migrations", "version, applied_at"),
    ("visits", "id"),
    ("keep_me", "id, note"),
];

/// The examples' binaries, built once for every case: example name → path.
static BINARIES: LazyLock<Result<BTreeMap<String, PathBuf>, String>> =
    LazyLock::new(|| build().map_err(|e| format!("{e:#}")));

/// `cargo build` of the examples (up to date: nothing to do) in this test's profile; where
/// cargo put each.
fn build() -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "-p",
        "rwsplit-examples",
        "--message-format=json-render-diagnostics",
    ]);
    for (example, _) in EXAMPLES {
        cmd.args(["--example", example]);
    }
    // This test's own profile directory: target/<profile>/deps/own_data-….
    let exe = std::env::current_exe()?;
    let profile = exe.parent().and_then(|d| d.parent()).and_then(|d| d.file_name());
    if profile.is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    let out = cmd.stderr(Stdio::inherit()).output().context("running cargo build")?;
    ensure!(out.status.success(), "cargo build of the examples failed");
    let mut found = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let kinds = &msg["target"]["kind"];
        if msg["reason"] == "compiler-artifact"
            && kinds.as_array().is_some_and(|k| k.iter().any(|k| k == "example"))
            && let (Some(name), Some(path)) =
                (msg["target"]["name"].as_str(), msg["executable"].as_str())
        {
            found.insert(name.to_owned(), PathBuf::from(path));
        }
    }
    for (example, _) in EXAMPLES {
        ensure!(found.contains_key(example), "cargo built no {example} binary");
    }
    Ok(found)
}

/// An example running in a process of its own, its output collected.
struct Running {
    child: std::process::Child,
    output: Arc<Mutex<String>>,
    lines: mpsc::Receiver<String>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts `example` on the nodes `primary` and `replicas` name, with `env` besides. No other
    /// `DATABASE_*` or `RWSPLIT_*` variable of this process reaches it.
    fn start(
        example: &str,
        primary: &str,
        replicas: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Running> {
        let binaries = BINARIES.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut cmd = Command::new(&binaries[example]);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("DATABASE_") || name.starts_with("RWSPLIT_") {
                cmd.env_remove(&*name);
            }
        }
        cmd.env("DATABASE_URL", primary)
            .env("DATABASE_REPLICA_URLS", replicas.join(","))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting {example}"))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().context("its stdout")?;
        let mut stderr = child.stderr.take().context("its stderr")?;
        let out = Arc::clone(&output);
        let read_out = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                out.lock().unwrap().push_str(&format!("{line}\n"));
                tx.send(line).ok();
            }
        });
        let err = Arc::clone(&output);
        let read_err = std::thread::spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).ok();
            err.lock().unwrap().push_str(&text);
        });
        Ok(Running { child, output, lines, readers: vec![read_out, read_err] })
    }

    /// Waits until it prints a line containing `needle`.
    fn wait_for(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(()),
                Ok(_) => {}
                Err(_) => bail!("no line with {needle:?} within {timeout:?}"),
            }
        }
    }

    /// Sends it SIGINT, as Ctrl-C does.
    fn interrupt(&self) -> anyhow::Result<()> {
        let status = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status()?;
        ensure!(status.success(), "kill -INT failed");
        Ok(())
    }

    /// Waits for it to exit (killing it after `timeout`): its status and everything it printed.
    fn finish(mut self, timeout: Duration) -> anyhow::Result<(ExitStatus, String)> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                self.child.kill().ok();
                self.child.wait().ok();
                bail!("still running after {timeout:?}:\n{}", self.output.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        for reader in self.readers.drain(..) {
            reader.join().ok();
        }
        let output = self.output.lock().unwrap().clone();
        Ok((status, output))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

/// Runs `example` to its end: its status and output.
fn run(
    example: &str,
    primary: &str,
    replicas: &[String],
    env: &[(&str, &str)],
) -> anyhow::Result<(ExitStatus, String)> {
    tokio::task::block_in_place(|| {
        Running::start(example, primary, replicas, env)?.finish(Duration::from_secs(300))
    })
}

/// Rows of `sql` (one text column, `r`).
async fn texts(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<String>> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    Ok(rows.iter().map(|r| r.try_get::<String>("", "r")).collect::<Result<_, _>>()?)
}

/// Every schema (PostgreSQL) or database (MariaDB) on the server, but the system's.
async fn namespaces(db: &DatabaseConnection, kind: Kind) -> anyhow::Result<Vec<String>> {
    let sql = match kind {
        Kind::Postgres => {
            "SELECT nspname AS r FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' \
             AND nspname <> 'information_schema' ORDER BY 1"
        }
        Kind::MariaDb => {
            "SELECT CAST(SCHEMA_NAME AS CHAR) AS r FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME NOT IN ('information_schema', 'performance_schema', 'sys') \
             ORDER BY 1"
        }
    };
    texts(db, sql).await
}

/// What someone else has in the database `db` is connected to: its tables, and each of
/// [`THEIR_TABLES`]' rows.
async fn snapshot(db: &DatabaseConnection, kind: Kind) -> anyhow::Result<Vec<String>> {
    let tables = match kind {
        Kind::Postgres => {
            "SELECT CAST(tablename AS text) AS r FROM pg_tables \
             WHERE schemaname = current_schema() ORDER BY 1"
        }
        Kind::MariaDb => {
            "SELECT CAST(TABLE_NAME AS CHAR) AS r FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1"
        }
    };
    let mut all: Vec<String> =
        texts(db, tables).await?.into_iter().map(|t| format!("table {t}")).collect();
    for (table, columns) in THEIR_TABLES {
        let sql = format!("SELECT concat_ws('|', {columns}) AS r FROM {table} ORDER BY 1");
        all.extend(texts(db, &sql).await?.into_iter().map(|row| format!("{table}: {row}")));
    }
    Ok(all)
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_remove_only_what_they_created(#[case] db_kind: DbKind) -> anyhow::Result<()> {
    let cluster = Cluster::builder()
        .db(db_kind)
        .name(format!("own-data-{db_kind}"))
        .replicas(2)
        .start()
        .await
        .with_context(|| format!("starting a {db_kind} primary and 2 replicas"))?;
    let shop = cluster.create_database("shop").await?;
    let (primary, replicas) = (shop.primary_url(), shop.replica_urls());
    let kind = Kind::of(&primary)?;
    let theirs = Database::connect(&primary).await?;
    for sql in THEIRS {
        theirs.execute_unprepared(sql).await?;
    }
    let before = snapshot(&theirs, kind).await?;
    let spaces = namespaces(&theirs, kind).await?;
    cluster.wait_caught_up(0, Duration::from_secs(10)).await?;

    // Each example, to its end.
    for (example, namespace) in EXAMPLES {
        let (status, output) = run(example, &primary, &replicas, &[])?;
        ensure!(status.success(), "{example} failed ({status}):\n{output}");
        ensure!(
            output.contains(&format!("dropped {} {namespace}", kind.namespace())),
            "{example} did not say it dropped {namespace}:\n{output}"
        );
        assert_eq!(snapshot(&theirs, kind).await?, before, "{example} changed someone's tables");
        assert_eq!(namespaces(&theirs, kind).await?, spaces, "{example} left a namespace behind");
    }

    // A body that fails (after creating its table): the namespace is dropped all the same.
    let bad_lanes =
        [("RWSPLIT_EXAMPLE_METRICS_SERVE", "1"), ("RWSPLIT_EXAMPLE_METRICS_LANES", "many")];
    let (status, output) = run("metrics", &primary, &replicas, &bad_lanes)?;
    ensure!(!status.success(), "metrics with a bad lane count succeeded:\n{output}");
    ensure!(output.contains("RWSPLIT_EXAMPLE_METRICS_LANES"), "not the expected error:\n{output}");
    ensure!(output.contains("dropped"), "metrics did not drop its namespace on failure:\n{output}");
    assert_eq!(namespaces(&theirs, kind).await?, spaces, "a failed run left its namespace");

    // Interrupted (Ctrl-C) while serving: the namespace is dropped, and it exits normally.
    let (status, output) = tokio::task::block_in_place(|| {
        let serving = Running::start(
            "metrics",
            &primary,
            &replicas,
            &[("RWSPLIT_EXAMPLE_METRICS_SERVE", "1")],
        )?;
        serving.wait_for("serving until interrupted", Duration::from_secs(120))?;
        std::thread::sleep(Duration::from_millis(500));
        serving.interrupt()?;
        serving.finish(Duration::from_secs(60))
    })?;
    ensure!(status.success(), "metrics, interrupted, failed ({status}):\n{output}");
    ensure!(output.contains("dropped"), "metrics did not drop its namespace on Ctrl-C:\n{output}");
    assert_eq!(namespaces(&theirs, kind).await?, spaces, "an interrupted run left its namespace");
    assert_eq!(snapshot(&theirs, kind).await?, before, "an interrupted run changed their tables");

    // The namespace exists already: the quickstart refuses and leaves it alone.
    let (ns, what) = ("rwsplit_quickstart", kind.namespace());
    let create = match kind {
        Kind::Postgres => "CREATE SCHEMA rwsplit_quickstart",
        Kind::MariaDb => "CREATE DATABASE rwsplit_quickstart",
    };
    theirs.execute_unprepared(create).await?;
    theirs
        .execute_unprepared(
            "CREATE TABLE rwsplit_quickstart.post (id int PRIMARY KEY, title varchar(100))",
        )
        .await?;
    theirs.execute_unprepared("INSERT INTO rwsplit_quickstart.post VALUES (1, 'mine')").await?;
    let rows = "SELECT concat_ws('|', id, title) AS r FROM rwsplit_quickstart.post";
    let (status, output) = run("quickstart", &primary, &replicas, &[])?;
    ensure!(!status.success(), "the quickstart ran in an existing {what}:\n{output}");
    ensure!(
        output.contains(&format!("{what} {ns} already exists")),
        "the refusal does not name the {what}:\n{output}"
    );
    assert_eq!(texts(&theirs, rows).await?, ["1|mine"], "the existing {what} was changed");
    let mut with_it = spaces.clone();
    with_it.push(ns.to_owned());
    with_it.sort();
    assert_eq!(namespaces(&theirs, kind).await?, with_it);
    assert_eq!(snapshot(&theirs, kind).await?, before);
    theirs.close().await?;
    Ok(())
}

/// Behind a PgBouncer that drops `options` (`ignore_startup_parameters = options`, which
/// PgBouncer 1.18 needs to let a client that sends it in at all), the examples' `search_path`
/// never reaches the server and their sessions would work in `public`. In front of the primary
/// (every example), then in front of the replica (the quickstart), each must exit non-zero
/// with the error naming the node and the cause, having dropped its schema, and every table,
/// row and schema of the database must be as it was: nothing lands in `public`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_refuse_a_pooler_that_drops_options() -> anyhow::Result<()> {
    let cluster = Cluster::builder()
        .db(DbKind::Postgres)
        .name("own-data-pgbouncer")
        .replicas(1)
        .start()
        .await
        .context("starting a PostgreSQL primary and a replica")?;
    let shop = cluster.create_database("shop").await?;
    let (primary, replicas) = (shop.primary_url(), shop.replica_urls());
    let theirs = Database::connect(&primary).await?;
    // Someone else's table; none of the examples' names, so that a migration run in `public`
    // would succeed and leave its tables there.
    theirs
        .execute_unprepared("CREATE TABLE keep_me (id int PRIMARY KEY, note varchar(100))")
        .await?;
    theirs.execute_unprepared("INSERT INTO keep_me VALUES (1, 'do not drop me')").await?;
    // Every schema, every table in them, and the rows.
    let everything = async || -> anyhow::Result<Vec<String>> {
        let mut all = namespaces(&theirs, Kind::Postgres).await?;
        all.extend(
            texts(
                &theirs,
                "SELECT schemaname || '.' || tablename AS r FROM pg_tables \
                 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            )
            .await?,
        );
        all.extend(texts(&theirs, "SELECT concat_ws('|', id, note) AS r FROM keep_me").await?);
        Ok(all)
    };
    let before = everything().await?;
    assert_eq!(before, ["public", "public.keep_me", "1|do not drop me"]);
    cluster.wait_caught_up(0, Duration::from_secs(10)).await?;

    // The pooler takes `options` and drops it: a session asking for a search_path gets none.
    let bouncer = cluster.primary().pgbouncer_ignoring(PoolMode::Session, &["options"]).await?;
    let through = bouncer.url(&primary);
    let asked = Database::connect(own::url_in(Kind::Postgres, &through, "elsewhere")).await?;
    let schema = texts(&asked, "SELECT CAST(current_schema() AS text) AS r").await?;
    asked.close().await?;
    assert_eq!(schema, ["public"], "the PgBouncer passed `options` on");

    let refused = |example: &str, node: &str, namespace: &str, status: ExitStatus, output: &str| {
        eprintln!("--- {example}, the pooler in front of {node}:\n{output}");
        ensure!(!status.success(), "{example} started behind a pooler dropping `options`");
        let opened =
            format!("on {node}, a session opened with search_path set to schema {namespace}");
        let dropped = format!("dropped schema {namespace}");
        for needle in [
            opened.as_str(),
            "works in schema public (current_schema())",
            "did not reach the server",
            "ignore_startup_parameters = options",
            dropped.as_str(),
        ] {
            ensure!(output.contains(needle), "{example}: no {needle:?} in:\n{output}");
        }
        anyhow::Ok(())
    };
    for (example, namespace) in EXAMPLES {
        let started = Instant::now();
        let (status, output) = run(example, &through, &replicas, &[])?;
        eprintln!("{example} refused in {:.2} s", started.elapsed().as_secs_f64());
        refused(example, "the primary", namespace, status, &output)?;
        assert_eq!(everything().await?, before, "{example} changed the database");
    }

    // In front of the replica only: its reads would see `public`.
    let replica = &cluster.replicas()[0];
    let bouncer = replica.pgbouncer_ignoring(PoolMode::Session, &["options"]).await?;
    let (status, output) = run("quickstart", &primary, &[bouncer.url(&replicas[0])], &[])?;
    refused("quickstart", "replica 1", "rwsplit_quickstart", status, &output)?;
    assert_eq!(everything().await?, before, "the quickstart changed the database");
    theirs.close().await?;
    Ok(())
}

/// The URLs the examples get: PostgreSQL's keep their database and gain the schema as
/// `search_path` (after any `options` of their own); MariaDB's name the database.
#[test]
fn urls_point_into_the_namespace() {
    let pg = |url| own::url_in(Kind::Postgres, url, "rwsplit_x");
    let opt = "options=-c%20search_path%3Drwsplit_x";
    assert_eq!(pg("postgres://u:p@h:5432/db"), format!("postgres://u:p@h:5432/db?{opt}"));
    assert_eq!(
        pg("postgres://h/db?sslmode=require&options=-c%20statement_timeout%3D5s"),
        format!("postgres://h/db?sslmode=require&options=-c%20statement_timeout%3D5s&{opt}")
    );
    assert_eq!(pg("postgres://h/db?"), format!("postgres://h/db?{opt}"));
    let my = |url| own::url_in(Kind::MariaDb, url, "rwsplit_x");
    assert_eq!(my("mysql://app@127.0.0.1:3306/shop"), "mysql://app@127.0.0.1:3306/rwsplit_x");
    assert_eq!(
        my("mysql://app:pw@h/shop?ssl-mode=required"),
        "mysql://app:pw@h/rwsplit_x?ssl-mode=required"
    );
    assert_eq!(my("mysql://app@h:3306"), "mysql://app@h:3306/rwsplit_x");
    assert_eq!(my("mysql://app@h?ssl-mode=disabled"), "mysql://app@h/rwsplit_x?ssl-mode=disabled");
    assert_eq!(Kind::of("postgresql://h/db").unwrap(), Kind::Postgres);
    assert_eq!(Kind::of("mysql://h/db").unwrap(), Kind::MariaDb);
    assert!(Kind::of("sqlite://x.db").is_err());
}
