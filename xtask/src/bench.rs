//! `cargo xtask bench <suite>`: criterion benchmarks.

use anyhow::Context;
use clap::{Args, ValueEnum};

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
    }
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
