//! `cargo xtask soak`: mixed traffic with random replica faults on a cluster of its own, then a
//! check that every acknowledged write is everywhere and no read-your-writes read was stale (the
//! program is `tests/soak/main.rs`).

use anyhow::Context;
use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// How long to run, in minutes, in total (split evenly between the databases).
    #[arg(long, default_value_t = 2.0)]
    minutes: f64,
    /// Which database to soak.
    #[arg(long, value_enum, default_value_t = SoakDb::All)]
    db: SoakDb,
    /// The fault schedule's seed (default: from the clock; each run prints its seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Pass `--locked` to cargo.
    #[arg(long)]
    locked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SoakDb {
    Postgres,
    Mariadb,
    All,
}

impl SoakArgs {
    /// What `cargo xtask ci` runs: two minutes, both databases (side by side: one minute of
    /// wall time).
    pub(crate) fn for_ci(locked: bool) -> SoakArgs {
        SoakArgs { minutes: 2.0, db: SoakDb::All, seed: None, locked }
    }
}

/// The cargo call that builds the soak's binary (`cargo test --test soak --no-run` at the root).
fn build(locked: bool) -> std::process::Command {
    let mut build = crate::cargo_at_root();
    build.args(["test", "--test", "soak", "--no-run"]);
    if locked {
        build.arg("--locked");
    }
    build
}

pub(crate) fn run(args: &SoakArgs) -> anyhow::Result<()> {
    let dbs: &[&str] = match args.db {
        SoakDb::Postgres => &["postgres"],
        SoakDb::Mariadb => &["mariadb"],
        SoakDb::All => &["postgres", "mariadb"],
    };
    let per_db = args.minutes / dbs.len() as f64;
    crate::run(&mut build(args.locked))?;
    let run_root =
        std::env::temp_dir().join("rwsplit-testkit").join(format!("soak-{}", std::process::id()));
    std::fs::create_dir_all(&run_root)
        .with_context(|| format!("creating {}", run_root.display()))?;
    // The databases' soaks run side by side, each on a cluster of its own: they check what was
    // acknowledged and read, not how fast, so sharing the cores changes nothing they assert.
    let mut running = Vec::new();
    for db in dbs {
        let mut test = crate::cargo_at_root();
        test.args(["test", "--test", "soak"]);
        if args.locked {
            test.arg("--locked");
        }
        test.env("RWSPLIT_SOAK_MINUTES", per_db.to_string())
            .env("RWSPLIT_SOAK_DB", db)
            .env("RWSPLIT_TESTKIT_DIR", &run_root);
        if let Some(seed) = args.seed {
            test.env("RWSPLIT_SOAK_SEED", seed.to_string());
        }
        let line = crate::describe(&test);
        eprintln!("$ {line} ({db})");
        let child = test.spawn().with_context(|| format!("could not run `{line}`"))?;
        running.push((db, child));
    }
    let started = std::time::Instant::now();
    let mut result = Ok(());
    for (db, mut child) in running {
        let status = child.wait().with_context(|| format!("waiting for the soak on {db}"))?;
        eprintln!("xtask: {:.0} s: the soak on {db}", started.elapsed().as_secs_f64());
        if !status.success() && result.is_ok() {
            result = Err(anyhow::anyhow!("the soak on {db} failed ({status})"));
        }
    }
    let orphans = rwsplit_testkit::reap_orphans(&run_root);
    if !orphans.is_empty() {
        eprintln!(
            "stopped {} server processes left behind by the soak: {orphans:?}",
            orphans.len()
        );
    }
    let _ = std::fs::remove_dir_all(&run_root);
    result
}
