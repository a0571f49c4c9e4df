//! `cargo xtask bench read-trace`: the path one default read takes through the code, as a
//! maintainer follows it: the files it passes through and the calls it makes from one file to
//! another, traced by callgrind.
//!
//! The read is `adapter_instructions`' routed `find_by_id` (session consistency, no
//! read-your-writes scope, no hedge fired, a PostgreSQL replica 2 ms away). The program is
//! built unoptimised (the dev profile), so nothing of rwsplit is inlined: each call in the
//! source is a call in the profile. It runs under callgrind with [`FEW`] and with [`MANY`]
//! lookups, and a call counts if the longer run makes it at least once per two lookups more
//! (set-up, connecting and the monitor's first probes cancel out; a pool's occasional idle
//! check does not reach the bar).
//!
//! What is counted, in rwsplit's library crates (core, the monitor, the adapter):
//! - a **file entered**: one holding a function the read calls;
//! - a **cross-file call**: a call site from a function in one file to a function in another
//!   (a closure counts as the function it is in), once however often a lookup makes it (a
//!   future polled three times makes its calls three times), with the calls per lookup beside.
//!
//! Implementations of `PartialEq`, `Clone`, `Hash`, `Debug` and `Default` are left out (they
//! are derived), and so are `Deref`'s (the source shows no call): nobody reads them on the
//! way.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use std::path::Path;

/// Lookups in the shorter run.
const FEW: u64 = 20;
/// Lookups in the longer run.
const MANY: u64 = 120;

/// The library crates traced, as the directory their files are under.
const CRATES: &[(&str, &str)] = &[
    ("crates/core/src/", "core"),
    ("crates/monitor/src/", "monitor"),
    ("crates/sea-orm/src/", "sea-orm"),
];

/// Callees left out: derived implementations, and `Deref`'s, which the source does not show.
const DERIVED: &[&str] = &[
    " as core::ops::deref::Deref>",
    " as core::cmp::",
    " as core::clone::Clone>",
    " as core::hash::Hash>",
    " as core::fmt::Debug>",
    " as core::default::Default>",
];

/// One call site: caller function and file, callee function and file.
type Site = (String, String, String, String);

/// Builds the unoptimised bench, runs it under callgrind on a cluster of its own and prints
/// the trace. Arguments: `--list`, every call site too; `--root DIR`, the bench of the
/// checkout at `DIR` (a `git worktree` of an older commit, built with its own `Cargo.toml`).
pub(super) fn run(args: &[String]) -> anyhow::Result<()> {
    let list = args.iter().any(|a| a == "--list");
    let root = args.iter().position(|a| a == "--root").and_then(|i| args.get(i + 1));
    let mut cmd = crate::cargo();
    cmd.args(["build", "--message-format=json", "-p", "rwsplit-sea-orm"]);
    if let Some(root) = root {
        // Its own target directory: cargo names a workspace member's artifacts by its path
        // within the workspace, so another checkout's would overwrite this one's.
        cmd.arg("--manifest-path").arg(Path::new(root).join("Cargo.toml"));
        cmd.env("CARGO_TARGET_DIR", Path::new(root).join("target"));
    }
    cmd.args(["--bench", "adapter_instructions"]);
    let exe = super::executable_built(cmd, "adapter_instructions")?;
    let dir = std::env::temp_dir().join(format!("rwsplit-read-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let profiles = super::with_bench_replica(&exe, |env| {
        let mut texts = Vec::new();
        for n in [FEW, MANY] {
            let keep = dir.join(format!("routed-{n}.out"));
            super::callgrind_keeping(&exe, "routed", n, env, Some(&keep))?;
            texts.push(std::fs::read_to_string(&keep).context("reading the profile")?);
        }
        Ok(texts)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let [few, many] =
        <[String; 2]>::try_from(profiles?).map_err(|_| anyhow::anyhow!("two runs"))?;
    let trace = Trace::of(&calls(&few), &calls(&many), MANY - FEW);
    print!("{}", trace.summary());
    if list {
        print!("{}", trace.listing());
    }
    Ok(())
}

/// The calls a callgrind profile records, by call site (see [`Site`]): its `fn=`/`fl=` lines
/// name the caller and its file, `cfn=`/`cfi=`/`cfl=` the callee and its file, each given once
/// as `(id) name` and then by id, and `calls=` how often.
fn calls(profile: &str) -> HashMap<Site, u64> {
    let (mut files, mut fns) = (HashMap::new(), HashMap::new());
    let named = |names: &mut HashMap<String, String>, rest: &str| -> String {
        match rest.split_once(')') {
            Some((id, name)) if rest.starts_with('(') => {
                let (id, name) = (id.trim_start_matches('('), name.trim());
                if !name.is_empty() {
                    names.insert(id.to_owned(), name.to_owned());
                }
                names.get(id).cloned().unwrap_or_default()
            }
            _ => rest.trim().to_owned(),
        }
    };
    let mut out = HashMap::new();
    let (mut file, mut func) = (String::new(), String::new());
    let (mut callee_file, mut callee) = (None, String::new());
    for line in profile.lines() {
        if let Some(rest) = line.strip_prefix("fl=") {
            file = named(&mut files, rest);
        } else if let Some(rest) = line.strip_prefix("fi=").or_else(|| line.strip_prefix("fe=")) {
            named(&mut files, rest);
        } else if let Some(rest) = line.strip_prefix("fn=") {
            func = named(&mut fns, rest);
            callee_file = None;
        } else if let Some(rest) = line.strip_prefix("cfi=").or_else(|| line.strip_prefix("cfl=")) {
            callee_file = Some(named(&mut files, rest));
        } else if let Some(rest) = line.strip_prefix("cfn=") {
            callee = named(&mut fns, rest);
        } else if let Some(rest) = line.strip_prefix("calls=") {
            let n: u64 = rest.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(0);
            let to = callee_file.take().unwrap_or_else(|| file.clone());
            *out.entry((func.clone(), file.clone(), callee.clone(), to)).or_insert(0) += n;
        }
    }
    out
}

/// `path`'s crate-relative name (`sea-orm/cluster/view.rs`), if it is in a traced crate.
fn ours(path: &str) -> Option<String> {
    CRATES
        .iter()
        .find_map(|(dir, name)| path.split_once(dir).map(|(_, rest)| format!("{name}/{rest}")))
}

/// A function's name without callgrind's recursion marks (`'2`) and closures (a closure's
/// calls are its function's).
fn function(name: &str) -> String {
    let mut s = name.to_owned();
    while let Some(i) = s.rfind('\'') {
        if s[i + 1..].chars().all(|c| c.is_ascii_digit()) && i + 1 < s.len() {
            s.truncate(i);
        } else {
            break;
        }
    }
    while let Some(stripped) = s.strip_suffix("::{{closure}}") {
        s = stripped.to_owned();
    }
    s
}

/// The read's trace: the traced crates' files it enters, and its cross-file call sites with
/// their calls per lookup.
struct Trace {
    files: BTreeSet<String>,
    /// (caller file, caller, callee file, callee) → calls per lookup.
    sites: BTreeMap<(String, String, String, String), f64>,
}

impl Trace {
    /// The trace of the lookups `many` made beyond `few`'s, `n` of them.
    fn of(few: &HashMap<Site, u64>, many: &HashMap<Site, u64>, n: u64) -> Trace {
        let mut files = BTreeSet::new();
        let mut sites = BTreeMap::new();
        for (site, &calls) in many {
            let per = calls.saturating_sub(few.get(site).copied().unwrap_or(0)) as f64 / n as f64;
            let (caller, from, callee, to) = site;
            if per < 0.5 || DERIVED.iter().any(|d| callee.contains(d)) {
                continue;
            }
            let Some(to) = ours(to) else { continue };
            files.insert(to.clone());
            let Some(from) = ours(from) else { continue };
            if from != to {
                let key = (from, function(caller), to, function(callee));
                *sites.entry(key).or_insert(0.0) += per;
            }
        }
        Trace { files, sites }
    }

    /// The figures, per crate.
    fn summary(&self) -> String {
        let mut out = String::from(
            "one find_by_id through RoutedConnection (session consistency, no scope), unoptimised:\n",
        );
        let in_crate = |name: &str| self.files.iter().filter(|f| f.starts_with(name)).count();
        let counts: Vec<String> =
            CRATES.iter().map(|(_, c)| format!("{c} {}", in_crate(&format!("{c}/")))).collect();
        out += &format!("  files entered: {} ({})\n", self.files.len(), counts.join(", "));
        let per_lookup: f64 = self.sites.values().sum();
        out += &format!(
            "  cross-file calls: {} call sites, {per_lookup:.1} calls per lookup\n",
            self.sites.len()
        );
        let adapter: Vec<_> =
            self.sites.iter().filter(|(k, _)| k.0.starts_with("sea-orm/")).collect();
        let per: f64 = adapter.iter().map(|(_, v)| **v).sum();
        out += &format!(
            "  made by the adapter: {} call sites, {per:.1} calls per lookup\n",
            adapter.len()
        );
        out
    }

    /// Every call site, by caller file.
    fn listing(&self) -> String {
        let mut out = String::new();
        let mut last = "";
        for ((from, caller, to, callee), per) in &self.sites {
            if from != last {
                out += &format!("{from}\n");
                last = from;
            }
            out += &format!("  {per:5.2}  {} -> {to} {}\n", short(caller), short(callee));
        }
        out
    }
}

/// A function's name without its crate's path (`rwsplit_sea_orm::cluster::view::Routing::snap`
/// → `Routing::snap`): its type and name, or the module's last part and name.
fn short(name: &str) -> String {
    let plain = !name.starts_with('<');
    let parts: Vec<&str> = name.split("::").collect();
    if plain && parts.len() > 2 {
        parts[parts.len() - 2..].join("::")
    } else {
        name.replace("rwsplit_sea_orm::", "")
            .replace("rwsplit_core::", "")
            .replace("rwsplit_monitor::", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = "fl=(1) /w/crates/sea-orm/src/connection/attempt.rs\n\
        fn=(1) rwsplit_sea_orm::connection::attempt::attempt_plan::{{closure}}\n\
        cfl=(2) /w/crates/sea-orm/src/cluster/plan.rs\n\
        cfn=(2) rwsplit_sea_orm::cluster::plan::Plan::start\n\
        calls=3 10\n\
        5 40\n\
        cfn=(3) rwsplit_sea_orm::connection::attempt::Run::new\n\
        calls=1 12\n\
        6 9\n\
        cfl=(4) /w/crates/core/src/node_id.rs\n\
        cfn=(4) <rwsplit_core::node_id::NodeId as core::cmp::PartialEq>::eq\n\
        calls=2 3\n\
        7 2\n\
        fl=(2)\n\
        fn=(2)\n\
        cfl=(5) /rustc/x/library/core/src/option.rs\n\
        cfn=(5) core::option::Option<T>::map\n\
        calls=1 4\n\
        8 3\n";

    #[test]
    fn a_profile_s_calls_are_read_by_site_with_names_given_once() {
        let calls = calls(PROFILE);
        let site = |a: &str, af: &str, b: &str, bf: &str| {
            calls.get(&(a.to_owned(), af.to_owned(), b.to_owned(), bf.to_owned())).copied()
        };
        let attempt = "/w/crates/sea-orm/src/connection/attempt.rs";
        let plan = "/w/crates/sea-orm/src/cluster/plan.rs";
        let caller = "rwsplit_sea_orm::connection::attempt::attempt_plan::{{closure}}";
        assert_eq!(
            site(caller, attempt, "rwsplit_sea_orm::cluster::plan::Plan::start", plan),
            Some(3)
        );
        // No `cfl=` before it: the callee is in the caller's file.
        let run = "rwsplit_sea_orm::connection::attempt::Run::new";
        assert_eq!(site(caller, attempt, run, attempt), Some(1));
        let map = "core::option::Option<T>::map";
        let start = "rwsplit_sea_orm::cluster::plan::Plan::start";
        assert_eq!(site(start, plan, map, "/rustc/x/library/core/src/option.rs"), Some(1));
        assert_eq!(calls.len(), 4);
    }

    #[test]
    fn the_trace_keeps_what_every_other_lookup_calls_across_files_and_no_derived_impl() {
        let many = calls(PROFILE);
        let few: HashMap<Site, u64> = many.iter().map(|(k, v)| (k.clone(), v / 3)).collect();
        let trace = Trace::of(&few, &many, 2);
        // Plan::start: 3 - 1 over 2 lookups; Run::new: same file; NodeId's eq: derived;
        // Option::map: outside the crates, and 1 - 0 over 2 is at the bar but not a file of ours.
        assert_eq!(trace.sites.len(), 1, "{:?}", trace.sites);
        let ((from, caller, to, callee), per) = trace.sites.iter().next().expect("one site");
        assert_eq!(
            (from.as_str(), to.as_str()),
            ("sea-orm/connection/attempt.rs", "sea-orm/cluster/plan.rs")
        );
        assert_eq!(caller, "rwsplit_sea_orm::connection::attempt::attempt_plan");
        assert_eq!(callee, "rwsplit_sea_orm::cluster::plan::Plan::start");
        assert!((per - 1.0).abs() < 1e-9);
        let files: Vec<&str> = trace.files.iter().map(String::as_str).collect();
        assert_eq!(files, ["sea-orm/cluster/plan.rs", "sea-orm/connection/attempt.rs"]);
        assert!(trace.summary().contains("files entered: 2 (core 0, monitor 0, sea-orm 2)"));
    }

    #[rstest::rstest]
    #[case("a::b::F::g::{{closure}}::{{closure}}'2", "a::b::F::g")]
    #[case("a::b::F::g'12", "a::b::F::g")]
    #[case("<a::X as a::T>::f", "<a::X as a::T>::f")]
    #[case("a::f'", "a::f'")]
    fn a_function_s_name_drops_closures_and_recursion_marks(#[case] raw: &str, #[case] name: &str) {
        assert_eq!(function(raw), name);
    }
}
