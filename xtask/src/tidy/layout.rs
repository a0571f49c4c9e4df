//! The shape of the library crates, printed and held to budgets: each crate's top-level modules
//! on floors (a module stands one floor above the highest module it imports; a folder stands for
//! everything under it) and its longest functions. `cargo test -p xtask layout -- --nocapture`
//! prints the picture; with `RWSPLIT_LAYOUT_ROOT` set to another checkout (a `git worktree` of an
//! older commit, say) it prints that checkout's picture and checks nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::modules::{self, Crate, Function};

/// The library crates, by directory under `crates/`.
const CRATES: &[&str] = &["core", "monitor", "sea-orm", "web", "axum", "testkit"];

/// No function of a library crate is longer than this many lines, but those in [`LONG_LEFT`].
const MAX_LINES: usize = 100;

/// Functions longer than [`MAX_LINES`] still to be split: `(crate, module::name, lines)`. A
/// listed function that grows, or shrinks under the bound, fails the test until the list says so.
const LONG_LEFT: &[(&str, &str, usize)] = &[
    // The classifier's scanners: one loop over tokens each, a `match` per state, on the hot
    // path (its instruction budget is `crates/core/benches/instructions.rs`).
    ("core", "classify::Classifier::scan", 291),
    ("core", "classify::lexer::Lexer::next_token", 142),
    ("core", "classify::scalar::scan_query", 174),
];

/// The modules of the statement path (a path prefix in a crate): no function there is longer
/// than [`PATH_MAX_LINES`], a screen.
const PATH: &[(&str, &str)] = &[
    ("sea-orm", "connection::statements"),
    ("sea-orm", "routing::plan"),
    ("sea-orm", "connection::attempt"),
    ("sea-orm", "connection::record"),
    ("sea-orm", "send"),
    ("sea-orm", "hedge"),
    ("sea-orm", "retry"),
    ("sea-orm", "consistency"),
];

/// The most lines a function of the statement path may have.
const PATH_MAX_LINES: usize = 60;

/// A crate's top-level modules, each with its floor, its lines and what it imports.
struct Floors {
    /// Module → (floor, lines, imported modules).
    modules: BTreeMap<String, (usize, usize, BTreeSet<String>)>,
    circles: usize,
}

fn floors(dir: &Path, krate: &Crate) -> Floors {
    let arrows = krate.top_level_arrows();
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = dir.join("src");
    for entry in std::fs::read_dir(&src).expect("src/ is readable").flatten() {
        let path = entry.path();
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        if name.starts_with("tests") || !krate.top_modules().contains(&name) {
            continue;
        }
        imports.entry(name).or_default();
    }
    for (a, b) in &arrows {
        imports.entry(a.clone()).or_default().insert(b.clone());
    }
    let circles = krate.circles().iter().filter(|c| c.iter().all(|m| !m.contains("::"))).count();
    let mut floor: BTreeMap<String, usize> = BTreeMap::new();
    // Longest path downwards; a circle stops at its own size (the test on circles fails then).
    for _ in 0..=imports.len() {
        for (m, deps) in &imports {
            let f = 1 + deps.iter().filter_map(|d| floor.get(d)).max().copied().unwrap_or(0);
            floor.insert(m.clone(), f.min(imports.len()));
        }
    }
    let modules = imports
        .into_iter()
        .map(|(m, deps)| {
            let lines = lines_of(&src.join(format!("{m}.rs"))) + lines_of(&src.join(&m));
            (m.clone(), (floor[&m], lines, deps))
        })
        .collect();
    Floors { modules, circles }
}

/// Lines of the non-test Rust files at `path` (a file, or a folder and everything under it).
fn lines_of(path: &Path) -> usize {
    if path.is_dir() {
        std::fs::read_dir(path).map_or(0, |d| d.flatten().map(|e| lines_of(&e.path())).sum())
    } else {
        let name = path.file_name().and_then(|s| s.to_str()).unwrap_or_default();
        if !name.ends_with(".rs") || name.starts_with("tests") {
            return 0;
        }
        std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
    }
}

/// The picture of one crate, as text: floors from the top, each module with its lines and
/// imports.
fn picture(name: &str, f: &Floors) -> String {
    let top = f.modules.values().map(|(floor, ..)| *floor).max().unwrap_or(0);
    let arrows: usize = f.modules.values().map(|(_, _, d)| d.len()).sum();
    let mut out = format!(
        "crates/{name}: {} top-level modules on {top} floors, {arrows} arrows, {} circles\n",
        f.modules.len(),
        f.circles
    );
    for floor in (1..=top).rev() {
        for (m, (fl, lines, deps)) in &f.modules {
            if *fl == floor {
                let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
                out.push_str(&format!(
                    "  floor {floor:>2}  {m:<16} {lines:>5}  → {}\n",
                    deps.join(", ")
                ));
            }
        }
    }
    out
}

fn longest(functions: &[Function], n: usize) -> Vec<&Function> {
    let mut sorted: Vec<&Function> = functions.iter().collect();
    sorted.sort_by(|a, b| b.lines.cmp(&a.lines).then_with(|| a.name.cmp(&b.name)));
    sorted.truncate(n);
    sorted
}

/// Prints each library crate's floors and its ten longest functions (`--nocapture`), and holds
/// the function-length budgets: none over [`MAX_LINES`] but those of [`LONG_LEFT`], none of the
/// statement path ([`PATH`]) over [`PATH_MAX_LINES`].
#[test]
fn the_layout_and_its_function_budgets() {
    let (root, other) = modules::checkout();
    let mut problems = Vec::new();
    let mut text = String::new();
    for name in CRATES {
        let dir = root.join("crates").join(name);
        if other && !modules::lib_root(&dir).is_file() {
            continue;
        }
        let krate = Crate::read(&modules::lib_root(&dir));
        text.push_str(&picture(name, &floors(&dir, &krate)));
        let functions = krate.functions();
        text.push_str("  longest functions:\n");
        for f in longest(&functions, 10) {
            text.push_str(&format!("    {:>4}  {}::{}\n", f.lines, f.module, f.name));
        }
        for f in &functions {
            let key = if f.module.is_empty() {
                f.name.clone()
            } else {
                format!("{}::{}", f.module, f.name)
            };
            let listed = LONG_LEFT.iter().find(|(c, k, _)| c == name && *k == key);
            match listed {
                Some((_, _, max)) if f.lines > *max => problems.push(format!(
                    "crates/{name}: `{key}` grew to {} lines (listed at {max} in LONG_LEFT)",
                    f.lines
                )),
                Some((_, _, max)) if f.lines < *max => problems.push(format!(
                    "crates/{name}: `{key}` is {} lines now: lower LONG_LEFT's {max}{}",
                    f.lines,
                    if f.lines <= MAX_LINES { " or take it off" } else { "" }
                )),
                None if f.lines > MAX_LINES => problems.push(format!(
                    "crates/{name}: `{key}` is {} lines (at most {MAX_LINES}): split it",
                    f.lines
                )),
                _ => {}
            }
            let on_path = PATH.iter().any(|(c, p)| {
                c == name && (f.module == *p || f.module.starts_with(&format!("{p}::")))
            });
            if on_path && f.lines > PATH_MAX_LINES {
                problems.push(format!(
                    "crates/{name}: `{key}` is on the statement path and {} lines (at most \
                     {PATH_MAX_LINES})",
                    f.lines
                ));
            }
        }
    }
    println!("{text}");
    if other {
        return;
    }
    assert!(problems.is_empty(), "function budgets:\n{}", problems.join("\n"));
}

/// What the picture and the budgets read: a function's length from `fn` to its closing brace
/// (a method named after its type), and an arrow only where a module names another's item (a
/// `use` or a path), not where a visibility restriction names a module.
#[test]
fn functions_are_measured_and_a_visibility_path_is_no_arrow() {
    let krate = Crate::from_files(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        (
            "a.rs",
            "pub(in crate::b) fn short() {}\n\npub(crate) struct S;\n\nimpl S {\n    \
             fn long(&self) {\n        let _x = 1;\n        let _y = 2;\n    }\n}\n",
        ),
        ("b.rs", "use crate::a::S;\n\npub(crate) fn f(_: S) {}\n"),
    ]);
    let mut lengths: Vec<(String, usize)> = krate
        .functions()
        .into_iter()
        .map(|f| (format!("{}::{}", f.module, f.name), f.lines))
        .collect();
    lengths.sort();
    assert_eq!(
        lengths,
        [("a::S::long".to_owned(), 4), ("a::short".to_owned(), 1), ("b::f".to_owned(), 1)]
    );
    let arrows: Vec<(String, String)> = krate.top_level_arrows().into_iter().collect();
    assert_eq!(arrows, [("b".to_owned(), "a".to_owned())]);
}
