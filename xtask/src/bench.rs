//! `cargo xtask bench <suite>`: criterion benchmarks.

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Suite {
    /// rwsplit-core: classification and routing (no database needed).
    Core,
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
    }
}
