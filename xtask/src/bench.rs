//! `cargo xtask bench <suite>`: criterion benchmarks, and instruction counts under callgrind.

mod read_trace;

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
    /// Fleet scale: what the monitor costs each server as application instances
    /// grow — K processes and K connections in one process, idle and under read-your-writes,
    /// on a PostgreSQL cluster in containers (each node its own cgroup). Arguments after `--`:
    /// `--ks 1,10,50,200`, `--window-secs 5`, `--json PATH`.
    Fleet,
    /// The web path end to end: an axum app over plain SeaORM, `RoutedConnection`
    /// and `RoutedConnection` + `SessionLayer`, keep-alive clients that keep cookies, on a
    /// PostgreSQL (and MariaDB, if installed) primary with 2 replicas at natural lag and late:
    /// latency, primary statements per request, reads on replicas, `Set-Cookie`s, stale and
    /// time-travel reads. Arguments after `--`: `--db postgres|mariadb|both`, `--requests N`,
    /// `--late-ms N`, `--json PATH`, `--gate`.
    Web,
    /// Instructions per call of rwsplit-core's classification cases, counted by callgrind
    /// (deterministic, unlike time on a shared machine; needs valgrind).
    Instructions,
    /// Client-side instructions per `find_by_id`, plain SeaORM against `RoutedConnection`
    /// reading the same PostgreSQL replica, counted by callgrind (needs valgrind).
    AdapterInstructions,
    /// The files one default read (`find_by_id` through `RoutedConnection`) passes through and
    /// the calls it makes from one file to another, traced by callgrind on an unoptimised
    /// build (needs valgrind). Arguments after `--`: `--list` (every call site), `--root DIR`
    /// (another checkout's read, such as a `git worktree` of an older commit).
    ReadTrace,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Which benchmarks to run.
    suite: Suite,
    /// `adapter-instructions`: keep each callgrind profile in this directory, as
    /// `<case>-<lookups>-<round>.out`, to see where the instructions go
    /// (`callgrind_annotate --inclusive=yes routed-600-0.out`).
    #[arg(long, value_name = "DIR")]
    keep_profiles: Option<std::path::PathBuf>,
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
        Suite::Consistency => run_report_bench("rwsplit-sea-orm", "consistency", &extra(args), &[]),
        Suite::Fleet => run_report_bench("rwsplit-sea-orm", "fleet", &extra(args), &[]),
        Suite::Web => run_report_bench("rwsplit-axum", "web", &extra(args), &[]),
        Suite::Instructions => instructions(),
        Suite::AdapterInstructions => adapter_instructions(args.keep_profiles.as_deref()),
        Suite::ReadTrace => read_trace::run(&args.extra),
    }
}

fn extra(args: &BenchArgs) -> Vec<std::ffi::OsString> {
    args.extra.iter().map(Into::into).collect()
}

/// One callgrind run of `exe case n`: instructions and calls of `tokio::time::Sleep::new_timeout`
/// (every tokio timer a program registers: `sleep`, `timeout`, `interval` all make one).
struct Run {
    instructions: u64,
    timers: u64,
}

fn callgrind(
    exe: &std::path::Path,
    case: &str,
    n: u64,
    env: &[(&str, String)],
) -> anyhow::Result<Run> {
    callgrind_keeping(exe, case, n, env, None)
}

/// [`callgrind`], copying the profile to `keep` if given.
fn callgrind_keeping(
    exe: &std::path::Path,
    case: &str,
    n: u64,
    env: &[(&str, String)],
    keep: Option<&std::path::Path>,
) -> anyhow::Result<Run> {
    let out_file =
        std::env::temp_dir().join(format!("rwsplit-callgrind-{}.out", std::process::id()));
    let out = std::process::Command::new("valgrind")
        .args(["--tool=callgrind"])
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(exe)
        .args([case, &n.to_string()])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .context("running valgrind (apt-get install valgrind)")?;
    let err = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "valgrind failed on {case}: {err}");
    let instructions = err
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no instruction count in valgrind's output for {case}"))?;
    let profile = std::fs::read_to_string(&out_file)
        .with_context(|| format!("reading {}", out_file.display()))?;
    if let Some(keep) = keep {
        std::fs::copy(&out_file, keep)
            .with_context(|| format!("keeping the profile as {}", keep.display()))?;
    }
    let _ = std::fs::remove_file(&out_file);
    Ok(Run { instructions, timers: calls_to(&profile, "tokio::time::sleep::Sleep::new_timeout") })
}

/// How many calls a callgrind profile records to functions whose name contains `name`: the
/// `calls=` line after each `cfn=` naming one (names are given once as `(id) name`, then by id).
fn calls_to(profile: &str, name: &str) -> u64 {
    let mut names = std::collections::HashMap::new();
    let mut callee_matches = false;
    let mut total = 0;
    for line in profile.lines() {
        let (is_call, rest) = if let Some(r) = line.strip_prefix("cfn=") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("fn=") {
            (false, r)
        } else {
            if callee_matches && let Some(calls) = line.strip_prefix("calls=") {
                total += calls.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(0);
            }
            callee_matches = false;
            continue;
        };
        let (id, full) = match rest.split_once(')') {
            Some((id, full)) => (id.trim_start_matches('('), full.trim()),
            None => ("", rest.trim()),
        };
        if !full.is_empty() {
            names.insert(id.to_owned(), full.to_owned());
        }
        callee_matches = is_call && names.get(id).is_some_and(|n| n.contains(name));
    }
    total
}

/// Instructions per call of `bench`'s `case`: valgrind's count with `n` calls minus its count
/// with none, over `n`.
fn per_call(
    exe: &std::path::Path,
    case: &str,
    n: u64,
    env: &[(&str, String)],
) -> anyhow::Result<u64> {
    let with = callgrind(exe, case, n, env)?;
    let without = callgrind(exe, case, 0, env)?;
    Ok(with.instructions.saturating_sub(without.instructions) / n.max(1))
}

/// What one client-side `find_by_id` costs, per lookup: callgrind instructions and tokio
/// timers registered, for plain SeaORM and for `RoutedConnection`, reading one PostgreSQL
/// replica through a delaying proxy (see [`measure_adapter_instructions`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdapterCost {
    pub(crate) plain: u64,
    pub(crate) routed: u64,
    pub(crate) plain_timers: f64,
    pub(crate) routed_timers: f64,
    /// The spread of the routed count over the rounds (highest minus lowest).
    pub(crate) spread: u64,
}

/// The read path's budgets, asserted by `cargo xtask ci`: the instructions `RoutedConnection`
/// adds to a `find_by_id` over plain SeaORM, and the tokio timers it adds (none: a replica read
/// waits on the monitor's notifications, not on a timer). The target is at most +3,000. Replica
/// and primary reads go straight to the node's sqlx pool when nothing listens to SeaORM's
/// layer, so a routed lookup costs fewer instructions than a plain one (about -15,000:
/// SeaORM's `DatabaseConnection` moves kilobytes of future per call), and the budget is that
/// figure plus a margin, a guard against regressions that also keeps the +3,000 target (see
/// crates/core/BENCHMARKS.md).
pub(crate) const ADDED_INSTRUCTIONS_BUDGET: i64 = -12_000;
/// Timers a routed lookup may register beyond plain SeaORM's (a stray one in the whole run
/// is not a timer per read).
pub(crate) const ADDED_TIMERS_BUDGET: f64 = 0.05;
/// The write path's budget, asserted by `cargo xtask ci`: the instructions `RoutedConnection`
/// adds to a one-row `INSERT` over plain SeaORM, read-your-writes included (the position left
/// pending, the task the write is left to). None: a write costs the client what plain
/// SeaORM's costs. It is sent in two steps straight on the node's sqlx pool, each step's
/// future boxed where it is made, which moves fewer bytes than SeaORM's `DatabaseConnection`
/// does (about -7,000 instructions).
pub(crate) const ADDED_WRITE_INSTRUCTIONS_BUDGET: i64 = 0;

impl AdapterCost {
    /// Instructions the router adds per lookup.
    pub(crate) fn added(&self) -> i64 {
        // A count past `i64::MAX` (a figure missing from a report, read as `u64::MAX`) stays
        // the largest, not a negative one.
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        count(self.routed).saturating_sub(count(self.plain))
    }

    /// The budgets this cost breaks, in words (empty: within them).
    pub(crate) fn over_budget(&self) -> Vec<String> {
        let mut over = Vec::new();
        if self.added() > ADDED_INSTRUCTIONS_BUDGET {
            over.push(format!(
                "RoutedConnection adds {} instructions per find_by_id over plain SeaORM ({} vs {}); the budget is {}",
                self.added(),
                self.routed,
                self.plain,
                ADDED_INSTRUCTIONS_BUDGET
            ));
        }
        if self.routed_timers - self.plain_timers > ADDED_TIMERS_BUDGET {
            over.push(format!(
                "RoutedConnection registers {:.2} tokio timers per find_by_id, plain SeaORM {:.2}; the budget is no more than plain",
                self.routed_timers, self.plain_timers
            ));
        }
        over
    }

    /// The write budget this cost (a one-row `INSERT`'s) breaks, in words (empty: within it).
    pub(crate) fn write_over_budget(&self) -> Vec<String> {
        if self.added() <= ADDED_WRITE_INSTRUCTIONS_BUDGET {
            return Vec::new();
        }
        vec![format!(
            "RoutedConnection adds {} instructions per one-row INSERT over plain SeaORM ({} vs {}); the budget is {}",
            self.added(),
            self.routed,
            self.plain,
            ADDED_WRITE_INSTRUCTIONS_BUDGET
        )]
    }
}

/// `find_by_id` through plain SeaORM and through `RoutedConnection`, on a throwaway PostgreSQL
/// primary and replica: client-side instructions per lookup and their ratio.
fn adapter_instructions(keep: Option<&std::path::Path>) -> anyhow::Result<()> {
    let cost = measure_adapter_instructions(keep)?;
    let write = measure_write_instructions(None)?;
    let (plain, routed) = (cost.plain, cost.routed);
    println!("{:<28} {:>14} {:>8}", "find_by_id (client side)", "instructions", "timers");
    println!("{:<28} {plain:>14} {:>8.2}", "plain SeaORM", cost.plain_timers);
    println!("{:<28} {routed:>14} {:>8.2}", "RoutedConnection", cost.routed_timers);
    println!(
        "{:<28} {:>14} ({:+.1} %, ratio {:.3}; budget {}; routed spread over the rounds {})",
        "difference",
        cost.added(),
        100.0 * (routed as f64 - plain as f64) / plain.max(1) as f64,
        routed as f64 / plain.max(1) as f64,
        ADDED_INSTRUCTIONS_BUDGET,
        cost.spread,
    );
    println!("{:<28} {:>14} {:>8}", "one-row INSERT (client side)", "instructions", "timers");
    println!("{:<28} {:>14} {:>8.2}", "plain SeaORM", write.plain, write.plain_timers);
    println!("{:<28} {:>14} {:>8.2}", "RoutedConnection", write.routed, write.routed_timers);
    println!(
        "{:<28} {:>14} (ratio {:.3}; budget {}; routed spread over the rounds {})",
        "difference",
        write.added(),
        write.routed as f64 / write.plain.max(1) as f64,
        ADDED_WRITE_INSTRUCTIONS_BUDGET,
        write.spread,
    );
    for over in cost.over_budget().into_iter().chain(write.write_over_budget()) {
        println!("over budget: {over}");
    }
    Ok(())
}

/// How far the benchmark's replica is from the client, each way, through the testkit's
/// delaying proxy. Without it the count moves by thousands of instructions between runs: each
/// time tokio polls a lookup before its answer is there is another pass through every layer of
/// the client, and on loopback under valgrind whether the answer is already there is a race.
/// Held back this long, it never is, so each lookup is polled the same number of times.
const REPLICA_DELAY: std::time::Duration = std::time::Duration::from_millis(2);

/// Runs `f` with the environment `adapter_instructions` (`exe`) reads its URLs from: a
/// PostgreSQL primary and replica started here, the replica [`REPLICA_DELAY`] away through the
/// testkit's delaying proxy, its table seeded and replayed.
fn with_bench_replica<T>(
    exe: &std::path::Path,
    f: impl FnOnce(&[(&str, String)]) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    // The proxy's tasks run on a worker thread while this one waits for valgrind.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let cluster =
        rt.block_on(rwsplit_testkit::Cluster::builder().name("bench-instr").replicas(1).start())?;
    let slow =
        rt.block_on(cluster.replicas()[0].delay_clients(REPLICA_DELAY, Default::default()))?;
    // The primary too, for the write cases (each polled the same number of times).
    let slow_primary =
        rt.block_on(cluster.primary().delay_clients(REPLICA_DELAY, Default::default()))?;
    let (primary, replica) =
        (slow_primary.url(&cluster.primary_url()), slow.url(&cluster.replica_urls()[0]));
    let env = [("RWSPLIT_BENCH_URL", primary), ("RWSPLIT_BENCH_REPLICA_URL", replica)];
    let seeded = Command::new(exe).arg("seed").envs(env.iter().map(|(k, v)| (k, v))).status()?;
    anyhow::ensure!(seeded.success(), "seeding the benchmark table failed");
    rt.block_on(cluster.wait_caught_up(0, std::time::Duration::from_secs(30)))?;
    let out = f(&env);
    drop((slow, slow_primary));
    drop(cluster);
    out
}

/// Client-side cost per `find_by_id`, plain SeaORM and `RoutedConnection`, reading the same
/// replica [`REPLICA_DELAY`] away: each case is run under callgrind with 50 lookups and with
/// 300, alternating, 3 times; the cost per lookup is the difference over the 250 more
/// (set-up, connecting and the monitor's first probes cancel out exactly), and the medians are
/// kept.
pub(crate) fn measure_adapter_instructions(
    keep: Option<&std::path::Path>,
) -> anyhow::Result<AdapterCost> {
    measure_cases(keep, ["plain", "routed"], Runs { few: 50, many: 300, rounds: 3 })
}

/// Client-side cost per one-row `INSERT` on the primary, plain SeaORM and `RoutedConnection`,
/// measured as [`measure_adapter_instructions`] measures a lookup, in one round of 50 and 300
/// inserts: a write under valgrind takes several times a lookup's time, and its count moves
/// by hundreds of instructions between rounds, against a budget thousands away.
pub(crate) fn measure_write_instructions(
    keep: Option<&std::path::Path>,
) -> anyhow::Result<AdapterCost> {
    measure_cases(keep, ["plain-write", "routed-write"], Runs { few: 50, many: 300, rounds: 1 })
}

/// How a case is run under callgrind: with `few` and with `many` statements, `rounds` times.
struct Runs {
    few: u64,
    many: u64,
    rounds: usize,
}

/// [`measure_adapter_instructions`] for the program's two `cases` (plain's, then routed's): a
/// lookup's, or a one-row insert's (`plain-write`, `routed-write`).
fn measure_cases(
    keep: Option<&std::path::Path>,
    cases: [&str; 2],
    runs: Runs,
) -> anyhow::Result<AdapterCost> {
    let Runs { few, many, rounds } = runs;
    let n = many - few;
    let exe = bench_executable("rwsplit-sea-orm", "adapter_instructions")?;
    if let Some(dir) = keep {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut samples: [Vec<(u64, f64)>; 2] = [Vec::new(), Vec::new()];
    with_bench_replica(&exe, |env| {
        for round in 0..rounds {
            for (i, case) in cases.into_iter().enumerate() {
                let kept = |n: u64| keep.map(|d| d.join(format!("{case}-{n}-{round}.out")));
                let with = callgrind_keeping(&exe, case, many, env, kept(many).as_deref())?;
                let without = callgrind_keeping(&exe, case, few, env, kept(few).as_deref())?;
                let instructions = with.instructions.saturating_sub(without.instructions) / n;
                let timers = with.timers.saturating_sub(without.timers) as f64 / n as f64;
                samples[i].push((instructions, timers));
            }
        }
        Ok(())
    })?;
    let spread = {
        let r = samples[1].iter().map(|x| x.0);
        r.clone().max().unwrap_or(0) - r.min().unwrap_or(0)
    };
    let median = |s: &mut Vec<(u64, f64)>| -> (u64, f64) {
        let mut i: Vec<u64> = s.iter().map(|x| x.0).collect();
        i.sort_unstable();
        let mut t: Vec<f64> = s.iter().map(|x| x.1).collect();
        t.sort_by(f64::total_cmp);
        (i[i.len() / 2], t[t.len() / 2])
    };
    let [mut p, mut r] = samples;
    let ((plain, plain_timers), (routed, routed_timers)) = (median(&mut p), median(&mut r));
    Ok(AdapterCost { plain, routed, plain_timers, routed_timers, spread })
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

/// The report's benchmarks (`cargo xtask report`), built by one cargo call: built one package
/// at a time, `-p rwsplit-axum` resolves other features of shared dependencies than
/// `-p rwsplit-sea-orm` (hyper's server, regex's, …), so sea-orm, sqlx, tokio, syn and some
/// fifty more were compiled twice in release. Together, every one is compiled once, and
/// `bench adapter-instructions` measures the same binary as the report.
pub(crate) const REPORT_BENCHES: &[(&str, &str)] = &[
    ("rwsplit-sea-orm", "consistency"),
    ("rwsplit-sea-orm", "adapter_instructions"),
    ("rwsplit-sea-orm", "fleet"),
    ("rwsplit-axum", "web"),
];

/// The path of bench target `bench` of `package`, built (bench profile) if needed; one of
/// [`REPORT_BENCHES`] is built with all of them.
fn bench_executable(package: &str, bench: &str) -> anyhow::Result<std::path::PathBuf> {
    if REPORT_BENCHES.contains(&(package, bench)) {
        return executable_built(report_benches_build(), bench);
    }
    let mut cmd = crate::cargo();
    cmd.args(["bench", "--no-run", "--message-format=json", "-p", package, "--bench", bench]);
    executable_built(cmd, bench)
}

/// The one cargo call that builds every one of [`REPORT_BENCHES`] (bench profile), naming
/// each executable in its JSON messages. `cargo xtask ci` starts it early, beside the phases
/// before the report (`ci::Prebuild`): the report's own call then finds them built.
pub(crate) fn report_benches_build() -> Command {
    let mut cmd = crate::cargo();
    cmd.args(["bench", "--no-run", "--message-format=json"]);
    let mut packages: Vec<&str> = REPORT_BENCHES.iter().map(|(p, _)| *p).collect();
    packages.dedup();
    for p in packages {
        cmd.args(["-p", p]);
    }
    for (_, b) in REPORT_BENCHES {
        cmd.args(["--bench", b]);
    }
    cmd
}

/// The path of bench target `bench`, as `cmd` (a cargo build with `--message-format=json`)
/// names it once built.
fn executable_built(mut cmd: Command, bench: &str) -> anyhow::Result<std::path::PathBuf> {
    let out = cmd.output().context("building the benchmark")?;
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

/// Runs [`REPORT_BENCHES`]' `bench` of `package` as `cargo bench -p <package> --bench <bench>
/// -- <args>` would (in the package's directory, `--bench` after the arguments), without a
/// cargo call that would resolve the package's features alone and rebuild.
pub(crate) fn run_report_bench(
    package: &str,
    bench: &str,
    args: &[std::ffi::OsString],
    env: &[(&str, &std::path::Path)],
) -> anyhow::Result<()> {
    let exe = bench_executable(package, bench)?;
    let dir = crate::project_root().join("crates").join(package.trim_start_matches("rwsplit-"));
    let mut cmd = Command::new(&exe);
    cmd.args(args).arg("--bench").current_dir(&dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    crate::run(&mut cmd)
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

#[cfg(test)]
mod tests {
    #[test]
    fn calls_are_counted_by_callee_name_given_once() {
        let profile = "fn=(1) main\ncfn=(2) tokio::time::sleep::Sleep::new_timeout\ncalls=3 10\n5 7\ncfn=(3) other\ncalls=9 1\n1 1\nfn=(4) f\ncfn=(2)\ncalls=2 4\n1 1\n";
        assert_eq!(super::calls_to(profile, "Sleep::new_timeout"), 5);
        assert_eq!(super::calls_to(profile, "other"), 9);
        assert_eq!(super::calls_to(profile, "missing"), 0);
    }
}
