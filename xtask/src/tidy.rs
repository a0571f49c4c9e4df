//! The tidy test: the layering rules of `docs/ARCHITECTURE.md`, checked from `cargo metadata`,
//! plus a few source hygiene rules. It runs with plain `cargo test`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

mod comments;
mod forwards;
mod layout;
mod modules;

/// For each package: which other workspace packages it may depend on (normal dependencies).
const LAYERS: &[(&str, &[&str])] = &[
    ("rwsplit-core", &[]),
    ("rwsplit-monitor", &["rwsplit-core"]),
    ("rwsplit-sea-orm", &["rwsplit-core", "rwsplit-monitor"]),
    ("rwsplit-web", &["rwsplit-core", "rwsplit-sea-orm"]),
    ("rwsplit-axum", &["rwsplit-sea-orm", "rwsplit-web"]),
    ("rwsplit-testkit", &[]),
    ("xtask", &["rwsplit-testkit"]),
    (
        "rwsplit-examples",
        &[
            "rwsplit-axum",
            "rwsplit-core",
            "rwsplit-monitor",
            "rwsplit-sea-orm",
            "rwsplit-testkit",
            "rwsplit-web",
        ],
    ),
    (
        "rwsplit-itests",
        &[
            "rwsplit-axum",
            "rwsplit-core",
            "rwsplit-monitor",
            "rwsplit-sea-orm",
            "rwsplit-testkit",
            "rwsplit-web",
        ],
    ),
];

/// External crates `rwsplit-core` may use: it does no I/O and names no driver or ORM.
const CORE_ALLOWED: &[&str] = &["arc-swap", "thiserror", "tracing"];

/// Crates that mean I/O or a specific driver/ORM, which `rwsplit-monitor` must not name either.
const MONITOR_FORBIDDEN: &[&str] = &["sea-orm", "sea-query", "rwsplit-sea-orm"];

fn metadata() -> Value {
    let out = crate::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(crate::project_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

struct Package {
    manifest: PathBuf,
    /// (dependency name, kind: None = normal, "dev", "build")
    deps: Vec<(String, Option<String>)>,
}

fn packages() -> BTreeMap<String, Package> {
    let meta = metadata();
    let mut map = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| {
                (
                    d["name"].as_str().expect("name").to_owned(),
                    d["kind"].as_str().map(str::to_owned),
                )
            })
            .collect();
        map.insert(
            p["name"].as_str().expect("name").to_owned(),
            Package { manifest: PathBuf::from(p["manifest_path"].as_str().expect("path")), deps },
        );
    }
    map
}

#[test]
fn layering() {
    let pkgs = packages();
    let workspace: Vec<&str> = pkgs.keys().map(String::as_str).collect();
    for name in &workspace {
        assert!(
            LAYERS.iter().any(|(n, _)| n == name),
            "package {name} is not in the layering table"
        );
    }
    for (name, allowed) in LAYERS {
        let pkg = pkgs.get(*name).unwrap_or_else(|| panic!("package {name} is missing"));
        for (dep, kind) in &pkg.deps {
            if workspace.contains(&dep.as_str()) && kind.is_none() {
                assert!(
                    allowed.contains(&dep.as_str()),
                    "{name} may not depend on {dep} (see docs/ARCHITECTURE.md)"
                );
            }
            if *name == "rwsplit-core" && kind.is_none() {
                assert!(
                    CORE_ALLOWED.contains(&dep.as_str()),
                    "rwsplit-core may not depend on {dep}: it does no I/O"
                );
            }
            if *name == "rwsplit-monitor" {
                assert!(
                    !MONITOR_FORBIDDEN.contains(&dep.as_str()),
                    "rwsplit-monitor may not depend on {dep}"
                );
            }
        }
    }
    for leaf in ["rwsplit-examples", "rwsplit-itests", "xtask"] {
        for (name, pkg) in &pkgs {
            assert!(
                !pkg.deps.iter().any(|(d, _)| d == leaf),
                "{name} depends on {leaf}: nothing may"
            );
        }
    }
}

#[test]
fn every_crate_uses_the_workspace_lints() {
    for (name, pkg) in packages() {
        let text = std::fs::read_to_string(&pkg.manifest).expect("manifest readable");
        let lints = text.split("[lints]").nth(1).unwrap_or("");
        assert!(
            lints.trim_start().starts_with("workspace = true"),
            "{name}: add `[lints]\\nworkspace = true` to {}",
            pkg.manifest.display()
        );
    }
}

#[test]
fn no_placeholders_in_code() {
    let banned = [concat!("todo", "!("), concat!("unimplemented", "!("), concat!("dbg", "!(")];
    let root = crate::project_root();
    let mut hits = Vec::new();
    for dir in ["crates", "xtask", "examples", "tests"] {
        visit(&root.join(dir), &mut |path, text| {
            for (i, line) in text.lines().enumerate() {
                if banned.iter().any(|b| line.contains(b)) {
                    hits.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        });
    }
    assert!(hits.is_empty(), "placeholders left in code:\n{}", hits.join("\n"));
}

/// The one file allowed to contain `unsafe`: a test's counting global allocator (reviewed;
/// see the workspace `[lints]` in `Cargo.toml`). Library code never needs it.
const UNSAFE_ALLOWED: &[&str] = &["crates/core/tests/no_alloc.rs"];

/// The keyword, spelt so that this file does not trip its own test.
const UNSAFE: &str = concat!("un", "safe");

#[test]
fn no_unsafe_outside_the_reviewed_test() {
    let root = crate::project_root();
    let mut hits = Vec::new();
    for dir in ["crates", "xtask", "examples", "tests"] {
        visit(&root.join(dir), &mut |path, text| {
            let rel = path.strip_prefix(&root).unwrap_or(path);
            if UNSAFE_ALLOWED.iter().any(|a| rel == Path::new(a)) {
                return;
            }
            for (i, line) in text.lines().enumerate() {
                // Code only: what follows `//` is a comment (or, rarely, inside a string, which
                // errs on the side of a false alarm elsewhere in the line, never a miss here).
                let code = line.split("//").next().unwrap_or(line);
                let unsafe_word = code.match_indices(UNSAFE).any(|(at, w)| {
                    let before = code[..at].chars().next_back();
                    let after = code[at + w.len()..].chars().next();
                    let ident =
                        |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                    !ident(before) && !ident(after)
                });
                if unsafe_word {
                    hits.push(format!("{}:{}: {}", rel.display(), i + 1, line.trim()));
                }
            }
        });
    }
    assert!(
        hits.is_empty(),
        "`{UNSAFE}` outside {UNSAFE_ALLOWED:?} (the library has none; see Cargo.toml [lints]):\n{}",
        hits.join("\n")
    );
}

fn visit(dir: &Path, f: &mut dyn FnMut(&Path, &str)) {
    visit_files(dir, "rs", f);
}

/// Calls `f` with each file under `dir` whose extension is `ext`, and its text; `target` and
/// hidden folders (`.git`) are left out.
fn visit_files(dir: &Path, ext: &str, f: &mut dyn FnMut(&Path, &str)) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n != "target" && !n.to_string_lossy().starts_with('.'))
            {
                visit_files(&path, ext, f);
            }
        } else if path.extension().is_some_and(|x| x == ext)
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            f(&path, &text);
        }
    }
}

/// Health belongs to the monitor (docs/ARCHITECTURE.md): the adapter keeps no health state
/// machine and runs no probe, promotion or replication SQL; inside the monitor, each product's
/// SQL lives in its own module behind the product seam.
#[test]
fn health_belongs_to_the_monitor() {
    let root = crate::project_root();
    // What only the monitor may name: the health state machine, the topology it publishes, and
    // the SQL of probes, failover and re-pointing.
    let monitor_only = [
        "HealthTracker",
        "SharedTopology",
        "pg_promote",
        "pg_is_in_recovery",
        "pg_stat_wal_receiver",
        "SHOW SLAVE STATUS",
        "CHANGE MASTER",
        "RESET SLAVE",
        "read_only = 0",
    ];
    let mut hits = Vec::new();
    visit(&root.join("crates/sea-orm/src"), &mut |path, text| {
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(m) = monitor_only.iter().find(|m| code.contains(*m)) {
                hits.push(format!(
                    "{}:{}: `{m}` belongs to rwsplit-monitor",
                    path.display(),
                    i + 1
                ));
            }
        }
    });
    let product = root.join("crates/monitor/src/product");
    visit(&root.join("crates/monitor/src"), &mut |path, text| {
        if path.starts_with(&product) || path.file_name().is_some_and(|n| n == "tests.rs") {
            return;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if ["\"SELECT", "\"SHOW", "\"STOP", "\"ALTER"].iter().any(|s| code.contains(s)) {
                hits.push(format!(
                    "{}:{}: product SQL outside crates/monitor/src/product",
                    path.display(),
                    i + 1
                ));
            }
        }
    });
    assert!(hits.is_empty(), "layering:\n{}", hits.join("\n"));
}

/// `code` without its inline test modules (`#[cfg(test)]` then `mod name { … }`, braces matched)
/// and the declarations of its file test modules (`#[cfg(test)]` then `mod name;`); the code
/// around them, before or after, is kept.
fn without_test_modules(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]\nmod ";
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let (semi, open) = (item.find(';'), item.find('{'));
        let end = match (semi, open) {
            (Some(s), o) if o.is_none_or(|o| s < o) => s + 1,
            (_, Some(o)) => {
                let mut depth = 0usize;
                let close = item[o..].char_indices().find_map(|(i, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    (depth == 0).then_some(o + i + 1)
                });
                close.unwrap_or(item.len())
            }
            _ => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn test_modules_are_left_out_and_the_code_around_them_kept() {
    let code = "fn a() {}\n#[cfg(test)]\nmod tests;\nfn b() {}\n#[cfg(test)]\nmod t {\n    fn c() { if x { y() } }\n}\nfn d() {}\n";
    assert_eq!(without_test_modules(code), "fn a() {}\n\nfn b() {}\n\nfn d() {}\n");
}

/// The connection's modules are layered (`crates/sea-orm/src/connection/mod.rs` lists the
/// order): a module's code names items (its `use`s and the paths in its code, as `syn` reads
/// them, re-exports followed) of only the modules before it.
#[test]
fn connection_modules_are_layered() {
    const ORDER: &[&str] = &[
        "stream",
        "inner",
        "stats",
        "record",
        "attempt",
        "statements",
        "transactions",
        "traits",
        "session",
        "mod",
        "discover",
        "facade",
    ];
    let dir = crate::project_root().join("crates/sea-orm/src/connection");
    // The order `connection/mod.rs` documents (its numbered list: "N. `module` — …") is this one.
    let listed: Vec<String> = std::fs::read_to_string(dir.join("mod.rs"))
        .expect("connection/mod.rs readable")
        .lines()
        .filter_map(|l| l.strip_prefix("//! "))
        .filter_map(|l| l.split_once(". `"))
        .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
        .filter_map(|(_, rest)| rest.split('`').next().map(str::to_owned))
        .collect();
    assert_eq!(listed, ORDER, "connection/mod.rs's list of its modules and tidy's ORDER differ");
    // What each module's code (test code left out) names of another, as `syn` reads it: its
    // `use`s and the paths in its code, re-exports followed to the defining module.
    let krate =
        modules::Crate::read(&modules::lib_root(&crate::project_root().join("crates/sea-orm")));
    let at = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut hits = Vec::new();
    for (from, to) in krate.arrows_under(&["connection"]) {
        match (at(&from), at(&to)) {
            (Some(i), Some(j)) if j > i => {
                hits.push(format!("connection/{from}.rs names an item of connection/{to}.rs"));
            }
            (None, _) | (_, None) => {
                hits.push(format!("connection/{from} or connection/{to} is not in ORDER"));
            }
            _ => {}
        }
    }
    assert!(hits.is_empty(), "the connection's modules call upwards:\n{}", hits.join("\n"));
}

/// The adapter's top-level modules (`crates/sea-orm/src`: its folders and root files but
/// `lib.rs` and tests), lowest floor first (docs/ARCHITECTURE.md maps them). A module imports
/// only modules on floors below its own; modules on one floor import neither each other.
const ADAPTER_FLOORS: &[&[&str]] = &[
    &["routing_error"],
    &["product"],
    &["send"],
    &["consistency"],
    &["error"],
    &["observe"],
    &["hedge"],
    &["nodes"],
    &["cluster"],
    &["routing"],
    &["retry"],
    &["connection"],
    &["config"],
    &["advanced"],
];

/// What is wrong with the arrows `arrows` (`(from, to)` among top-level modules) against the
/// floors `floors` (lowest first): an arrow that does not go down, a module on no floor.
fn floor_problems(
    modules: &BTreeSet<String>,
    arrows: &BTreeSet<(String, String)>,
    floors: &[&[&str]],
) -> Vec<String> {
    let floor = |m: &str| floors.iter().position(|f| f.contains(&m));
    let mut problems: Vec<String> = modules
        .iter()
        .filter(|m| floor(m).is_none())
        .map(|m| format!("`{m}` is on no floor: add it to ADAPTER_FLOORS"))
        .collect();
    for (from, to) in arrows {
        if let (Some(a), Some(b)) = (floor(from), floor(to))
            && a <= b
        {
            problems.push(format!(
                "`{from}` (floor {}) imports `{to}` (floor {}): an arrow running {}",
                a + 1,
                b + 1,
                if a == b { "sideways" } else { "back up" }
            ));
        }
    }
    problems
}

/// The adapter's folders are its architecture: each imports only the folders below it
/// ([`ADAPTER_FLOORS`]), so a maintainer reads them bottom up and finds no arrow running back.
#[test]
fn adapter_folders_import_downwards() {
    let root = crate::project_root();
    let krate = modules::Crate::read(&modules::lib_root(&root.join("crates/sea-orm")));
    let arrows = krate.arrows_among_children(&[]);
    let src = root.join("crates/sea-orm/src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .expect("crates/sea-orm/src readable")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let module =
                path.extension().is_some_and(|x| x == "rs") || path.join("mod.rs").is_file();
            module.then(|| path.file_stem()?.to_str().map(str::to_owned)).flatten()
        })
        .filter(|m| m != "lib" && !m.starts_with("tests"))
        .collect();
    let problems = floor_problems(&modules, &arrows, ADAPTER_FLOORS);
    assert!(problems.is_empty(), "the adapter's folders:\n{}", problems.join("\n"));
}

/// The floor check reports an arrow running back up, one running sideways, and a module on
/// no floor; arrows going down pass.
#[test]
fn the_floor_check_catches_an_arrow_back_up() {
    let arrow = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    let modules: BTreeSet<String> = ["a", "b", "c", "d", "x"].map(str::to_owned).into();
    let arrows =
        BTreeSet::from([arrow("b", "a"), arrow("a", "b"), arrow("c", "d"), arrow("d", "a")]);
    let floors: &[&[&str]] = &[&["a"], &["b"], &["c", "d"]];
    assert_eq!(
        floor_problems(&modules, &arrows, floors),
        [
            "`x` is on no floor: add it to ADAPTER_FLOORS",
            "`a` (floor 1) imports `b` (floor 2): an arrow running back up",
            "`c` (floor 3) imports `d` (floor 3): an arrow running sideways",
        ]
    );
}

/// What only the adapter's product seam (`crates/sea-orm/src/product/`) may name: a
/// product's SQL, the server error codes the adapter branches on, the driver hooks that make
/// sessions read-only, and matches on the backend or on a product's positions.
const PRODUCT_ONLY: &[&str] = &[
    "DbBackend::Postgres",
    "DbBackend::MySql",
    "ReplayPosition::Postgres",
    "ReplayPosition::MariaDb",
    "TokenKind::",
    "Flavor::",
    "Product::Postgres",
    "Product::MariaDb",
    "Dialect::",
    "pg_current",
    "pg_last",
    "pg_control",
    "pg_walfile",
    "@@",
    "MASTER_GTID",
    "READ ONLY",
    "DEALLOCATE ALL",
    "server_version",
    "VERSION()",
    "\"25006\"",
    "\"40001\"",
    "\"42P01\"",
    "\"57P0",
    ".number()",
    "MySqlDatabaseError",
    "PgDatabaseError",
    "map_sqlx_postgres",
    "map_sqlx_mysql",
];

/// MariaDB error numbers the adapter branches on (checked as whole numbers).
const PRODUCT_ERROR_NUMBERS: &[&str] = &["1053", "1146", "1213", "1290", "1792"];

/// The lines of `text` outside the seam that name product-specific things: code only
/// (comment lines and the `#[cfg(test)] mod tests` at the end of a file are skipped).
fn product_leaks(text: &str) -> Vec<(usize, String)> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    let mut hits = Vec::new();
    for (i, line) in code.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        // A trailing comment (` //`; a URL's `://` is not one).
        let line = line.split(" //").next().unwrap_or("");
        let whole = |n: &str| {
            line.match_indices(n).any(|(at, _)| {
                let before = line[..at].chars().next_back();
                let after = line[at + n.len()..].chars().next();
                !before.is_some_and(|c| c.is_ascii_alphanumeric())
                    && !after.is_some_and(|c| c.is_ascii_alphanumeric())
            })
        };
        if let Some(m) = PRODUCT_ONLY.iter().find(|m| line.contains(*m)) {
            hits.push((i + 1, (*m).to_owned()));
        } else if let Some(n) = PRODUCT_ERROR_NUMBERS.iter().find(|n| whole(n)) {
            hits.push((i + 1, (*n).to_owned()));
        }
    }
    hits
}

/// The adapter's product seam: nothing product-specific (SQL, error codes, backend matches)
/// lives in `crates/sea-orm/src` outside `product/`, nor in `crates/axum/src` (which asks the
/// connection for its token kind), except in tests.
#[test]
fn product_sql_stays_in_the_seam() {
    let root = crate::project_root();
    let seam = root.join("crates/sea-orm/src/product");
    let mut hits = Vec::new();
    for src in
        [root.join("crates/sea-orm/src"), root.join("crates/axum/src"), root.join("crates/web/src")]
    {
        visit(&src, &mut |path, text| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.starts_with(&seam) || name.starts_with("tests") {
                return;
            }
            for (line, what) in product_leaks(text) {
                hits.push(format!(
                    "{}:{line}: `{what}` belongs in crates/sea-orm/src/product",
                    path.display()
                ));
            }
        });
    }
    assert!(hits.is_empty(), "product-specific code outside the seam:\n{}", hits.join("\n"));
}

/// The check finds what it is meant to find (and skips comments and tests).
#[test]
fn the_product_seam_check_catches_a_leak() {
    let leaky = "fn f(b: DbBackend) {\n    // DbBackend::Postgres in a comment is fine\n    \
                 let sql = \"SELECT pg_last_wal_replay_lsn()\";\n    \
                 if my.number() == 1290 {}\n    let n = 12900;\n}\n\
                 #[cfg(test)]\nmod tests {\n    const X: &str = \"@@global.read_only\";\n}\n";
    let hits: Vec<usize> = product_leaks(leaky).into_iter().map(|(line, _)| line).collect();
    assert_eq!(hits, vec![3, 4]);
    assert_eq!(product_leaks("let x = 1290;"), vec![(1, "1290".to_owned())]);
    assert!(product_leaks("let x = 12900; // 1290").is_empty());
    assert!(product_leaks("match b { DbBackend::MySql => 1 }").len() == 1);
}

#[test]
fn readme_user_test_is_the_example() {
    // The testkit's README (its registry page) shows, under "Testing your app against lagging
    // replicas", examples/tests/lagging_replicas.rs (which CI runs) whole, but for its `//!`
    // header: what a user copies is what CI ran. (The top-level README links to it.)
    let root = crate::project_root();
    let readme = std::fs::read_to_string(root.join("crates/testkit/README.md"))
        .expect("the testkit's README readable");
    let example = std::fs::read_to_string(root.join("examples/tests/lagging_replicas.rs"))
        .expect("the example readable");
    let section = readme
        .split("## Testing your app against lagging replicas")
        .nth(1)
        .expect("the README section exists");
    let block = section
        .split("```rust\n")
        .nth(1)
        .and_then(|b| b.split("```\n").next())
        .expect("the section has a rust block");
    let code: Vec<&str> = example.lines().filter(|l| !l.starts_with("//!")).collect();
    let code = code.join("\n");
    assert_eq!(block.trim(), code.trim(), "the README's test is not the example's");
}

#[test]
fn readme_loco_code_is_the_examples() {
    // The README's "loco" section shows pieces of examples/loco (which CI builds and tests):
    // every Rust line it shows is a line of the example's sources, indentation aside.
    let root = crate::project_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README readable");
    let section = readme
        .split("### loco: `RoutedConnection` in a loco app")
        .nth(1)
        .and_then(|s| s.split("\n### ").next())
        .and_then(|s| s.split("\n## ").next())
        .expect("the README's loco section exists");
    let mut sources = String::new();
    visit(&root.join("examples/loco/src"), &mut |path, text| {
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push_str(text);
        }
    });
    let lines: std::collections::HashSet<&str> = sources.lines().map(str::trim).collect();
    let mut shown = 0;
    let mut missing = Vec::new();
    for block in section.split("```rust\n").skip(1) {
        let code = block.split("```").next().unwrap_or_default();
        for line in code.lines().map(str::trim).filter(|l| !l.is_empty()) {
            shown += 1;
            if !lines.contains(line) {
                missing.push(line);
            }
        }
    }
    assert!(shown > 10, "the loco section shows too little code: {shown} lines");
    assert!(missing.is_empty(), "README loco lines not in examples/loco/src: {missing:#?}");
}

#[test]
fn testkit_modules_do_not_import_the_cluster_facade() {
    // The testkit's shared vocabulary is in the leaf `vocab.rs`; `cluster.rs` is the facade
    // and nothing inside the crate imports it (lib.rs only re-exports it).
    let root = crate::project_root().join("crates/testkit/src");
    let mut hits = Vec::new();
    visit(&root, &mut |path, text| {
        if !path.ends_with("lib.rs") && text.contains("crate::cluster") {
            hits.push(path.display().to_string());
        }
    });
    let vocab = std::fs::read_to_string(root.join("vocab.rs")).expect("vocab.rs readable");
    let imports: Vec<&str> = vocab
        .lines()
        .filter(|l| l.starts_with("use crate::") && !l.contains("::error::"))
        .collect();
    assert!(hits.is_empty(), "modules importing the Cluster facade: {hits:?}");
    assert!(imports.is_empty(), "vocab.rs must stay a leaf (error only): {imports:?}");
}

/// Every package that may be published carries what crates.io and docs.rs need, and the
/// others say `publish = false`: `cargo package` (a phase of `cargo xtask ci`) refuses a path
/// dependency without a version, but only warns about missing metadata. `repository` is
/// optional (there is no public one yet), but never a placeholder.
#[test]
fn library_crates_carry_registry_metadata() {
    let root = crate::project_root();
    let meta = metadata();
    let license = |name: &str| {
        std::fs::read_to_string(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let (mit, apache) = (license("LICENSE-MIT"), license("LICENSE-APACHE"));
    let mut problems = Vec::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name");
        let unpublished = p["publish"].as_array().is_some_and(Vec::is_empty);
        if unpublished != crate::ci::UNPUBLISHED.contains(&name) {
            problems.push(format!(
                "{name}: `publish = false` and xtask's ci::UNPUBLISHED (the packaging phase's \
                 excludes) disagree"
            ));
        }
        if unpublished {
            continue;
        }
        let dir = Path::new(p["manifest_path"].as_str().expect("path")).parent().expect("dir");
        let text = |field: &str| p[field].as_str().unwrap_or("").trim().to_owned();
        for field in ["description", "rust_version"] {
            if text(field).is_empty() {
                problems.push(format!("{name}: no `{field}`"));
            }
        }
        let repository = text("repository");
        if !repository.is_empty() && !public_address(&repository) {
            problems.push(format!("{name}: `repository = \"{repository}\"` is no public address"));
        }
        if text("license") != "MIT OR Apache-2.0" {
            problems.push(format!("{name}: license is not `MIT OR Apache-2.0`"));
        }
        match p["readme"].as_str() {
            Some(readme) if dir.join(readme).is_file() => {}
            _ => problems.push(format!("{name}: no `readme`, or the file is missing")),
        }
        let keywords: Vec<&str> =
            p["keywords"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let keyword_ok = |k: &&str| {
            k.len() <= 20
                && k.starts_with(|c: char| c.is_ascii_alphabetic())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if keywords.is_empty() || keywords.len() > 5 || !keywords.iter().all(keyword_ok) {
            problems.push(format!("{name}: keywords {keywords:?} (1 to 5, crates.io's form)"));
        }
        if p["categories"].as_array().is_none_or(Vec::is_empty) {
            problems.push(format!("{name}: no `categories`"));
        }
        if p["metadata"]["docs"]["rs"]["all-features"].as_bool() != Some(true) {
            problems.push(format!("{name}: no `[package.metadata.docs.rs] all-features = true`"));
        }
        // The license texts travel with the crate (symbolic links to the root's).
        for (file, want) in [("LICENSE-MIT", &mit), ("LICENSE-APACHE", &apache)] {
            if std::fs::read_to_string(dir.join(file)).ok().as_ref() != Some(want) {
                problems.push(format!("{name}: {file} missing or not the workspace's"));
            }
        }
    }
    assert!(problems.is_empty(), "packages not ready for crates.io:\n{}", problems.join("\n"));
}

/// Whether `url` can be a package's `repository`: an `https://` address outside the names
/// reserved for examples and tests. No `repository` until rwsplit has a public one: a
/// placeholder is a dead link on the registry page, and leaves a reader nowhere to go.
fn public_address(url: &str) -> bool {
    let reserved = ["example.", ".invalid", ".test", "localhost"];
    url.starts_with("https://") && !reserved.iter().any(|r| url.contains(r))
}

#[test]
fn a_placeholder_repository_is_no_public_address() {
    assert!(!public_address("https://example.invalid/rwsplit"));
    assert!(!public_address("https://git.example.com/rwsplit"));
    assert!(!public_address("http://git.internal/rwsplit"));
    assert!(public_address("https://codeberg.org/someone/rwsplit"));
}

/// A file of the workspace, read.
fn read(path: &str) -> String {
    std::fs::read_to_string(crate::project_root().join(path))
        .unwrap_or_else(|e| panic!("{path} readable: {e}"))
}

/// The user guide's page `page` (`docs/guide/<page>`).
fn guide_page(page: &str) -> String {
    read(&format!("{}/{page}", crate::guide::GUIDE))
}

#[test]
fn guide_links_resolve() {
    // Every page SUMMARY.md lists exists; every relative link and `#anchor` of every page
    // resolves (the check CI's "guide" phase runs before mdbook builds the book).
    let problems = crate::guide::check_links(&crate::project_root());
    assert!(problems.is_empty(), "the guide's links:\n{}", problems.join("\n"));
}

#[test]
fn guide_pages_are_doc_tested() {
    // examples/guide.rs makes every page a doc-tested module, so that the Rust samples
    // compile; a page that only includes another file (the guarantees) has none of its own.
    let harness = read("examples/guide.rs");
    let mut missing = Vec::new();
    for page in crate::guide::summary_pages(&crate::project_root()) {
        let text = guide_page(&page);
        let include_only = text.contains("{{#include") && !text.contains("```rust");
        if !include_only && !harness.contains(&format!("../docs/guide/{page}\"")) {
            missing.push(page);
        }
    }
    assert!(missing.is_empty(), "pages examples/guide.rs does not doc-test: {missing:?}");
}

/// The items of the Rust source `text` (from `path`, for the panic message).
fn parse(path: &Path, text: &str) -> syn::File {
    syn::parse_file(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The builder-style setters (`pub fn name(mut self, …)`) of the inherent `impl <ty>` blocks
/// at the top level of `file`.
fn setters(file: &syn::File, ty: &str) -> Vec<String> {
    let blocks = file.items.iter().filter_map(|item| match item {
        syn::Item::Impl(b) if b.trait_.is_none() => match &*b.self_ty {
            syn::Type::Path(p) if p.path.is_ident(ty) => Some(b),
            _ => None,
        },
        _ => None,
    });
    blocks
        .flat_map(|b| &b.items)
        .filter_map(|item| match item {
            syn::ImplItem::Fn(f) if matches!(f.vis, syn::Visibility::Public(_)) => Some(&f.sig),
            _ => None,
        })
        .filter(|sig| {
            matches!(sig.inputs.first(), Some(syn::FnArg::Receiver(r))
                if r.reference.is_none() && r.mutability.is_some())
        })
        .map(|sig| sig.ident.to_string())
        .collect()
}

/// The visible fields (`pub`, `pub(super)` …) of the struct `name` at the top level of
/// `file`, with their types as compact text (`Vec<ReplicaConfig>`).
fn struct_fields(file: &syn::File, name: &str) -> Vec<(String, String)> {
    let Some(found) = file.items.iter().find_map(|item| match item {
        syn::Item::Struct(s) if s.ident == name => Some(s),
        _ => None,
    }) else {
        return Vec::new();
    };
    found
        .fields
        .iter()
        .filter(|f| !matches!(f.vis, syn::Visibility::Inherited))
        .filter_map(|f| Some((f.ident.as_ref()?.to_string(), modules::type_text(&f.ty))))
        .collect()
}

#[test]
fn guide_configuration_reference_is_complete() {
    // The reference (docs/guide/configuration.md) names every option the code accepts: each
    // builder setter of the builder and the option types it takes, each `RoutedConfig` key, and
    // each environment variable name (or name part) `from_env` reads. A new option fails here
    // until the page has it.
    let page = guide_page("configuration.md");
    let root = crate::project_root();
    let mut missing = Vec::new();

    // Setters: `.name(` or `Type::name(` on the page.
    let types = [
        "RoutedConnectionBuilder",
        "Replica",
        "RouterConfig",
        "HealthPolicy",
        "MonitorConfig",
        "AutoFailover",
        "PatroniSource",
        "DnsSource",
        "SessionLayerBuilder",
        "SessionCarrierBuilder",
        "TokenEnvelope",
    ];
    let mut found = BTreeMap::<&str, usize>::new();
    for dir in [
        "crates/core/src",
        "crates/monitor/src",
        "crates/sea-orm/src",
        "crates/axum/src",
        "crates/web/src",
    ] {
        visit(&root.join(dir), &mut |path, text| {
            if path.extension().is_none_or(|e| e != "rs") {
                return;
            }
            let file = parse(path, text);
            for ty in types {
                for name in setters(&file, ty) {
                    *found.entry(ty).or_default() += 1;
                    if !page.contains(&format!(".{name}("))
                        && !page.contains(&format!("{ty}::{name}("))
                    {
                        missing.push(format!("{ty}::{name}"));
                    }
                }
            }
        });
    }
    for ty in types {
        assert!(found.get(ty).is_some_and(|n| *n > 0), "no setters of {ty} found: moved?");
    }

    // `RoutedConfig` keys: `section.key` for each field of each section's struct: its file
    // form (`RouterFile` for `router`, in sections.rs) where it has one, else its own type.
    let config = "crates/sea-orm/src/config/mod.rs";
    let config = parse(Path::new(config), &read(config));
    let file_forms = "crates/sea-orm/src/config/sections.rs";
    let file_forms = parse(Path::new(file_forms), &read(file_forms));
    let sections = struct_fields(&config, "RoutedConfig");
    assert!(sections.len() >= 5, "RoutedConfig's fields: {sections:?}");
    for (section, ty) in &sections {
        let (section, ty) = match ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
            Some(inner) => (format!("{section}[]"), inner.to_owned()),
            None => (section.clone(), ty.clone()),
        };
        let mut initial = section.chars();
        let file_form = initial
            .next()
            .map(|c| format!("{}{}File", c.to_ascii_uppercase(), initial.as_str()))
            .unwrap_or_default();
        let mut fields = struct_fields(&file_forms, &file_form);
        if fields.is_empty() {
            fields = struct_fields(&config, &ty);
        }
        assert!(!fields.is_empty(), "no fields of {ty} (the type of `{section}`)");
        for (field, _) in fields {
            let key = format!("`{section}.{field}`");
            if !page.contains(&key) && !page.contains(&format!("{key}:")) {
                missing.push(key);
            }
        }
    }

    // Environment variables: every name and name part env.rs spells out.
    let env = read("crates/sea-orm/src/config/env.rs");
    let names: BTreeSet<&str> = env
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() >= 3
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(names.contains("DATABASE_URL") && names.len() > 30, "env.rs's names: {names:?}");
    for name in names {
        if !page.contains(name) {
            missing.push(name.to_owned());
        }
    }
    assert!(missing.is_empty(), "missing from docs/guide/configuration.md: {missing:#?}");
}

#[test]
fn cluster_up_prints_what_from_env_reads() {
    // `export $(cargo xtask cluster up)` must give an application exactly what
    // `RoutedConnection::from_env` reads: every name `print_urls` prints is one env.rs reads.
    let cluster = read("xtask/src/cluster.rs");
    let body = cluster.split("fn print_urls(").nth(1).expect("cluster.rs has print_urls");
    let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
    let printed: Vec<&str> = body
        .split("println!(\"")
        .skip(1)
        .filter_map(|s| s.split_once('=').map(|(name, _)| name))
        .collect();
    assert!(printed.contains(&"DATABASE_URL"), "print_urls prints {printed:?}");
    let env = read("crates/sea-orm/src/config/env.rs");
    let reads = |name: &str| {
        env.contains(&format!("(\"{name}\", \"")) || env.contains(&format!("get(\"{name}\")"))
    };
    let foreign: Vec<&&str> = printed.iter().filter(|n| !reads(n)).collect();
    assert!(foreign.is_empty(), "cluster up prints names from_env does not read: {foreign:?}");
}

/// The variants of `pub enum <name> {` in `text`.
fn enum_variants(text: &str, name: &str) -> Vec<String> {
    let head = format!("pub enum {name} {{\n");
    let Some(start) = text.find(&head) else { return Vec::new() };
    let body = &text[start + head.len()..];
    let body = &body[..body.find("\n}").unwrap_or(body.len())];
    body.lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|l| l.split([' ', ',', '(', '{']).next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn guide_troubleshooting_names_every_error() {
    // Each error a user can get has a section (its cause, its fix) in troubleshooting.md.
    let page = guide_page("troubleshooting.md");
    let mut missing = Vec::new();
    for (file, ty, prefix) in [
        ("crates/sea-orm/src/error.rs", "Error", "Error"),
        ("crates/sea-orm/src/routing_error.rs", "RoutingError", "RoutingError"),
        ("crates/web/src/error.rs", "Error", "rwsplit_web::Error"),
    ] {
        let variants = enum_variants(&read(file), ty);
        assert!(variants.len() > 5, "{file}: {variants:?}");
        for v in variants {
            if !page.contains(&format!("### `{prefix}::{v}`")) {
                missing.push(format!("{prefix}::{v}"));
            }
        }
    }
    assert!(missing.is_empty(), "errors without a section in troubleshooting.md: {missing:?}");
}

/// Each library crate's README (what crates.io shows) links the user guide, where its reader
/// learns the rest.
#[test]
fn crate_readmes_link_the_guide() {
    let root = crate::project_root();
    let mut missing = Vec::new();
    for dir in std::fs::read_dir(root.join("crates")).expect("crates/").flatten() {
        let readme = dir.path().join("README.md");
        let text = std::fs::read_to_string(&readme).unwrap_or_default();
        if !text.contains("docs/guide/") {
            missing.push(readme.display().to_string());
        }
    }
    assert!(missing.is_empty(), "crate READMEs that do not link the guide: {missing:?}");
}

/// The README's install lines can be pasted: each `name = { path = "../rwsplit/crates/<dir>" }`
/// (a clone of this repository beside the user's project) names a crate of that name in that
/// directory.
#[test]
fn readme_install_lines_name_real_crates() {
    let readme = read("README.md");
    let block = readme.split("## Install").nth(1).expect("an Install section");
    let block = block.split("```").nth(1).expect("its toml block");
    let mut lines = 0;
    for line in block.lines().map(|l| l.trim_start_matches("# ")) {
        let Some((name, rest)) = line.split_once(" = { path = \"../rwsplit/") else { continue };
        let dir = rest.split('"').next().expect("a closing quote");
        let manifest = read(&format!("{dir}/Cargo.toml"));
        assert!(
            manifest.contains(&format!("name = \"{}\"", name.trim())),
            "README's install line for {name} points at {dir}, which is another crate"
        );
        lines += 1;
    }
    assert!(lines >= 3, "the install block names the crates by path: {block}");
}

/// The lines (1-based) of the Markdown `text` that depend on an rwsplit crate by a version and
/// no path (`rwsplit-x = "0.1"`, `rwsplit-x = { version = "0.1", … }`), commented out or not:
/// no registry has rwsplit yet, so such a line fails where a reader pastes it.
fn versioned_install_lines(text: &str) -> Vec<usize> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start().trim_start_matches('#').trim_start();
        let Some((name, value)) = line.split_once('=') else { continue };
        let name = name.trim();
        let is_crate = name.strip_prefix("rwsplit-").is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        });
        let value = value.trim_start();
        let keys = value.strip_prefix('{').unwrap_or_default();
        let key = |k: &str| {
            keys.split(',').any(|kv| kv.split_once('=').is_some_and(|(key, _)| key.trim() == k))
        };
        if is_crate && (value.starts_with('"') || (key("version") && !key("path"))) {
            found.push(i + 1);
        }
    }
    found
}

#[test]
fn markdown_install_lines_take_a_path() {
    let root = crate::project_root();
    let mut problems = Vec::new();
    let mut files = 0;
    visit_files(&root, "md", &mut |path, text| {
        files += 1;
        let rel = path.strip_prefix(&root).unwrap_or(path);
        for n in versioned_install_lines(text) {
            let line = text.lines().nth(n - 1).unwrap_or_default().trim();
            problems.push(format!("{}:{n}: {line}", rel.display()));
        }
    });
    assert!(files >= 10, "Markdown files found: {files}");
    assert!(
        problems.is_empty(),
        "rwsplit dependencies by version alone, which no registry has: say \
         `{{ path = \"../rwsplit/crates/<dir>\" }}` as README.md's Install does:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_install_line_check_catches_a_bare_version() {
    let text = "```toml\n[dependencies]\nrwsplit-sea-orm = \"0.1\"\n\
                rwsplit-axum = { path = \"../rwsplit/crates/axum\" }\n\
                # rwsplit-web = { version = \"0.1\", features = [\"poem\"] }\n\
                rwsplit-web = { version = \"=0.1.0\", path = \"crates/web\" }\n\
                sea-orm = { version = \"2.0.4\" }\n```\n\
                Once released: `rwsplit-sea-orm = \"0.1\"`.\n\
                let rwsplit_token = \"x\";\n";
    assert_eq!(versioned_install_lines(text), [3, 5]);
}

/// The README is a product page: 250 lines at most; the rest belongs in the guide
/// or CONTRIBUTING.md.
#[test]
fn readme_stays_short() {
    let lines = read("README.md").lines().count();
    assert!(lines <= 250, "README.md has {lines} lines, 250 at most: move detail to docs/guide");
}

#[test]
fn readme_links_the_guide() {
    let readme = read("README.md");
    let links = readme.split("\n## Links").nth(1).expect("the README has a Links section");
    assert!(links.contains("(docs/guide/"), "the README's Links do not name the guide");
}

/// `code` without comments and `use` declarations, whitespace removed, trailing commas before
/// a closing bracket dropped: what rustfmt's layout does not change.
fn normalized(code: &str) -> String {
    let mut out = String::new();
    let mut in_use = false;
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or_default();
        if line.trim_start().starts_with("use ") || line.trim_start().starts_with("pub use ") {
            in_use = true;
        }
        if !in_use {
            out.extend(line.chars().filter(|c| !c.is_whitespace()));
        }
        if in_use && line.trim_end().ends_with(';') {
            in_use = false;
        }
    }
    out.replace(",)", ")").replace(",}", "}")
}

/// `normalized(code)` cut into statements and block heads (after each `;`, `{` and `}`).
fn units(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut unit = String::new();
    for c in normalized(code).chars() {
        unit.push(c);
        if matches!(c, ';' | '{' | '}') {
            out.push(std::mem::take(&mut unit));
        }
    }
    out.push(unit);
    out.retain(|u| !u.is_empty() && u != "}");
    out
}

#[test]
fn readme_migration_is_the_diff() {
    // README.md's "Moving an axum app over" against examples/axum_migration: `after` (which CI
    // runs on a real cluster) has every line the README shows; each `// was: X` is in `before`
    // and not in `after`; and every other difference between the two is one the README
    // describes: its numbered steps' substitutions (1: `State<RoutedConnection>` for
    // `State<DatabaseConnection>`; 2: helpers taking `db: &C` where `C: ConnectionTrait`) or
    // a line it shows. So a person who follows the README alone makes `after` out of `before`.
    let readme = read("README.md");
    let section = readme
        .split("## Moving an axum app over")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the README's migration section");
    let block = section
        .split("```rust\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the migration section's code");
    for step in [
        "`State<RoutedConnection>` instead of `State<DatabaseConnection>`",
        "`db: &C` where `C: ConnectionTrait`",
        "run on `db.primary()`",
    ] {
        assert!(section.contains(step), "the README's steps no longer say {step}");
    }
    let before = read("examples/axum_migration/before.rs");
    let after = read("examples/axum_migration/after.rs");
    let (before_n, after_n) = (normalized(&before), normalized(&after));
    let after_uses: String = after.lines().filter(|l| l.starts_with("use ")).collect();

    // Every line the README shows is in `after`; every `was:` is in `before` only.
    let mut shown = Vec::new();
    let mut was = Vec::new();
    for line in block.lines() {
        let (code, comment) = line.split_once("//").unwrap_or((line, ""));
        let code = code.trim().trim_end_matches("{ … }").trim();
        if code.is_empty() {
            continue;
        }
        if code.starts_with("use ") {
            assert!(after_uses.contains(code), "`after` lacks the README's `{code}`");
        } else {
            let n = normalized(code);
            assert!(after_n.contains(&n), "`after` lacks the README's `{code}`");
            if !before_n.contains(&n) {
                shown.push(n);
            }
        }
        if let Some(w) = comment.trim().strip_prefix("was:") {
            let w = normalized(w.trim());
            assert!(before_n.contains(&w), "`before` lacks the README's `was: {w}`");
            assert!(!after_n.contains(&w), "`after` still has `{w}`");
            was.push(w);
        }
    }
    assert!(shown.len() >= 4 && was.len() >= 2, "the README's block: {shown:?} {was:?}");

    // Every other difference is a substitution the README's steps describe, or a shown line.
    let substituted = |u: &str| {
        u.replace("RoutedConnection", "DatabaseConnection")
            .replace("<C:ConnectionTrait>", "")
            .replace("db:&C,", "db:&DatabaseConnection,")
            .replace("db:&C)", "db:&DatabaseConnection)")
    };
    let mut rest_before = units(&before);
    let after_units = units(&after);
    let mut unexplained = Vec::new();
    for u in &after_units {
        if let Some(i) = rest_before.iter().position(|b| b == u || *b == substituted(u)) {
            rest_before.remove(i);
            continue;
        }
        let mut r = u.clone();
        for s in &shown {
            r = r.replace(s.as_str(), "");
        }
        if r.trim_matches(['{', '}', ';']).is_empty() {
            continue;
        }
        match rest_before.iter().position(|b| *b == r || *b == substituted(&r)) {
            Some(i) => {
                rest_before.remove(i);
            }
            None => unexplained.push(format!("after: {u}")),
        }
    }
    for b in rest_before {
        let replaced_by_shown = was.iter().any(|w| b.contains(w.as_str()));
        // A variable only a `was:` used (`let url = …;` for `Database::connect(url)`).
        let only_for_was =
            b.strip_prefix("let").and_then(|r| r.split_once('=')).is_some_and(|(name, _)| {
                was.iter().any(|w| {
                    w.split(|c: char| !c.is_alphanumeric() && c != '_').any(|word| word == name)
                })
            });
        let substituted_from_after = after_units.iter().any(|u| substituted(u) == b);
        if !(replaced_by_shown || only_for_was || substituted_from_after) {
            unexplained.push(format!("before: {b}"));
        }
    }
    assert!(
        unexplained.is_empty(),
        "differences between before.rs and after.rs the README does not show:\n{}",
        unexplained.join("\n")
    );
}

/// The library crates whose modules must not import each other in a circle.
const CIRCLE_CHECKED: &[&str] = &["core", "monitor", "sea-orm", "axum", "web", "testkit"];

/// The import circles that remain, per crate (the directory under `crates/`), each with the
/// issue that removes it. The list may only shrink: the test fails on a circle not listed
/// here, and on a listed one that no longer exists. A module of a circle is named by its path
/// from the crate root (`connection::attempt`), a module's own file by `<path>::self` (`crate`
/// for `lib.rs`).
const ALLOWED_CIRCLES: &[(&str, &[&str], &str)] = &[];

/// The import circles of each checked crate, as sorted module lists.
fn import_circles() -> BTreeMap<&'static str, Vec<BTreeSet<String>>> {
    let root = crate::project_root();
    CIRCLE_CHECKED
        .iter()
        .map(|c| {
            let krate = modules::Crate::read(&modules::lib_root(&root.join("crates").join(c)));
            (*c, krate.circles())
        })
        .collect()
}

#[test]
fn modules_do_not_import_each_other_in_a_circle() {
    let found = import_circles();
    let mut problems = Vec::new();
    let root = crate::project_root();
    for (krate, circles) in &found {
        for circle in circles {
            let listed = ALLOWED_CIRCLES.iter().any(|(c, members, _)| {
                c == krate
                    && members.iter().map(|m| (*m).to_owned()).collect::<BTreeSet<_>>() == *circle
            });
            if !listed {
                let parsed =
                    modules::Crate::read(&modules::lib_root(&root.join("crates").join(krate)));
                problems.push(format!(
                    "crates/{krate}: the modules {circle:?} import each other in a circle:\n    {}",
                    modules::explain(&parsed, circle).join("\n    ")
                ));
            }
        }
    }
    for (krate, members, issue) in ALLOWED_CIRCLES {
        let members: BTreeSet<String> = members.iter().map(|m| (*m).to_owned()).collect();
        if !found.get(krate).is_some_and(|cs| cs.contains(&members)) {
            problems.push(format!(
                "crates/{krate}: the allowed circle {members:?} ({issue}) no longer exists: \
                 take it off ALLOWED_CIRCLES"
            ));
        }
    }
    assert!(problems.is_empty(), "import circles:\n{}", problems.join("\n"));
}

/// The circle check finds a planted circle, at the top and among a module's children, through
/// `use` trees, code paths and re-exports, and ignores comments, strings and test modules.
#[test]
fn the_circle_check_catches_a_planted_circle() {
    let krate = modules::Crate::from_files(&[
        ("lib.rs", "mod a;\nmod b;\nmod c;\nmod d;\npub use c::Z;\n"),
        ("a.rs", "use crate::{b::{self, X}, Z};\npub struct Y;\nfn f() { b::g(); }\n"),
        // Only a path back to `a`, in a macro call; the comment and the string name `c` and `d`.
        (
            "b.rs",
            "pub struct X;\npub fn g() { drop(vec![super::a::Y]); } // crate::c::Z\nconst S: &str = \"crate::d::P\";\n",
        ),
        // `c` names `a` only in test code and a raw string: no circle `a` → `c` → `a`.
        (
            "c.rs",
            "pub struct Z;\n#[cfg(test)]\nmod tests {\n    use crate::a::Y;\n}\n#[cfg(test)]\nfn t() { crate::a::Y; }\n\
             fn u() { #[cfg(test)]\n    let _ = crate::a::Y;\n    let _ = r#\"crate::a::Y\"#; }\n",
        ),
        ("d/mod.rs", "mod x;\nmod y;\npub use x::P;\n"),
        ("d/x.rs", "pub struct P;\nfn f() -> super::y::Q { todo() }\n"),
        ("d/y.rs", "use super::P;\npub struct Q(P);\n"),
    ]);
    let circles: Vec<Vec<String>> =
        krate.circles().into_iter().map(|c| c.into_iter().collect()).collect();
    assert_eq!(circles, vec![vec!["a", "b"], vec!["d::x", "d::y"]]);
}

/// The types whose inherent `impl` blocks may be spread over more than one module, per crate
/// (the directory under `crates/`), each with why. Trait impls are not counted (SeaORM's
/// traits are implemented where the handles they serve are) and neither are tests. The test
/// fails on a type with blocks in two modules that is not listed here, and on a listed one
/// whose blocks are in one module.
const SPREAD_IMPLS: &[(&str, &str, &str)] = &[(
    "sea-orm",
    "connection::inner::RoutedConnection",
    "its constructors (config/mod.rs) name the builder and `RoutedConfig`, a floor above \
     connection/, where its other methods are (connection/facade.rs)",
)];

#[test]
fn a_types_inherent_impls_live_in_one_module() {
    let root = crate::project_root();
    let mut spread = BTreeMap::new();
    for krate in CIRCLE_CHECKED {
        let parsed = modules::Crate::read(&modules::lib_root(&root.join("crates").join(krate)));
        for (ty, homes) in parsed.inherent_impls() {
            if homes.len() > 1 {
                spread.insert((*krate, ty), homes);
            }
        }
    }
    let mut problems = Vec::new();
    for ((krate, ty), homes) in &spread {
        if !SPREAD_IMPLS.iter().any(|(c, t, _)| c == krate && t == ty) {
            problems.push(format!("crates/{krate}: `impl {ty}` blocks in {homes:?}"));
        }
    }
    for (krate, ty, why) in SPREAD_IMPLS {
        if !spread.contains_key(&(*krate, (*ty).to_owned())) {
            problems.push(format!(
                "crates/{krate}: `{ty}` ({why}) has its inherent impls in one module now: take it \
                 off SPREAD_IMPLS"
            ));
        }
    }
    assert!(problems.is_empty(), "inherent impls spread over modules:\n{}", problems.join("\n"));
}

/// The impl check attributes each block to the type it names, through imports, and skips
/// trait impls and tests.
#[test]
fn the_impl_check_finds_a_spread_type() {
    let krate = modules::Crate::from_files(&[
        ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
        (
            "a.rs",
            "pub struct A;\nimpl A { fn f() {} }\nimpl Clone for A { fn clone(&self) -> A { A } }\n",
        ),
        (
            "b.rs",
            "use crate::a::A;\nimpl A { fn g() {} }\npub struct B<T>(T);\nimpl<T: Copy> B<T> where T: Send {}\n",
        ),
        (
            "c.rs",
            "impl crate::b::B<u8> {}\nimpl std::fmt::Debug for crate::a::A {}\n#[cfg(test)]\nmod tests {\n    impl crate::a::A {}\n}\n",
        ),
    ]);
    let spread: Vec<(String, Vec<String>)> =
        krate.inherent_impls().into_iter().map(|(t, m)| (t, m.into_iter().collect())).collect();
    let owned = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        spread,
        vec![("a::A".to_owned(), owned(&["a", "b"])), ("b::B".to_owned(), owned(&["b", "c"]))]
    );
}

/// Files whose comments may still cite issues, each with the issue whose rewrite of the file
/// drops them. The list may only shrink: the test fails on a file that cites none.
const ISSUE_CITING_FILES: &[(&str, &str)] = &[];

/// A comment says what the code does and why, as present facts; which issue asked for it, and
/// what went wrong before, is the tracker's and the CHANGELOG's. Strings are not checked (the
/// allow-lists above cite the issue that removes each entry).
#[test]
fn comments_cite_no_issue() {
    let root = crate::project_root();
    let mut hits = Vec::new();
    let mut citing = BTreeSet::new();
    for dir in ["crates", "xtask", "examples", "tests"] {
        visit(&root.join(dir), &mut |path, text| {
            let rel = path.strip_prefix(&root).unwrap_or(path).to_string_lossy().into_owned();
            // The check's own module quotes what it looks for.
            if rel == "xtask/src/tidy/comments.rs" {
                return;
            }
            for (line, comment) in comments::comments(text) {
                if comments::cites_an_issue(&comment) {
                    citing.insert(rel.clone());
                    if !ISSUE_CITING_FILES.iter().any(|(f, _)| *f == rel) {
                        let first = comment.lines().next().unwrap_or_default();
                        hits.push(format!("{rel}:{line}: //{}", first.trim_end()));
                    }
                }
            }
        });
    }
    for (file, why) in ISSUE_CITING_FILES {
        if !citing.contains(*file) {
            hits.push(format!("{file} ({why}) cites no issue now: take it off ISSUE_CITING_FILES"));
        }
    }
    assert!(
        hits.is_empty(),
        "comments citing an issue (say what the code does and why instead):\n{}",
        hits.join("\n")
    );
}
/// The components whose state is theirs alone: `(crate directory under crates/, module path,
/// type)`. No field of these may carry a visibility modifier (`pub`, `pub(crate)`,
/// `pub(super)`, `pub(in …)`), and their module has no child modules outside tests (a child
/// sees its parent's private fields): everything else uses the component's methods, which live
/// in that one file. Adding a component is one line here.
const COMPONENTS: &[(&str, &str, &str)] = &[
    ("sea-orm", "nodes::registry", "Node"),
    ("sea-orm", "nodes::registry", "NodeRef"),
    ("sea-orm", "nodes::registry", "Nodes"),
    ("sea-orm", "nodes::registry", "NodeTable"),
    ("sea-orm", "nodes::shared", "MonitorHandle"),
    ("sea-orm", "nodes::members", "Members"),
    ("sea-orm", "observe::counters", "Counters"),
    ("sea-orm", "routing::plan", "Planner"),
    ("sea-orm", "connection::inner", "Inner"),
    ("sea-orm", "consistency::causality", "Causality"),
    ("sea-orm", "consistency::causal", "TaskScopes"),
    ("sea-orm", "consistency::causal", "Shared"),
    ("sea-orm", "cluster::view", "Routing"),
    ("sea-orm", "routing::classified", "Classified"),
    ("sea-orm", "consistency::coalesce", "Coalesce"),
    ("sea-orm", "hedge::pace", "Pace"),
    ("sea-orm", "hedge::hedging", "Hedging"),
    ("sea-orm", "hedge::hedging", "Watchdog"),
    ("sea-orm", "retry::retrying", "Retrying"),
    ("sea-orm", "observe::hooks", "Hooks"),
    ("sea-orm", "consistency::learned", "Learned"),
    ("monitor", "state::demand", "Demand"),
    ("testkit", "patroni::processes", "Processes"),
    ("testkit", "patroni::state", "PatroniState"),
];

/// The parts a composing component hands to the steps of its folder: `(crate, module, type,
/// field)`, each `pub(super)` (privacy at the folder, as sqlx's `PoolInner`). A step of the
/// folder holds the part it uses instead of asking the component to pass each call on; the
/// part's own state stays behind its methods (it is itself in [`COMPONENTS`]).
const FOLDER_PARTS: &[(&str, &str, &str, &str)] = &[
    ("sea-orm", "connection::inner", "Inner", "hedging"),
    ("sea-orm", "connection::inner", "Inner", "retry"),
    ("sea-orm", "connection::inner", "Inner", "routing"),
    ("sea-orm", "connection::inner", "Inner", "planner"),
    ("sea-orm", "connection::inner", "Inner", "classified"),
    ("sea-orm", "connection::inner", "Inner", "counters"),
    ("sea-orm", "connection::inner", "Inner", "causality"),
    ("sea-orm", "connection::inner", "Inner", "hooks"),
    ("sea-orm", "connection::inner", "Inner", "nodes"),
    // Not a part: whether a monitor runs, a flag the plan reads with the parts it hands on.
    ("sea-orm", "connection::inner", "Inner", "monitored"),
    // Not a part: the SeaORM backend, a value SeaORM asks for on every call (`traits.rs`).
    ("sea-orm", "connection::inner", "Inner", "backend"),
    // Not parts: the configuration every step reads as a value (the policy, shared with the
    // planner; the product and its `db.system.name`).
    ("sea-orm", "connection::inner", "Inner", "policy"),
    ("sea-orm", "connection::inner", "Inner", "product"),
    ("sea-orm", "connection::inner", "Inner", "system_name"),
];

/// What keeps the component `module::ty` of `krate` from owning its state (see
/// [`COMPONENTS`]): fields with a visibility modifier (but `pub(super)` ones `folder` lists),
/// child modules, or no such struct.
fn component_problems(
    krate: &modules::Crate,
    module: &str,
    ty: &str,
    folder: &[&str],
) -> Vec<String> {
    let Some(found) = krate.struct_fields(module, ty) else {
        return vec![format!("no struct `{ty}` in module `{module}`")];
    };
    let mut problems: Vec<String> = found
        .fields
        .iter()
        .filter(|(field, visible)| {
            *visible && !(folder.contains(&field.as_str()) && found.to_folder.contains(field))
        })
        .map(|(field, _)| {
            format!("`{module}::{ty}` has a field visible outside its file: `{field}`")
        })
        .collect();
    if !found.children.is_empty() {
        problems.push(format!(
            "`{module}`, home of the component `{ty}`, has child modules that see its fields: {:?}",
            found.children
        ));
    }
    problems
}

#[test]
fn component_fields_are_private() {
    let root = crate::project_root();
    let mut crates = BTreeMap::new();
    let mut problems = Vec::new();
    for (krate, module, ty) in COMPONENTS {
        let parsed = crates.entry(*krate).or_insert_with(|| {
            modules::Crate::read(&modules::lib_root(&root.join("crates").join(krate)))
        });
        let folder: Vec<&str> = FOLDER_PARTS
            .iter()
            .filter(|(c, m, t, _)| c == krate && m == module && t == ty)
            .map(|(.., f)| *f)
            .collect();
        for p in component_problems(parsed, module, ty, &folder) {
            problems.push(format!("crates/{krate}: {p}"));
        }
    }
    assert!(
        problems.is_empty(),
        "components with fields reachable from outside:\n{}",
        problems.join("\n")
    );
}

/// The component check catches a planted visible field of any kind, in named and tuple
/// structs, through attributes, generics and bracketed types, and a child module; test-only
/// fields and modules are left out; a listed folder part passes only as `pub(super)`.
#[test]
fn the_component_check_catches_a_planted_field() {
    let krate = modules::Crate::from_files(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        (
            "a.rs",
            "pub struct A<T: Fn(u8) -> u8> where T: Send {\n    /// a doc\n    x: Vec<(u8, T)>,\n    \
             #[doc = \"y\"]\n    pub(crate) y: std::collections::HashMap<u8, fn(u8) -> u8>,\n    \
             #[cfg(test)]\n    pub t: u8,\n    z: [u8; 2],\n    pub(in crate::a) w: u8,\n    pub v: u8,\n    \
             pub(super) u: u8,\n}\npub struct B(pub(crate) u8, u16, pub(self) u32);\n\
             pub(crate) struct C { c: u8 }\n#[cfg(test)]\nmod tests {}\n",
        ),
        ("b.rs", "pub struct D;\nmod inner {}\n"),
    ]);
    let problems = |module: &str, ty: &str| component_problems(&krate, module, ty, &[]);
    let named = |fields: &[&str], module: &str, ty: &str| -> Vec<String> {
        fields
            .iter()
            .map(|f| format!("`{module}::{ty}` has a field visible outside its file: `{f}`"))
            .collect()
    };
    assert_eq!(problems("a", "A"), named(&["y", "w", "v", "u"], "a", "A"));
    // A folder part passes only as `pub(super)`: `u` does, `y` (`pub(crate)`) does not.
    assert_eq!(
        component_problems(&krate, "a", "A", &["u", "y"]),
        named(&["y", "w", "v"], "a", "A")
    );
    assert_eq!(problems("a", "B"), named(&["0", "2"], "a", "B"));
    assert!(problems("a", "C").is_empty());
    assert_eq!(
        problems("b", "D"),
        vec!["`b`, home of the component `D`, has child modules that see its fields: [\"inner\"]"]
    );
    assert_eq!(problems("a", "Missing"), vec!["no struct `Missing` in module `a`"]);
    assert_eq!(problems("c", "A"), vec!["no struct `A` in module `c`"]);
}

/// The leases: `(crate directory under crates/, module::Type, method)`. An accessor is a method
/// of a component of [`COMPONENTS`] that returns, behind a reference or a shared pointer,
/// another component or a lock or weak handle (`&Routing`, `&Mutex<…>`, `&Weak<Inner>`,
/// `Option<&Node>`), or a struct through which one is reached (a view like `Around<'_>`, a
/// handle like `NodeRef`): its callers reach into the part instead of asking the component to
/// do the work, and the component's state is no longer its alone. None is allowed but a lease:
/// a hold on a part for as long as something runs on it, which the owner counts and waits for,
/// as a pool lends a connection. The registry's `hold` is one: a statement holds its node
/// while it runs there (and works on it only through the node's operations), and a removal's
/// drain waits until every hold is let go. The test fails on an accessor not listed here
/// (offer an operation instead), and on a listed one that no longer hands out a part.
const LEASES: &[(&str, &str, &str)] = &[("sea-orm", "nodes::registry::Nodes", "hold")];

/// The accessors the components in `components` (`(module, type)`, all of `krate`) have:
/// `(module::Type, method)` with what each hands out, as a message line.
fn accessors(
    krate: &modules::Crate,
    components: &[(&str, &str)],
) -> BTreeMap<(String, String), String> {
    let key = |module: &str, ty: &str| {
        if module.is_empty() { ty.to_owned() } else { format!("{module}::{ty}") }
    };
    let all: BTreeSet<String> = components.iter().map(|(m, t)| key(m, t)).collect();
    let mut out = BTreeMap::new();
    for ty in &all {
        for h in krate.handed_out(ty, &all) {
            let line =
                format!("`{ty}::{}` returns `{}`, handing out {}", h.method, h.returns, h.part);
            out.insert((ty.clone(), h.method), line);
        }
    }
    out
}

/// What is wrong with the accessors `found` of the crate `krate` against the ones `allowed`
/// (`(crate, module::Type, method)`): new ones, and listed ones that are gone.
fn accessor_problems(
    krate: &str,
    found: &BTreeMap<(String, String), String>,
    allowed: &[(&str, &str, &str)],
) -> Vec<String> {
    let mut problems: Vec<String> = found
        .iter()
        .filter(|((ty, method), _)| {
            !allowed.iter().any(|(c, t, m)| *c == krate && t == ty && m == method)
        })
        .map(|(_, line)| format!("crates/{krate}: {line}: offer an operation instead"))
        .collect();
    for (c, ty, method) in allowed.iter().filter(|(c, _, _)| *c == krate) {
        if !found.contains_key(&((*ty).to_owned(), (*method).to_owned())) {
            problems.push(format!(
                "crates/{c}: `{ty}::{method}` hands out no part now: take it off LEASES"
            ));
        }
    }
    problems
}

/// No component hands out another component, or a lock or weak handle of its state (see
/// [`LEASES`]): a component's parts are worked on through its operations.
#[test]
fn no_component_hands_out_another_component() {
    let root = crate::project_root();
    let mut problems = Vec::new();
    let crates: BTreeSet<&str> = COMPONENTS.iter().map(|(c, _, _)| *c).collect();
    for krate in crates {
        let parsed = modules::Crate::read(&modules::lib_root(&root.join("crates").join(krate)));
        let components: Vec<(&str, &str)> =
            COMPONENTS.iter().filter(|(c, _, _)| *c == krate).map(|(_, m, t)| (*m, *t)).collect();
        problems.extend(accessor_problems(krate, &accessors(&parsed, &components), LEASES));
    }
    assert!(problems.is_empty(), "components handing out their parts:\n{}", problems.join("\n"));
}

/// The accessor check finds a planted accessor of each kind (a reference to another component,
/// through an import and an `Option`, a shared pointer, a lock, a weak handle), leaves out
/// private methods, owned values, the type itself and trait impls, and reports a listed accessor
/// that is gone.
#[test]
fn the_accessor_check_catches_a_planted_accessor() {
    let krate = modules::Crate::from_files(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        (
            "a.rs",
            "use std::sync::{Arc, Mutex, Weak};\nuse crate::b::B;\npub struct A { b: B, m: Mutex<u8>, w: Weak<A> }\n\
             impl A {\n    pub fn b(&self) -> &B { &self.b }\n    pub(crate) fn maybe(&self) -> Option<&crate::b::B> { None }\n    \
             pub fn shared(&self) -> Arc<B> { Arc::new(B) }\n    pub fn lock(&self) -> &Mutex<u8> { &self.m }\n    \
             pub(super) fn me(&self) -> Weak<A> { self.w.clone() }\n    fn private(&self) -> &B { &self.b }\n    \
             pub fn owned(&self) -> B { B }\n    pub fn this(&self) -> &Self { self }\n    pub fn size(&self) -> usize { 0 }\n}\n\
             impl std::ops::Deref for A { type Target = B; fn deref(&self) -> &B { &self.b } }\n",
        ),
        // A view borrowing a part, a handle component sharing another one, a plain value.
        (
            "b.rs",
            "use std::sync::Arc;\npub struct B;\npub struct View<'a> { pub(crate) a: &'a crate::a::A }\n\
             pub struct H(Arc<crate::a::A>);\npub struct Plain { n: u8 }\nimpl B {\n    \
             pub fn a(&self) -> &crate::a::A { loop {} }\n    pub fn view(&self) -> View<'_> { loop {} }\n    \
             pub fn holder(&self) -> Option<H> { None }\n    pub fn plain(&self) -> Plain { Plain { n: 0 } }\n}\n",
        ),
    ]);
    let found = accessors(&krate, &[("a", "A"), ("b", "B"), ("b", "H")]);
    let methods: Vec<String> = found.keys().map(|(t, m)| format!("{t}::{m}")).collect();
    assert_eq!(
        methods,
        [
            "a::A::b",
            "a::A::lock",
            "a::A::maybe",
            "a::A::me",
            "a::A::shared",
            "b::B::a",
            "b::B::holder",
            "b::B::view"
        ]
    );
    let line = |ty: &str, method: &str| found[&(ty.to_owned(), method.to_owned())].clone();
    assert_eq!(line("a::A", "lock"), "`a::A::lock` returns `&Mutex<u8>`, handing out `Mutex`");
    assert_eq!(
        line("b::B", "view"),
        "`b::B::view` returns `View<'_>`, handing out `a::A` in `b::View`"
    );
    assert_eq!(line("b::B", "holder"), "`b::B::holder` returns `Option<H>`, handing out `b::H`");
    let allowed = [
        ("k", "a::A", "b"),
        ("k", "a::A", "lock"),
        ("k", "a::A", "maybe"),
        ("k", "a::A", "me"),
        ("k", "b::B", "a"),
        ("k", "b::B", "holder"),
        ("k", "b::B", "view"),
        ("k", "a::A", "gone"),
    ];
    assert_eq!(
        accessor_problems("k", &found, &allowed),
        [
            "crates/k: `a::A::shared` returns `Arc<B>`, handing out `b::B`: offer an operation instead",
            "crates/k: `a::A::gone` hands out no part now: take it off LEASES",
        ]
    );
}

/// The `runbook_url` annotations of the alerting rules in `yaml` (each line's quoted value).
fn runbook_urls(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url:"))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
        .collect()
}

/// What is wrong with each runbook URL of `yaml` in the repository at `root`: each must be a
/// path from the root to a file that exists, and an anchor that is a heading of it.
fn runbook_problems(root: &Path, yaml: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for url in runbook_urls(yaml) {
        let Some((path, anchor)) = url.split_once('#') else {
            problems.push(format!("{url}: no #anchor"));
            continue;
        };
        if path.contains("://") || path.starts_with('/') || path.contains("..") {
            problems.push(format!("{url}: not a path from the repository's root"));
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root.join(path)) else {
            problems.push(format!("{url}: no file {path}"));
            continue;
        };
        if !crate::guide::heading_ids(&text).contains(anchor) {
            problems.push(format!("{url}: no heading #{anchor} in {path}"));
        }
    }
    problems
}

#[test]
fn every_runbook_url_names_a_file_and_a_heading_in_it() {
    // The alerting rules' runbooks (and the copies in their unit tests' expected alerts) are
    // repository paths with an anchor: each file exists and has that heading.
    let root = crate::project_root();
    let mut problems = Vec::new();
    let mut seen = 0;
    for file in
        ["contrib/prometheus/rwsplit-alerts.yml", "contrib/prometheus/rwsplit-alerts.test.yml"]
    {
        let yaml = read(file);
        seen += runbook_urls(&yaml).len();
        problems.extend(runbook_problems(&root, &yaml).into_iter().map(|p| format!("{file}: {p}")));
    }
    assert!(seen >= 9, "runbook_url annotations found: {seen}");
    assert!(problems.is_empty(), "runbook URLs:\n{}", problems.join("\n"));
}

#[test]
fn the_runbook_check_catches_a_url_a_file_and_an_anchor() {
    let root = crate::project_root();
    let yaml = r##"
          runbook_url: "docs/guide/operations.md#rwsplitnoprimary"
          runbook_url: "https://example.invalid/rwsplit/blob/main/docs/guide/operations.md#rwsplitnoprimary"
          runbook_url: "docs/guide/nothing.md#rwsplitnoprimary"
          runbook_url: "docs/guide/operations.md#nothing-here"
          runbook_url: "docs/guide/operations.md"
    "##;
    let problems = runbook_problems(&root, yaml);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0].contains("not a path"), "{problems:#?}");
    assert!(problems[1].contains("no file"), "{problems:#?}");
    assert!(problems[2].contains("no heading"), "{problems:#?}");
    assert!(problems[3].contains("no #anchor"), "{problems:#?}");
}

/// A name reached through a module's re-export is an arrow to that module too: `low` naming
/// `super::Thing`, which `p/mod.rs` re-exports from `high`, runs to `mod` (and to `high`), so an
/// arrow back up through a parent's `pub use` is caught; a module's own `use` of a sibling's
/// item is one arrow, to the sibling.
#[test]
fn an_arrow_through_a_re_export_is_one_to_the_re_exporting_module() {
    let krate = modules::Crate::from_files(&[
        ("lib.rs", "mod p;\n"),
        ("p/mod.rs", "mod high;\nmod low;\nmod side;\npub(crate) use high::Thing;\n"),
        ("p/high.rs", "pub(crate) struct Thing;\n"),
        ("p/low.rs", "fn f(_: super::Thing) {}\n"),
        ("p/side.rs", "use super::high::Thing;\nfn g(_: Thing) {}\n"),
    ]);
    let arrows = krate.arrows_under(&["p"]);
    let has = |a: &str, b: &str| arrows.contains(&(a.to_owned(), b.to_owned()));
    assert!(has("low", "mod") && has("low", "high"), "{arrows:?}");
    assert!(has("side", "high") && !has("side", "mod"), "{arrows:?}");
}
