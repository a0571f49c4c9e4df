//! `cargo xtask bench <suite>`: criterion benchmarks, and instruction counts under callgrind.

use anyhow::Context;
use clap::{Args, ValueEnum};
use std::process::Command;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Suite {
    /// rwsplit-core: classification and routing (no database needed).
    Core,
    /// rwsplit-sea-orm against plain SeaORM reading the same PostgreSQL replica (a primary and a
    /// replica started by the bench).
    Adapter,
    /// Read-your-writes strategies (naive, a 2 s window, rwsplit by position) on a PostgreSQL
    /// cluster whose replicas lag (`RWSPLIT_BENCH_DELAY_MS`, default 200 ms).
    Consistency,
    /// Instructions per call of rwsplit-core's classification cases, counted by callgrind
    /// (deterministic, unlike time on a shared machine; needs valgrind).
    Instructions,
    /// Client-side instructions per `find_by_id`, plain SeaORM against `RoutedConnection`
    /// reading the same PostgreSQL replica, counted by callgrind (needs valgrind).
    AdapterInstructions,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Which benchmarks to run.
    suite: Suite,
    /// Extra arguments for criterion (a name filter, `--quick`, …), after `--`.
    #[arg(last = true)]
    extra: Vec<String>,
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match args.suite {
        Suite::Core => {
            let mut cmd = crate::cargo();
            cmd.args(["bench", "-p", "rwsplit-core", "--"]).args(&args.extra);
            crate::run(&mut cmd)
        }
        Suite::Adapter => {
            let mut cmd = crate::cargo();
            cmd.args(["bench", "-p", "rwsplit-sea-orm", "--bench", "adapter", "--"])
                .args(&args.extra);
            crate::run(&mut cmd)?;
            println!(
                "\ncriterion medians (measured one after the other; the paired lines above are the ratio to trust):"
            );
            report_ratios(&["find_by_id/1_tasks", "find_by_id/16_tasks"], "plain", "routed")
        }
        Suite::Consistency => {
            let mut cmd = crate::cargo();
            cmd.args(["bench", "-p", "rwsplit-sea-orm", "--bench", "consistency", "--"])
                .args(&args.extra);
            crate::run(&mut cmd)
        }
        Suite::Instructions => instructions(),
        Suite::AdapterInstructions => adapter_instructions(),
    }
}

/// Instructions per call of `bench`'s `case`: valgrind's count with `n` calls minus its count
/// with none, over `n`.
fn per_call(
    exe: &std::path::Path,
    case: &str,
    n: u64,
    env: &[(&str, String)],
) -> anyhow::Result<u64> {
    let collected = |n: u64| -> anyhow::Result<u64> {
        let out = std::process::Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(exe)
            .args([case, &n.to_string()])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .context("running valgrind (apt-get install valgrind)")?;
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "valgrind failed on {case}: {err}");
        err.lines()
            .find_map(|l| l.split("Collected :").nth(1))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no instruction count in valgrind's output for {case}"))
    };
    Ok(collected(n)?.saturating_sub(collected(0)?) / n.max(1))
}

/// `find_by_id` through plain SeaORM and through `RoutedConnection`, on a throwaway PostgreSQL
/// primary and replica: client-side instructions per lookup and their ratio.
fn adapter_instructions() -> anyhow::Result<()> {
    let (plain, routed) = measure_adapter_instructions()?;
    println!("{:<28} {:>14}", "find_by_id (client side)", "instructions");
    println!("{:<28} {plain:>14}", "plain SeaORM");
    println!("{:<28} {routed:>14}", "RoutedConnection");
    println!(
        "{:<28} {:>14} ({:+.1} %, ratio {:.3})",
        "difference",
        routed.saturating_sub(plain),
        100.0 * (routed as f64 - plain as f64) / plain.max(1) as f64,
        routed as f64 / plain.max(1) as f64
    );
    Ok(())
}

/// Client-side instructions per `find_by_id`: (plain SeaORM, `RoutedConnection`).
pub(crate) fn measure_adapter_instructions() -> anyhow::Result<(u64, u64)> {
    const N: u64 = 500;
    let exe = bench_executable("rwsplit-sea-orm", "adapter_instructions")?;
    let rt = crate::runtime()?;
    let cluster =
        rt.block_on(rwsplit_testkit::Cluster::builder().name("bench-instr").replicas(1).start())?;
    let (primary, replica) = (cluster.primary_url(), cluster.replica_urls().remove(0));
    let env = [("RWSPLIT_BENCH_URL", primary), ("RWSPLIT_BENCH_REPLICA_URL", replica)];
    let seeded = Command::new(&exe).arg("seed").envs(env.iter().map(|(k, v)| (k, v))).status()?;
    anyhow::ensure!(seeded.success(), "seeding the benchmark table failed");
    rt.block_on(cluster.wait_caught_up(0, std::time::Duration::from_secs(30)))?;
    let plain = per_call(&exe, "plain", N, &env)?;
    let routed = per_call(&exe, "routed", N, &env)?;
    drop(cluster);
    Ok((plain, routed))
}

/// Runs each case of `crates/core/benches/instructions.rs` under callgrind with N and with 0
/// iterations and prints the difference per call (so the program's set-up cancels out).
fn instructions() -> anyhow::Result<()> {
    const N: u64 = 2000;
    let exe = bench_executable("rwsplit-core", "instructions")?;
    let list = std::process::Command::new(&exe).arg("--list").output()?;
    let cases = String::from_utf8(list.stdout)?;
    println!("{:<28} {:>14}", "case", "instructions");
    for case in cases.lines().filter(|c| !c.is_empty()) {
        let per_call = per_call(&exe, case, N, &[])?;
        println!("{case:<28} {per_call:>14}");
    }
    Ok(())
}

/// The path of bench target `bench` of `package`, built (release profile) if needed.
fn bench_executable(package: &str, bench: &str) -> anyhow::Result<std::path::PathBuf> {
    let out = crate::cargo()
        .args(["bench", "-p", package, "--bench", bench, "--no-run", "--message-format=json"])
        .output()
        .context("building the benchmark")?;
    anyhow::ensure!(
        out.status.success(),
        "building bench `{bench}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == bench)
        .find_map(|v| v["executable"].as_str().map(std::path::PathBuf::from))
        .with_context(|| format!("cargo named no executable for bench `{bench}`"))
}

/// Reads criterion's estimates for each group and prints `candidate / baseline` medians.
fn report_ratios(groups: &[&str], baseline: &str, candidate: &str) -> anyhow::Result<()> {
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("target"))
        .join("criterion");
    println!("\n{:<24} {:>14} {:>14} {:>8}", "workload", baseline, candidate, "ratio");
    for group in groups {
        let dir = root.join(group.replace('/', "_"));
        let median = |id: &str| -> anyhow::Result<f64> {
            let path = dir.join(id).join("new").join("estimates.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)?;
            v["median"]["point_estimate"].as_f64().context("no median in the estimates")
        };
        let (b, c) = (median(baseline)?, median(candidate)?);
        println!("{group:<24} {:>11.1} µs {:>11.1} µs {:>8.3}", b / 1e3, c / 1e3, c / b);
    }
    Ok(())
}
