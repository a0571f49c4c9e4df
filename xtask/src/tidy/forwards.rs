//! Forwarding: a method whose whole body passes its call on to one part of `self`. One such
//! step is how a part that owns a state offers it; the same operation re-declared along a
//! chain of them (`A::f` → `self.b.f`, where `B::f` → `self.c.f`) is a nest of forwards, each
//! level a file a reader passes through to reach the state. `cargo test -p xtask forwards --
//! --nocapture` prints, for each type of the adapter, its methods and its forwards; the test
//! fails on a chain of two forwards or more under one name. With `RWSPLIT_LAYOUT_ROOT` set to
//! another checkout (a `git worktree` of an older commit) it prints that one's and checks
//! nothing.

use std::collections::BTreeMap;

use super::modules::{self, Crate, Method};

/// The crates read together: a chain may end in another crate (the adapter's view of the
/// monitor's `TopologyState`).
const CRATES: &[&str] = &["core", "monitor", "sea-orm", "web", "axum"];

/// Each chain of forwards under one name, as its types in order (`A::f → B::f → C::f`): a
/// forward to a part (its field's type resolved through `fields`) whose method of that name is
/// a forward itself. Only the longest chains are listed (none that another one ends).
fn chains(methods: &[Method], fields: &BTreeMap<(String, String), String>) -> Vec<String> {
    let by_key: BTreeMap<(&str, &str), &Method> =
        methods.iter().map(|m| ((m.owner.as_str(), m.name.as_str()), m)).collect();
    // The type a forward passes its call to, if its part's type is known and declares the name.
    let next = |m: &Method| -> Option<&Method> {
        let (part, to) = m.forwards_to.as_ref()?;
        if *to != m.name {
            return None;
        }
        let mut ty = m.owner.clone();
        for field in part.split('.') {
            ty = fields.get(&(ty, field.to_owned()))?.clone();
        }
        by_key.get(&(ty.as_str(), m.name.as_str())).copied()
    };
    let called: Vec<(&str, &str)> =
        methods.iter().filter_map(next).map(|m| (m.owner.as_str(), m.name.as_str())).collect();
    let mut out = Vec::new();
    for m in methods {
        if called.contains(&(m.owner.as_str(), m.name.as_str())) {
            continue;
        }
        let mut path = vec![format!("{}::{}", m.owner, m.name)];
        let mut at = m;
        let mut forwards = 0;
        while let Some(n) = next(at) {
            forwards += 1;
            path.push(format!("{}::{}", n.owner, n.name));
            at = n;
            if path.len() > 8 {
                break;
            }
        }
        if forwards >= 2 {
            out.push(path.join(" → "));
        }
    }
    out
}

/// Prints each adapter type's methods and forwards (`--nocapture`) and fails on a chain of
/// forwards (see the module's doc).
#[test]
fn no_operation_is_forwarded_along_a_chain() {
    let (root, other) = modules::checkout();
    let mut all = Vec::new();
    let mut fields = BTreeMap::new();
    for c in CRATES {
        let lib = modules::lib_root(&root.join("crates").join(c));
        if other && !lib.is_file() {
            continue;
        }
        let krate = Crate::read(&lib);
        let mut methods = krate.methods();
        fields.extend(krate.field_types());
        if *c == "sea-orm" {
            let mut per_type: BTreeMap<&str, (usize, Vec<String>)> = BTreeMap::new();
            for m in &methods {
                let entry = per_type.entry(&m.owner).or_default();
                entry.0 += 1;
                if let Some((part, to)) = &m.forwards_to {
                    let of = m.trait_.as_ref().map(|t| format!(" ({t})")).unwrap_or_default();
                    entry.1.push(format!("{}{of} → {part}.{to}", m.name));
                }
            }
            let mut rows: Vec<_> = per_type.into_iter().collect();
            rows.sort_by_key(|(_, (n, _))| std::cmp::Reverse(*n));
            println!("adapter types by methods: methods, forwards (a whole body passed to a part)");
            for (ty, (n, fwd)) in rows.iter().take(12) {
                println!("  {ty}: {n} methods, {} forwards", fwd.len());
                for f in fwd {
                    println!("      {f}");
                }
            }
        }
        all.append(&mut methods);
    }
    let mut owners: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in &all {
        let mark = match &m.forwards_to {
            Some((part, to)) if *to == m.name => format!(" → {part}"),
            _ => String::new(),
        };
        owners.entry(&m.name).or_default().push(format!("{}{mark}", m.owner));
    }
    for (name, on) in
        owners.iter().filter(|(_, on)| on.len() >= 3 && on.iter().any(|o| o.contains('→')))
    {
        println!("on {} types, passed on: {name}: {}", on.len(), on.join(", "));
    }
    let chains = chains(&all, &fields);
    for chain in &chains {
        println!("chain: {chain}");
    }
    if !other {
        assert!(chains.is_empty(), "operations forwarded along a chain of types: {chains:#?}");
    }
}

/// `A::f` → `B::f` → `C::f` is a chain; one forward (`D::g` → `C::g`) is how a part offers its
/// state, and a call whose argument is computed is no forward.
#[test]
fn a_chain_is_two_forwards_under_one_name() {
    let krate = Crate::from_files(&[(
        "lib.rs",
        "struct A { b: B } struct B { c: std::sync::Arc<C> } struct C; struct D { c: C }\n\
         impl A { fn f(&self, x: u8) -> u8 { self.b.f(x) } fn g(&self) { self.b.g() } }\n\
         impl B { fn f(&self, x: u8) -> u8 { self.c.f(x) } fn g(&self) { let _ = 1; } }\n\
         impl C { fn f(&self, x: u8) -> u8 { x } fn g(&self) {} fn h(&self, _: u8) {} }\n\
         impl D { fn g(&self) { self.c.g() } fn h(&self, x: u8) { self.c.h(x + 1) } }\n",
    )]);
    let methods = krate.methods();
    assert_eq!(chains(&methods, &krate.field_types()), ["A::f → B::f → C::f"]);
    let h = methods.iter().find(|m| m.owner == "D" && m.name == "h").expect("D::h");
    assert_eq!(h.forwards_to, None, "an argument computed is no forward");
}
