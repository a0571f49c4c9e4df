//! The module graph of a library crate, for the tidy test that fails on import circles.
//!
//! A light reading of Rust source, enough to say which module's items a module names: comments
//! and literals are dropped, `#[cfg(test)]` items are left out (test code is not part of the
//! crate's structure), `use` trees and `crate::`/`super::`/`self::` paths are resolved through
//! the module tree and through re-exports (`pub use`, and the private `use`s a child module sees).
//! Circles are looked for among siblings: at each module, between its child modules (a child
//! standing for everything under it) and the module's own file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A token of the source that matters for paths.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    /// Any other punctuation, one character.
    Punct(char),
}

/// The tokens of `src`, without comments, literals or lifetimes.
fn tokens(src: &str) -> Vec<Tok> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_start = |c: char| c.is_alphabetic() || c == '_';
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&b, i + 1);
        } else if matches!(c, 'r' | 'b' | 'c') && raw_or_prefixed_string(&b, i).is_some() {
            i = raw_or_prefixed_string(&b, i).unwrap_or(i + 1);
        } else if c == '\'' {
            // A char literal (`'a'`, `'\n'`, `'\u{1F600}'`) or a lifetime (`'a`).
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
            }
        } else if ident_start(c) {
            let start = i;
            while i < b.len() && ident_char(b[i]) {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            // A raw identifier `r#name`.
            if word == "r"
                && b.get(i) == Some(&'#')
                && b.get(i + 1).is_some_and(|c| ident_start(*c))
            {
                let start = i + 1;
                i = start;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                out.push(Tok::Ident(b[start..i].iter().collect()));
            } else {
                out.push(Tok::Ident(word));
            }
        } else if c.is_ascii_digit() {
            while i < b.len()
                && (ident_char(b[i])
                    || b[i] == '.' && b.get(i + 1).is_some_and(char::is_ascii_digit))
            {
                i += 1;
            }
        } else if c == ':' && next == Some(':') {
            out.push(Tok::Sep);
            i += 2;
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

/// The index after the closing quote of a string whose body starts at `i`.
fn skip_string(b: &[char], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// If a prefixed string (`b"…"`, `c"…"`, `r"…"`, `r#"…"#`, `br#"…"#`) starts at `i`: the index
/// after it.
fn raw_or_prefixed_string(b: &[char], i: usize) -> Option<usize> {
    // Not the end of a longer identifier.
    if i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if matches!(b[j], 'b' | 'c') {
        j += 1;
    }
    let raw = b.get(j) == Some(&'r');
    if raw {
        j += 1;
    }
    if !raw {
        return (j > i && b.get(j) == Some(&'"')).then(|| skip_string(b, j + 1));
    }
    let mut hashes = 0;
    while b.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if b.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < b.len() {
        if b[j] == '"' && (1..=hashes).all(|k| b.get(j + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(j)
}

/// Keywords that start an item.
const ITEM_KEYWORDS: &[&str] = &[
    "fn",
    "mod",
    "use",
    "struct",
    "enum",
    "union",
    "impl",
    "trait",
    "const",
    "static",
    "type",
    "async",
    concat!("un", "safe"),
    "extern",
    "macro_rules",
];

/// The index after the item, field, statement or expression that starts at `i` (what a
/// `#[cfg(..)]` before it applies to): an item ends at its `;` or at the `}` closing its first
/// block; anything else at its `,` or `;`, or before the bracket that closes around it.
fn item_end(toks: &[Tok], mut i: usize) -> usize {
    let mut first = i;
    if toks.get(first) == Some(&Tok::Ident("pub".into())) {
        first += 1;
        if toks.get(first) == Some(&Tok::Punct('(')) {
            while first < toks.len() && toks[first] != Tok::Punct(')') {
                first += 1;
            }
            first += 1;
        }
    }
    let item =
        matches!(toks.get(first), Some(Tok::Ident(k)) if ITEM_KEYWORDS.contains(&k.as_str()));
    let mut depth = 0usize;
    while i < toks.len() {
        match toks[i] {
            Tok::Punct('(' | '[') => depth += 1,
            Tok::Punct('{') if !item => depth += 1,
            Tok::Punct(')' | ']' | '}') if depth == 0 => return i,
            Tok::Punct(')' | ']' | '}') => depth -= 1,
            Tok::Punct(';') if depth == 0 => return i + 1,
            Tok::Punct(',') if depth == 0 && !item => return i + 1,
            Tok::Punct('{') if depth == 0 => return block_end(toks, i),
            _ => {}
        }
        i += 1;
    }
    i
}

/// The index of the `;` that ends the `use` declaration whose tree starts at `i`.
fn use_end(toks: &[Tok], i: usize) -> usize {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(i) {
        match t {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth = depth.saturating_sub(1),
            Tok::Punct(';') if depth == 0 => return j,
            _ => {}
        }
    }
    toks.len()
}

/// The index after the `}` matching the `{` at `open`.
fn block_end(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// If an attribute `#[…]` starts at `i`: the index after it, and whether it is a `cfg` that
/// holds in tests only (`cfg(test)`, `cfg(all(test, …))`; not `cfg(not(test))`).
fn attribute(toks: &[Tok], i: usize) -> Option<(usize, bool)> {
    if toks.get(i) != Some(&Tok::Punct('#')) {
        return None;
    }
    let mut j = i + 1;
    if toks.get(j) == Some(&Tok::Punct('!')) {
        j += 1;
    }
    if toks.get(j) != Some(&Tok::Punct('[')) {
        return None;
    }
    let mut depth = 0usize;
    let start = j;
    while j < toks.len() {
        match toks[j] {
            Tok::Punct('[') => depth += 1,
            Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        j += 1;
    }
    let body = &toks[start + 1..j.min(toks.len())];
    let ident = |t: &Tok, s: &str| matches!(t, Tok::Ident(w) if w == s);
    let test_only = body.first().is_some_and(|t| ident(t, "cfg"))
        && body.iter().any(|t| ident(t, "test"))
        && !body.iter().any(|t| ident(t, "not"));
    Some((j + 1, test_only))
}

/// One module: its own tokens (its inline and file child modules left out), its children.
#[derive(Default)]
struct Module {
    toks: Vec<Tok>,
    children: BTreeSet<String>,
    /// Names this module's `use`s bring in, as absolute paths (`[]` is the crate root).
    imports: BTreeMap<String, Vec<String>>,
    /// Modules (absolute paths) whose items a `use …::*` brings in.
    globs: Vec<Vec<String>>,
    /// Items defined here (functions, types, traits, constants, statics, macros).
    items: BTreeSet<String>,
}

/// A crate's modules, by absolute path (`[]` is the root).
pub(super) struct Crate {
    modules: BTreeMap<Vec<String>, Module>,
}

type ModPath = Vec<String>;

impl Crate {
    /// Reads the crate whose root file is `root` (`src/lib.rs`).
    pub(super) fn read(root: &Path) -> Crate {
        let mut krate = Crate { modules: BTreeMap::new() };
        let text =
            std::fs::read_to_string(root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
        krate.add(Vec::new(), tokens(&text), &dir);
        krate.resolve_imports();
        krate
    }

    /// A crate of in-memory files, `(path relative to src/, text)`, the root being `lib.rs`.
    #[cfg(test)]
    pub(super) fn from_files(files: &[(&str, &str)]) -> Crate {
        // One directory per call: tests run in parallel in one process.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tidy-modules-{}-{call}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("temp dir");
            std::fs::write(&path, text).expect("temp file");
        }
        let krate = Crate::read(&dir.join("lib.rs"));
        let _ = std::fs::remove_dir_all(&dir);
        krate
    }

    /// Adds the module at `path` whose tokens are `toks`; its child module files are under
    /// `dir`.
    fn add(&mut self, path: ModPath, toks: Vec<Tok>, dir: &Path) {
        let mut own = Vec::new();
        let mut children = Vec::new();
        let mut i = 0;
        let mut test_only = false;
        while i < toks.len() {
            if let Some((end, test)) = attribute(&toks, i) {
                test_only |= test;
                own.extend_from_slice(&toks[i..end]);
                i = end;
                continue;
            }
            let is = |k: usize, s: &str| matches!(toks.get(k), Some(Tok::Ident(w)) if w == s);
            let starts_item =
                !matches!(toks[i], Tok::Punct(_) | Tok::Sep) || toks[i] == Tok::Punct('{');
            if test_only && starts_item {
                i = item_end(&toks, i);
                test_only = false;
                continue;
            }
            test_only = false;
            // `mod name;` or `mod name { … }`, after any visibility.
            if is(i, "mod")
                && let Some(Tok::Ident(name)) = toks.get(i + 1)
            {
                match toks.get(i + 2) {
                    Some(Tok::Punct(';')) => {
                        children.push((name.clone(), None));
                        i += 3;
                        continue;
                    }
                    Some(Tok::Punct('{')) => {
                        let end = block_end(&toks, i + 2);
                        children.push((name.clone(), Some(toks[i + 3..end - 1].to_vec())));
                        i = end;
                        continue;
                    }
                    _ => {}
                }
            }
            own.push(toks[i].clone());
            i += 1;
        }
        let mut module = Module { toks: own, ..Module::default() };
        for (name, _) in &children {
            module.children.insert(name.clone());
        }
        module.items = items(&module.toks);
        self.modules.insert(path.clone(), module);
        for (name, inline) in children {
            let mut child = path.clone();
            child.push(name.clone());
            match inline {
                Some(toks) => self.add(child, toks, &dir.join(&name)),
                None => {
                    let file = [dir.join(format!("{name}.rs")), dir.join(&name).join("mod.rs")]
                        .into_iter()
                        .find(|f| f.is_file())
                        .unwrap_or_else(|| {
                            panic!("module {name} under {}: no file", dir.display())
                        });
                    let text = std::fs::read_to_string(&file).expect("module file readable");
                    self.add(child, tokens(&text), &dir.join(&name));
                }
            }
        }
    }

    /// Fills each module's `imports` and `globs` from its `use` declarations.
    fn resolve_imports(&mut self) {
        let paths: Vec<ModPath> = self.modules.keys().cloned().collect();
        for path in paths {
            let mut uses = Vec::new();
            let toks = &self.modules[&path].toks;
            let mut i = 0;
            while i < toks.len() {
                if toks[i] == Tok::Ident("use".into()) {
                    let end = use_end(toks, i + 1);
                    use_tree(&toks[i + 1..end], &[], &mut uses);
                    i = end;
                } else {
                    i += 1;
                }
            }
            let children = self.modules[&path].children.clone();
            let module = self.modules.get_mut(&path).expect("the module");
            for (segments, alias) in uses {
                let Some(abs) = absolute(&path, &children, &module.imports, &segments) else {
                    continue;
                };
                match alias {
                    UseName::Glob => module.globs.push(abs),
                    UseName::Name(name) if name != "_" => {
                        module.imports.insert(name, abs);
                    }
                    UseName::Name(_) => {}
                }
            }
        }
    }

    /// The module whose item the absolute path `abs` names (following re-exports), if the path
    /// leads into this crate.
    fn target(&self, abs: &[String], depth: usize) -> ModPath {
        let mut at: ModPath = Vec::new();
        let mut rest = abs;
        while let Some((first, tail)) = rest.split_first() {
            let module = &self.modules[&at];
            if module.children.contains(first) {
                at.push(first.clone());
                rest = tail;
                continue;
            }
            if depth < 8 && !module.items.contains(first) {
                if let Some(imported) = module.imports.get(first) {
                    let mut next = imported.clone();
                    next.extend_from_slice(tail);
                    return self.target(&next, depth + 1);
                }
                for glob in &module.globs {
                    let mut next = glob.clone();
                    next.extend_from_slice(rest);
                    let found = self.target(&next, depth + 1);
                    if self.modules[&found].items.contains(&rest[0]) || found.len() > glob.len() {
                        return found;
                    }
                }
            }
            break;
        }
        at
    }

    /// Every module a module names: `(from, to)` pairs of absolute module paths, `from != to`.
    fn references(&self) -> BTreeSet<(ModPath, ModPath)> {
        let mut edges = BTreeSet::new();
        for (path, module) in &self.modules {
            let toks = &module.toks;
            let mut i = 0;
            while i < toks.len() {
                // `use` declarations name what they import.
                if toks[i] == Tok::Ident("use".into()) {
                    let end = use_end(toks, i + 1);
                    let mut uses = Vec::new();
                    use_tree(&toks[i + 1..end], &[], &mut uses);
                    for (segments, _) in uses {
                        if let Some(abs) =
                            absolute(path, &module.children, &BTreeMap::new(), &segments)
                        {
                            edges.insert((path.clone(), self.target(&abs, 0)));
                        }
                    }
                    i = end;
                    continue;
                }
                // A path `a::b::c` in code (not one that continues another, nor `$crate::`).
                let starts = matches!(toks[i], Tok::Ident(_))
                    && toks.get(i + 1) == Some(&Tok::Sep)
                    && (i == 0 || (toks[i - 1] != Tok::Sep && toks[i - 1] != Tok::Punct('$')));
                if starts {
                    let mut segments = Vec::new();
                    let mut j = i;
                    while let Some(Tok::Ident(w)) = toks.get(j) {
                        segments.push(w.clone());
                        if toks.get(j + 1) != Some(&Tok::Sep) {
                            break;
                        }
                        j += 2;
                    }
                    if let Some(abs) = absolute(path, &module.children, &module.imports, &segments)
                    {
                        edges.insert((path.clone(), self.target(&abs, 0)));
                    }
                    i = j + 1;
                    continue;
                }
                i += 1;
            }
        }
        edges.retain(|(a, b)| a != b);
        edges
    }

    /// Every type with inherent `impl` blocks (`impl Type { … }`, not `impl Trait for Type`),
    /// named `module::Type` by the module that defines it, with the modules its blocks are in.
    /// An inline module counts as its own; test code is left out.
    pub(super) fn inherent_impls(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (path, module) in &self.modules {
            let toks = &module.toks;
            for (i, t) in toks.iter().enumerate() {
                if *t != Tok::Ident("impl".into()) {
                    continue;
                }
                // After `impl` and its generics: the self type's path, up to `{`, `for` or
                // `where`.
                let mut j = i + 1;
                if toks.get(j) == Some(&Tok::Punct('<')) {
                    let mut depth = 0usize;
                    while j < toks.len() {
                        match toks[j] {
                            Tok::Punct('<') => depth += 1,
                            Tok::Punct('>') => {
                                depth -= 1;
                                if depth == 0 {
                                    j += 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                }
                let mut segments: Vec<String> = Vec::new();
                let mut depth = 0usize;
                let mut trait_impl = false;
                while let Some(t) = toks.get(j) {
                    match t {
                        Tok::Punct('<') => depth += 1,
                        Tok::Punct('>') => depth = depth.saturating_sub(1),
                        Tok::Punct('{' | ';') => break,
                        Tok::Ident(w) if depth == 0 && (w == "for" || w == "where") => {
                            trait_impl = w == "for";
                            break;
                        }
                        Tok::Ident(w) if depth == 0 => segments.push(w.clone()),
                        _ => {}
                    }
                    j += 1;
                }
                let Some(name) = segments.last().cloned() else { continue };
                if trait_impl {
                    continue;
                }
                let home = if segments.len() == 1 && module.items.contains(&name) {
                    path.clone()
                } else {
                    match absolute(path, &module.children, &module.imports, &segments) {
                        Some(abs) => self.target(&abs, 0),
                        None if segments.len() == 1 => path.clone(),
                        None => continue,
                    }
                };
                let mut key = home.clone();
                key.push(name);
                out.entry(key.join("::")).or_default().insert(if path.is_empty() {
                    "crate".to_owned()
                } else {
                    path.join("::")
                });
            }
        }
        out
    }

    /// The import circles: at each module, the strongly connected components (of two or more)
    /// among its child modules, each child standing for everything under it and named by its
    /// path (`connection::attempt`). A module's own file is no member: a child builds on its
    /// parent, and the parent declares its children, re-exports them and dispatches to them.
    pub(super) fn circles(&self) -> Vec<BTreeSet<String>> {
        let mut graphs: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (from, to) in self.references() {
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue;
            }
            let (a, b) = (from[..=common].join("::"), to[..=common].join("::"));
            graphs.entry(from[..common].to_vec()).or_default().entry(a).or_default().insert(b);
        }
        let mut out = Vec::new();
        for graph in graphs.values() {
            out.extend(strongly_connected(graph).into_iter().filter(|c| c.len() > 1));
        }
        out.sort();
        out
    }

    /// The fields of the struct `ty` defined in module `module` (`connection::nodes`; `""` is
    /// the crate root), each named (a tuple struct's by its index) with whether it carries a
    /// visibility modifier (`pub`, `pub(crate)`, `pub(super)`, `pub(in …)`), and the module's
    /// child modules outside tests (they see its private fields too). `None` if the module or
    /// the struct is not there. Test-only fields are left out.
    pub(super) fn struct_fields(&self, module: &str, ty: &str) -> Option<StructFields> {
        let path: ModPath =
            module.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let module = self.modules.get(&path)?;
        let toks = &module.toks;
        let at = (0..toks.len()).find(|&i| {
            toks[i] == Tok::Ident("struct".into())
                && toks.get(i + 1) == Some(&Tok::Ident(ty.to_owned()))
        })?;
        let mut i = at + 2;
        if toks.get(i) == Some(&Tok::Punct('<')) {
            i = bracket_end(toks, i);
        }
        // A `where` clause comes before named fields and after a tuple's.
        while i < toks.len() && !matches!(toks[i], Tok::Punct('{' | '(' | ';')) {
            i += 1;
        }
        let fields = match toks.get(i) {
            Some(Tok::Punct(open @ ('{' | '('))) => {
                fields(&toks[i + 1..bracket_end(toks, i) - 1], *open == '(')
            }
            _ => Vec::new(),
        };
        Some(StructFields { fields, children: module.children.iter().cloned().collect() })
    }
}

/// A struct's fields, as [`Crate::struct_fields`] reads them.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct StructFields {
    /// Each field's name (a tuple struct's index) and whether it has a visibility modifier.
    pub(super) fields: Vec<(String, bool)>,
    /// The child modules of the struct's module.
    pub(super) children: Vec<String>,
}

/// The index after the bracket (`(`, `[`, `{` or `<`) that closes the one at `open`; a `>`
/// of `->` closes nothing.
fn bracket_end(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0usize;
    let mut arrow = false;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct('(' | '[' | '{' | '<') => depth += 1,
            Tok::Punct('>') if arrow => {}
            Tok::Punct(')' | ']' | '}' | '>') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        arrow = *t == Tok::Punct('-');
    }
    toks.len()
}

/// The fields in `body` (the tokens between a struct's brackets): each named (`tuple`: by its
/// index) with whether it carries a visibility modifier.
fn fields(body: &[Tok], tuple: bool) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        // The field's own end: its `,` outside any bracket of its type.
        let mut end = i;
        while end < body.len() && body[end] != Tok::Punct(',') {
            end = match body[end] {
                Tok::Punct('(' | '[' | '{' | '<') => bracket_end(body, end),
                _ => end + 1,
            };
        }
        let mut j = i;
        while let Some((after, _)) = attribute(body, j) {
            j = after;
        }
        if j < end {
            let visible = body[j] == Tok::Ident("pub".into());
            if visible {
                j += 1;
                if body.get(j) == Some(&Tok::Punct('(')) {
                    j = bracket_end(body, j);
                }
            }
            let name = match (tuple, body.get(j)) {
                (false, Some(Tok::Ident(name))) => name.clone(),
                _ => out.len().to_string(),
            };
            out.push((name, visible));
        }
        i = end + 1;
    }
    out
}

/// What a `use` leaf brings in: a name (its own or an `as` alias) or a glob.
enum UseName {
    Name(String),
    Glob,
}

/// The leaves of the use tree `toks` under `prefix`: each a path and the name it brings in.
fn use_tree(toks: &[Tok], prefix: &[String], out: &mut Vec<(ModPath, UseName)>) {
    // Split at top-level commas.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth -= 1,
            Tok::Punct(',') if depth == 0 => {
                parts.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&toks[start..]);
    for part in parts {
        let mut path = prefix.to_vec();
        let mut i = 0;
        // A leading `::` (an extern crate), `pub` or `pub(crate)` never reach here: `use` came
        // after them; a leading `::` marks an extern path.
        if part.first() == Some(&Tok::Sep) {
            continue;
        }
        loop {
            match part.get(i) {
                Some(Tok::Ident(w)) if w == "as" => {
                    if let Some(Tok::Ident(alias)) = part.get(i + 1) {
                        out.push((path.clone(), UseName::Name(alias.clone())));
                    }
                    break;
                }
                Some(Tok::Ident(w)) => {
                    if w == "self" && !path.is_empty() && i == 0 && !prefix.is_empty() {
                        // `a::{self, …}`: the module `a` itself.
                        let name = path.last().cloned().unwrap_or_default();
                        let alias = match part.get(1) {
                            Some(Tok::Ident(a)) if a == "as" => match part.get(2) {
                                Some(Tok::Ident(n)) => n.clone(),
                                _ => name,
                            },
                            _ => name,
                        };
                        out.push((path.clone(), UseName::Name(alias)));
                        break;
                    }
                    path.push(w.clone());
                    i += 1;
                    if part.get(i) == Some(&Tok::Sep) {
                        i += 1;
                    } else if !matches!(part.get(i), Some(Tok::Ident(a)) if a == "as") {
                        out.push((path.clone(), UseName::Name(w.clone())));
                        break;
                    }
                }
                Some(Tok::Punct('*')) => {
                    out.push((path.clone(), UseName::Glob));
                    break;
                }
                Some(Tok::Punct('{')) => {
                    let end = block_end(part, i);
                    use_tree(&part[i + 1..end - 1], &path, out);
                    break;
                }
                _ => break,
            }
        }
    }
}

/// `segments` (a path written in module `at`) as an absolute path in the crate, if it starts
/// in the crate: with `crate`, `super`, `self`, a child module's name, or a name `imports` has.
fn absolute(
    at: &[String],
    children: &BTreeSet<String>,
    imports: &BTreeMap<String, Vec<String>>,
    segments: &[String],
) -> Option<ModPath> {
    let (first, rest) = segments.split_first()?;
    let mut base: ModPath = match first.as_str() {
        "crate" => Vec::new(),
        "self" => at.to_vec(),
        "super" => at[..at.len().checked_sub(1)?].to_vec(),
        name if children.contains(name) => {
            let mut p = at.to_vec();
            p.push(name.to_owned());
            p
        }
        name => imports.get(name)?.clone(),
    };
    let mut rest = rest;
    if first == "super" {
        while rest.first().is_some_and(|s| s == "super") {
            base.pop()?;
            rest = &rest[1..];
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The names `toks` defines at any depth: `fn`, `struct`, `enum`, `union`, `trait`, `type`,
/// `const`, `static` and `macro_rules!` names.
fn items(toks: &[Tok]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for w in toks.windows(3) {
        if let [Tok::Ident(k), Tok::Punct('!'), Tok::Ident(name)] = w
            && k == "macro_rules"
        {
            out.insert(name.clone());
        }
        if let [Tok::Ident(k), Tok::Ident(name), _] = w
            && matches!(
                k.as_str(),
                "fn" | "struct" | "enum" | "union" | "trait" | "type" | "const" | "static"
            )
        {
            out.insert(name.clone());
        }
    }
    out
}

/// Tarjan's strongly connected components of `graph`.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let low = s.low[v].min(s.low[w.as_str()]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w.as_str()) {
                let low = s.low[v].min(s.index[w.as_str()]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The root file of the library crate in `dir` (`crates/core`).
pub(super) fn lib_root(dir: &Path) -> PathBuf {
    dir.join("src/lib.rs")
}

/// Why the modules of `circle` depend on each other: the references between modules under its
/// members, `from → to` (for the failure message).
pub(super) fn explain(krate: &Crate, circle: &BTreeSet<String>) -> Vec<String> {
    let member = |p: &ModPath| {
        let name = p.join("::");
        circle.iter().find(|c| name == **c || name.starts_with(&format!("{c}::"))).cloned()
    };
    krate
        .references()
        .into_iter()
        .filter(|(a, b)| member(a).is_some_and(|m| member(b).is_some_and(|n| m != n)))
        .map(|(a, b)| format!("{} → {}", a.join("::"), b.join("::")))
        .collect()
}
