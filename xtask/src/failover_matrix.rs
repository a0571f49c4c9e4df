//! `cargo xtask failover-matrix`: the automatic-failover fault tests (`tests/it/failover.rs`),
//! repeated, with their `FAILOVER-FIGURES` lines counted per database and fault. Outside CI's
//! budget (CI runs each fault once, inside `cargo xtask itest`).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct FailoverMatrixArgs {
    /// How many times each fault runs.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Only this database (`postgres` or `mariadb`); both by default.
    #[arg(long)]
    db: Option<String>,
}

/// One fault's runs: `FAILOVER-FIGURES` lines by their fields.
#[derive(Debug, Default)]
struct Runs {
    runs: u32,
    acked: u64,
    lost: u64,
    promotions: Vec<u64>,
    longest_two_accepting_ms: u64,
}

pub(crate) fn run(args: &FailoverMatrixArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let dbs: Vec<&str> = match args.db.as_deref() {
        Some(db) => vec![db],
        None => vec!["postgres", "mariadb"],
    };
    let mut table: BTreeMap<(String, String), Runs> = BTreeMap::new();
    let mut failed = 0;
    for run in 1..=args.runs {
        for db in &dbs {
            let other = if *db == "postgres" { "mariadb" } else { "postgres" };
            eprintln!("failover-matrix: run {run} of {}, {db}", args.runs);
            let out = Command::new(&exe)
                .args(["itest", "--db", db, "--", "failover::failover_", "--skip", other])
                .args(["--nocapture", "--test-threads", "1"])
                .stdout(Stdio::inherit())
                .stderr(Stdio::piped())
                .output()
                .context("running cargo xtask itest")?;
            let text = String::from_utf8_lossy(&out.stderr);
            for line in text.lines().filter(|l| l.starts_with("FAILOVER-FIGURES ")) {
                eprintln!("{line}");
                note(&mut table, line);
            }
            for line in text.lines().filter(|l| l.contains("panicked at") || l.starts_with("test "))
            {
                eprintln!("{line}");
            }
            if !out.status.success() {
                failed += 1;
            }
        }
    }
    println!(
        "| db | fault | runs | acknowledged | lost | promotions per run | longest two accepting (ms) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for ((db, fault), r) in &table {
        println!(
            "| {db} | {fault} | {} | {} | {} | {:?} | {} |",
            r.runs, r.acked, r.lost, r.promotions, r.longest_two_accepting_ms
        );
    }
    if failed > 0 {
        bail!("{failed} of the itest runs failed");
    }
    Ok(())
}

fn note(table: &mut BTreeMap<(String, String), Runs>, line: &str) {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .unwrap_or_default()
            .to_owned()
    };
    let number = |name: &str| field(name).parse::<u64>().unwrap_or(0);
    let r = table.entry((field("db"), field("fault"))).or_default();
    r.runs += 1;
    r.acked += number("acked");
    r.lost += number("lost");
    r.promotions.push(number("promotions"));
    r.longest_two_accepting_ms = r.longest_two_accepting_ms.max(number("two_accepting_ms"));
}
