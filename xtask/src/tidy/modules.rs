//! The module graph of a library crate, for the tidy tests that read a crate's structure: import
//! circles, where a type's inherent impls live, which fields and parts a component hands out.
//!
//! Each file is parsed with `syn`, so comments, literals, raw strings and nested generics are the
//! compiler's own reading, not a guess. `#[cfg(test)]` items, statements and fields are left out
//! (test code is not part of the crate's structure); `use` trees and `crate::`/`super::`/`self::`
//! paths are resolved through the module tree and through re-exports (`pub use`, and the private
//! `use`s a child module sees). Paths inside macro invocations and attribute arguments are read
//! from their tokens. Circles are looked for among siblings: at each module, between its child
//! modules (a child standing for everything under it) and the module's own file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Attribute, ImplItem, Item, Type, UseTree, Visibility};

/// One module: its own items (its inline and file child modules left out), its children.
#[derive(Default)]
struct Module {
    /// Its items, its child modules and test code left out.
    code: Vec<Item>,
    /// The paths its code names.
    names: Names,
    children: BTreeSet<String>,
    /// Names this module's `use`s bring in, as absolute paths (`[]` is the crate root).
    imports: BTreeMap<String, Vec<String>>,
    /// Modules (absolute paths) whose items a `use …::*` brings in.
    globs: Vec<Vec<String>>,
    /// Items defined at the module's top level (functions, types, traits, constants, statics,
    /// macros).
    items: BTreeSet<String>,
}

/// A crate's modules, by absolute path (`[]` is the root).
pub(super) struct Crate {
    modules: BTreeMap<Vec<String>, Module>,
}

type ModPath = Vec<String>;

/// A part a component's method hands out, as [`Crate::handed_out`] finds it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Handout {
    /// The method's name.
    pub(super) method: String,
    /// What it hands out, as message text: a component (`` `module::Type` ``) or a lock or weak
    /// handle (`` `Mutex` ``), and the struct of this crate it is in, if any (`` in `plan::Around` ``).
    pub(super) part: String,
    /// The method's return type, as compact text.
    pub(super) returns: String,
}

/// Handles whose holder shares the state behind them: a method returning one (or a reference
/// to one) hands out that state.
const SHARED_STATE: &[&str] =
    &["Mutex", "RwLock", "Weak", "MutexGuard", "RwLockReadGuard", "RwLockWriteGuard"];

/// Owning pointers that share what they point to, like a reference does.
const SHARING: &[&str] = &["Arc", "Rc"];

impl Crate {
    /// Reads the crate whose root file is `root` (`src/lib.rs`).
    pub(super) fn read(root: &Path) -> Crate {
        let mut krate = Crate { modules: BTreeMap::new() };
        let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
        krate.add(Vec::new(), parse(root), &dir);
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

    /// Adds the module at `path` whose items are `code`; its child module files are under `dir`.
    fn add(&mut self, path: ModPath, code: Vec<Item>, dir: &Path) {
        let mut module = Module::default();
        let mut children = Vec::new();
        for item in code {
            match item {
                Item::Mod(m) => children.push(m),
                item => module.code.push(item),
            }
        }
        module.children = children.iter().map(|m| name(&m.ident)).collect();
        module.items = module.code.iter().filter_map(item_name).collect();
        module.code.iter().for_each(|item| module.names.visit_item(item));
        self.modules.insert(path.clone(), module);
        for m in children {
            let name = name(&m.ident);
            let mut child = path.clone();
            child.push(name.clone());
            let code = match m.content {
                Some((_, code)) => code,
                None => {
                    let file = [dir.join(format!("{name}.rs")), dir.join(&name).join("mod.rs")]
                        .into_iter()
                        .find(|f| f.is_file())
                        .unwrap_or_else(|| {
                            panic!("module {name} under {}: no file", dir.display())
                        });
                    parse(&file)
                }
            };
            self.add(child, code, &dir.join(&name));
        }
    }

    /// Fills each module's `imports` and `globs` from its `use` declarations.
    fn resolve_imports(&mut self) {
        for (path, module) in &mut self.modules {
            for (segments, alias) in &module.names.uses {
                let Some(abs) = absolute(path, &module.children, &module.imports, segments) else {
                    continue;
                };
                match alias {
                    None => module.globs.push(abs),
                    Some(name) if name != "_" => {
                        module.imports.insert(name.clone(), abs);
                    }
                    Some(_) => {}
                }
            }
        }
    }

    /// The module whose item the absolute path `abs` names (following re-exports), if the path
    /// leads into this crate.
    fn target(&self, abs: &[String], depth: usize) -> ModPath {
        self.target_via(abs, depth, &mut Vec::new())
    }

    /// [`target`](Self::target), noting in `via` each module whose re-export (a `use` of its
    /// own, or a glob) the path went through: naming an item through a module names that
    /// module too, wherever the item lives.
    fn target_via(&self, abs: &[String], depth: usize, via: &mut Vec<ModPath>) -> ModPath {
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
                    via.push(at.clone());
                    let mut next = imported.clone();
                    next.extend_from_slice(tail);
                    return self.target_via(&next, depth + 1, via);
                }
                for glob in &module.globs {
                    let mut next = glob.clone();
                    next.extend_from_slice(rest);
                    let mut inner = Vec::new();
                    let found = self.target_via(&next, depth + 1, &mut inner);
                    if self.modules[&found].items.contains(&rest[0]) || found.len() > glob.len() {
                        via.push(at.clone());
                        via.extend(inner);
                        return found;
                    }
                }
            }
            break;
        }
        at
    }

    /// The item `segments` (a path written in module `at`) names, as `module::Name` by the
    /// module that defines it (`Name` at the crate root); a single name nothing imports is one
    /// of `at`'s own. `None` for a longer path that does not start in this crate.
    fn resolve(&self, at: &ModPath, segments: &[String]) -> Option<String> {
        let module = &self.modules[at];
        let name = segments.last()?;
        let home = if segments.len() == 1 && module.items.contains(name) {
            at.clone()
        } else {
            match absolute(at, &module.children, &module.imports, segments) {
                Some(abs) => self.target(&abs, 0),
                None if segments.len() == 1 => at.clone(),
                None => return None,
            }
        };
        Some(home.iter().chain([name]).cloned().collect::<Vec<_>>().join("::"))
    }

    /// Every module a module names: `(from, to)` pairs of absolute module paths, `from != to`.
    /// A name reached through another module's re-export names that module too (an arrow back
    /// up through a parent's `pub use` is an arrow back up); a module's own imports are not.
    fn references(&self) -> BTreeSet<(ModPath, ModPath)> {
        let mut edges = BTreeSet::new();
        for (path, module) in &self.modules {
            let mut note = |abs: &[String]| {
                let mut via = Vec::new();
                edges.insert((path.clone(), self.target_via(abs, 0, &mut via)));
                for m in via.into_iter().filter(|m| m != path) {
                    edges.insert((path.clone(), m));
                }
            };
            // A `use` names what it imports, each leaf resolved from the module itself.
            for (segments, _) in &module.names.uses {
                if let Some(abs) = absolute(path, &module.children, &BTreeMap::new(), segments) {
                    note(&abs);
                }
            }
            for segments in &module.names.paths {
                if let Some(abs) = absolute(path, &module.children, &module.imports, segments) {
                    note(&abs);
                }
            }
        }
        edges.retain(|(a, b)| a != b);
        edges
    }

    /// The inherent `impl` blocks of the crate (`impl Type { … }`, not `impl Trait for Type`),
    /// each with the type it is for (`module::Type`, by the module that defines it) and the
    /// module it is in. Blocks inside functions count; test code does not.
    fn inherent_blocks(&self) -> Vec<(String, &ModPath, &syn::ItemImpl)> {
        let mut out = Vec::new();
        for (path, module) in &self.modules {
            let mut impls = Impls::default();
            module.code.iter().for_each(|item| impls.visit_item(item));
            for block in impls.0 {
                let Type::Path(ty) = &*block.self_ty else { continue };
                if ty.qself.is_some() || ty.path.leading_colon.is_some() {
                    continue;
                }
                let segments: Vec<String> =
                    ty.path.segments.iter().map(|s| name(&s.ident)).collect();
                if let Some(home) = self.resolve(path, &segments) {
                    out.push((home, path, block));
                }
            }
        }
        out
    }

    /// Every type with inherent `impl` blocks (`impl Type { … }`, not `impl Trait for Type`),
    /// named `module::Type` by the module that defines it, with the modules its blocks are in.
    /// An inline module counts as its own; test code is left out.
    pub(super) fn inherent_impls(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (ty, path, _) in self.inherent_blocks() {
            let module = if path.is_empty() { "crate".to_owned() } else { path.join("::") };
            out.entry(ty).or_default().insert(module);
        }
        out
    }

    /// The methods of `ty` (`module::Type`) with a visibility modifier that hand out a part of
    /// it: their return type holds, behind a reference or a shared pointer (`&`, `Arc`, `Rc`),
    /// one of `components` (`module::Type` each) other than `ty` itself, or a lock or weak handle
    /// ([`SHARED_STATE`]). Such a method lets its caller work on the part instead of asking `ty`
    /// to do the work. A struct of this crate in the return type is looked into (a view like
    /// `Around<'_> { pub(crate) causality: &Causality }`, a handle like `NodeRef(Arc<Node>)`).
    pub(super) fn handed_out(&self, ty: &str, components: &BTreeSet<String>) -> Vec<Handout> {
        let parts = Parts { krate: self, owner: ty, components };
        let mut out = Vec::new();
        for (home, path, block) in self.inherent_blocks() {
            if home != ty {
                continue;
            }
            for item in &block.items {
                let ImplItem::Fn(f) = item else { continue };
                let syn::ReturnType::Type(_, returns) = &f.sig.output else { continue };
                if matches!(f.vis, Visibility::Inherited) {
                    continue;
                }
                if let Some(part) = parts.find(path, returns, false, 0) {
                    out.push(Handout {
                        method: name(&f.sig.ident),
                        part,
                        returns: type_text(returns),
                    });
                }
            }
        }
        out
    }

    /// The struct `key` (`module::Name`, as [`Crate::resolve`] names it) and its module.
    fn struct_def(&self, key: &str) -> Option<(ModPath, &syn::ItemStruct)> {
        let mut path: ModPath =
            key.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let name = path.pop()?;
        let found = self.modules.get(&path)?.code.iter().find_map(|item| match item {
            Item::Struct(s) if s.ident == name => Some(s),
            _ => None,
        })?;
        Some((path, found))
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

    /// The arrows between the crate's top-level modules (a folder standing for everything
    /// under it): `(from, to)` for each top-level module whose code names an item of another,
    /// re-exports followed to the module that defines the item. The root file is no member.
    pub(super) fn top_level_arrows(&self) -> BTreeSet<(String, String)> {
        let mut arrows = self.arrows_under(&[]);
        arrows.retain(|(a, b)| a != "mod" && b != "mod");
        arrows
    }

    /// The arrows between the child modules of `parent` (`["connection"]`), each standing for
    /// everything under it, and `parent`'s own file, named `mod`: `(from, to)` for each whose
    /// code names an item of another (a `use`, or a path in code), re-exports followed to the
    /// module that defines the item.
    pub(super) fn arrows_under(&self, parent: &[&str]) -> BTreeSet<(String, String)> {
        let name = |m: &ModPath| -> Option<String> {
            let inside = m.len() >= parent.len() && m.iter().zip(parent).all(|(a, b)| a == b);
            inside.then(|| m.get(parent.len()).cloned().unwrap_or_else(|| "mod".to_owned()))
        };
        self.references()
            .into_iter()
            .filter_map(|(a, b)| Some((name(&a)?, name(&b)?)))
            .filter(|(a, b)| a != b)
            .collect()
    }

    /// The names of the crate root's child modules, test modules left out.
    pub(super) fn top_modules(&self) -> BTreeSet<String> {
        self.modules.keys().filter(|p| p.len() == 1).map(|p| p[0].clone()).collect()
    }

    /// Every function of the crate (free functions, methods, trait methods with a body;
    /// test code left out), with its length in lines.
    pub(super) fn functions(&self) -> Vec<Function> {
        let mut out = Vec::new();
        for (path, module) in &self.modules {
            let mut found = Functions { module: path.join("::"), owner: None, out: &mut out };
            module.code.iter().for_each(|item| found.visit_item(item));
        }
        out
    }

    /// Every method of the crate's `impl` blocks, inherent and trait (test code left out), with
    /// the call it only passes on, if that is all it does ([`Method::forwards_to`]).
    pub(super) fn methods(&self) -> Vec<Method> {
        let mut out = Vec::new();
        for module in self.modules.values() {
            let mut found = Methods { out: &mut out };
            module.code.iter().for_each(|item| found.visit_item(item));
        }
        out
    }

    /// The types of the named fields of the crate's structs: `(struct, field)` → the type's last
    /// path segment, looked through `Arc`, `Rc`, `Box`, `Option` and references (`Arc<Watchdog>`
    /// is `Watchdog`). Test code left out; several structs of one name share their entries.
    pub(super) fn field_types(&self) -> BTreeMap<(String, String), String> {
        let mut out = BTreeMap::new();
        for module in self.modules.values() {
            let mut found = Structs(&mut out);
            module.code.iter().for_each(|item| found.visit_item(item));
        }
        out
    }

    /// The fields of the struct `ty` defined in module `module` (`connection::nodes`; `""` is
    /// the crate root), each named (a tuple struct's by its index) with whether it carries a
    /// visibility modifier (`pub`, `pub(crate)`, `pub(super)`, `pub(in …)`, `pub(self)`), and
    /// the module's child modules outside tests (they see its private fields too). `None` if the
    /// module or the struct is not there. Test-only fields are left out.
    pub(super) fn struct_fields(&self, module: &str, ty: &str) -> Option<StructFields> {
        let (path, found) = self.struct_def(&format!("{module}::{ty}"))?;
        let fields = found
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let field = f.ident.as_ref().map_or_else(|| i.to_string(), name);
                (field, !matches!(f.vis, Visibility::Inherited))
            })
            .collect();
        let to_folder = found
            .fields
            .iter()
            .filter(|f| {
                matches!(&f.vis, Visibility::Restricted(r) if r.in_token.is_none() && r.path.is_ident("super"))
            })
            .filter_map(|f| f.ident.as_ref().map(name))
            .collect();
        let children = self.modules[&path].children.iter().cloned().collect();
        Some(StructFields { fields, to_folder, children })
    }

    /// The arrows among the child modules of `parent` (`[]`: the crate root), each child
    /// standing for everything under it: `(from, to)` by the children's names when code under
    /// `from` names an item defined under `to` (re-exports followed to the item's home). The
    /// parent's own file is no member. Test code is left out.
    pub(super) fn arrows_among_children(&self, parent: &[&str]) -> BTreeSet<(String, String)> {
        let n = parent.len();
        let under = |p: &ModPath| {
            (p.len() > n && p.iter().zip(parent).all(|(a, b)| a == b)).then(|| p[n].clone())
        };
        self.references()
            .into_iter()
            .filter_map(|(from, to)| Some((under(&from)?, under(&to)?)))
            .filter(|(a, b)| a != b)
            .collect()
    }
}

/// A struct's fields, as [`Crate::struct_fields`] reads them.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct StructFields {
    /// Each field's name (a tuple struct's index) and whether it has a visibility modifier.
    pub(super) fields: Vec<(String, bool)>,
    /// The named fields visible exactly to the parent module (`pub(super)`): its folder.
    pub(super) to_folder: Vec<String>,
    /// The child modules of the struct's module.
    pub(super) children: Vec<String>,
}

/// The items of the file at `file`, test code left out.
fn parse(file: &Path) -> Vec<Item> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    if test_only(&parsed.attrs) {
        return Vec::new();
    }
    WithoutTests.visit_file_mut(&mut parsed);
    parsed.items
}

/// An identifier as written, without a raw identifier's `r#`.
fn name(ident: &syn::Ident) -> String {
    ident.unraw().to_string()
}

/// The identifiers in `tokens`, at any depth.
fn idents(tokens: TokenStream) -> Vec<String> {
    let mut out = Vec::new();
    for t in tokens {
        match t {
            TokenTree::Ident(i) => out.push(i.to_string()),
            TokenTree::Group(g) => out.extend(idents(g.stream())),
            _ => {}
        }
    }
    out
}

/// Whether `attrs` hold a `cfg` that holds in tests only (`cfg(test)`, `cfg(all(test, …))`; not
/// `cfg(not(test))`).
fn test_only(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("cfg") && test_cfg(a.meta.to_token_stream()))
}

/// Whether `cfg` (an attribute's tokens) holds in tests only.
fn test_cfg(cfg: TokenStream) -> bool {
    let words = idents(cfg);
    words.first().is_some_and(|w| w == "cfg")
        && words.iter().any(|w| w == "test")
        && !words.iter().any(|w| w == "not")
}

/// Whether `node` (an item, impl item, statement, field or variant) is for tests only: one of
/// the outer attributes its tokens start with is a test-only `cfg`.
fn for_tests(node: &impl ToTokens) -> bool {
    let mut toks = node.to_token_stream().into_iter();
    while let (Some(TokenTree::Punct(p)), Some(TokenTree::Group(g))) = (toks.next(), toks.next()) {
        if p.as_char() != '#' {
            break;
        }
        if test_cfg(g.stream()) {
            return true;
        }
    }
    false
}

/// The name an item defines in its module's namespace, if any.
fn item_name(item: &Item) -> Option<String> {
    let ident = match item {
        Item::Const(i) => &i.ident,
        Item::Enum(i) => &i.ident,
        Item::Fn(i) => &i.sig.ident,
        Item::Macro(i) => i.ident.as_ref()?,
        Item::Static(i) => &i.ident,
        Item::Struct(i) => &i.ident,
        Item::Trait(i) => &i.ident,
        Item::TraitAlias(i) => &i.ident,
        Item::Type(i) => &i.ident,
        Item::Union(i) => &i.ident,
        _ => return None,
    };
    Some(name(ident))
}

/// Removes test-only items, impl and trait items, statements, fields and variants.
struct WithoutTests;

/// Keeps the nodes of `list` that are not for tests.
fn without_tests<T: ToTokens, P: Default>(list: &mut syn::punctuated::Punctuated<T, P>) {
    *list = std::mem::take(list).into_pairs().filter(|p| !for_tests(p.value())).collect();
}

impl VisitMut for WithoutTests {
    fn visit_file_mut(&mut self, file: &mut syn::File) {
        file.items.retain(|i| !for_tests(i));
        syn::visit_mut::visit_file_mut(self, file);
    }

    fn visit_item_mod_mut(&mut self, m: &mut syn::ItemMod) {
        if let Some((_, items)) = &mut m.content {
            items.retain(|i| !for_tests(i));
        }
        syn::visit_mut::visit_item_mod_mut(self, m);
    }

    fn visit_item_impl_mut(&mut self, block: &mut syn::ItemImpl) {
        block.items.retain(|i| !for_tests(i));
        syn::visit_mut::visit_item_impl_mut(self, block);
    }

    fn visit_item_trait_mut(&mut self, t: &mut syn::ItemTrait) {
        t.items.retain(|i| !for_tests(i));
        syn::visit_mut::visit_item_trait_mut(self, t);
    }

    fn visit_block_mut(&mut self, block: &mut syn::Block) {
        block.stmts.retain(|s| !for_tests(s));
        syn::visit_mut::visit_block_mut(self, block);
    }

    fn visit_fields_named_mut(&mut self, fields: &mut syn::FieldsNamed) {
        without_tests(&mut fields.named);
        syn::visit_mut::visit_fields_named_mut(self, fields);
    }

    fn visit_fields_unnamed_mut(&mut self, fields: &mut syn::FieldsUnnamed) {
        without_tests(&mut fields.unnamed);
        syn::visit_mut::visit_fields_unnamed_mut(self, fields);
    }

    fn visit_item_enum_mut(&mut self, e: &mut syn::ItemEnum) {
        without_tests(&mut e.variants);
        syn::visit_mut::visit_item_enum_mut(self, e);
    }
}

/// The paths a module's code names: its `use` leaves (each a path and the name it brings in,
/// `None` for a glob) and its other paths of two or more segments.
#[derive(Default)]
struct Names {
    uses: Vec<(ModPath, Option<String>)>,
    paths: Vec<ModPath>,
}

impl Names {
    /// The leaves of the use tree `tree` under `prefix`.
    fn use_tree(&mut self, tree: &UseTree, prefix: &mut ModPath) {
        match tree {
            UseTree::Path(p) => {
                prefix.push(name(&p.ident));
                self.use_tree(&p.tree, prefix);
                prefix.pop();
            }
            // `a::{self, …}` is the module `a` itself.
            UseTree::Name(n) if n.ident == "self" && !prefix.is_empty() => {
                self.uses.push((prefix.clone(), prefix.last().cloned()));
            }
            UseTree::Name(n) => {
                let leaf = prefix.iter().cloned().chain([name(&n.ident)]).collect();
                self.uses.push((leaf, Some(name(&n.ident))));
            }
            UseTree::Rename(r) => {
                let mut leaf = prefix.clone();
                if r.ident != "self" {
                    leaf.push(name(&r.ident));
                }
                self.uses.push((leaf, Some(name(&r.rename))));
            }
            UseTree::Glob(_) => self.uses.push((prefix.clone(), None)),
            UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(t, prefix)),
        }
    }

    /// The paths `a::b::c` in the tokens of a macro call or an attribute (not one that continues
    /// another, nor `$crate::`).
    fn tokens(&mut self, tokens: TokenStream) {
        let toks: Vec<TokenTree> = tokens.into_iter().collect();
        let punct = |i: usize, c: char| matches!(toks.get(i), Some(TokenTree::Punct(p)) if p.as_char() == c);
        let sep = |i: usize| {
            matches!(toks.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
                && punct(i + 1, ':')
        };
        let mut i = 0;
        while i < toks.len() {
            if let TokenTree::Group(g) = &toks[i] {
                self.tokens(g.stream());
            }
            let starts = matches!(toks[i], TokenTree::Ident(_))
                && sep(i + 1)
                && !(i >= 2 && sep(i - 2))
                && !(i >= 1 && punct(i - 1, '$'));
            if !starts {
                i += 1;
                continue;
            }
            let mut segments = Vec::new();
            while let Some(TokenTree::Ident(w)) = toks.get(i) {
                segments.push(name(w));
                i += 1;
                if !sep(i) {
                    break;
                }
                i += 2;
            }
            self.paths.push(segments);
        }
    }
}

impl<'ast> Visit<'ast> for Names {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        // A leading `::` marks an extern crate.
        if u.leading_colon.is_none() {
            self.use_tree(&u.tree, &mut Vec::new());
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() && p.segments.len() > 1 {
            self.paths.push(p.segments.iter().map(|s| name(&s.ident)).collect());
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }

    // `pub(in crate::connection)` says who may see an item, and names nothing it uses.
    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {}

    fn visit_meta_list(&mut self, m: &'ast syn::MetaList) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_meta_list(self, m);
    }
}

/// A function of a crate's code, as [`Crate::functions`] finds it.
pub(super) struct Function {
    /// Its module's path (`connection::attempt`; empty at the crate root).
    pub(super) module: String,
    /// Its name, after its type's or trait's for a method (`Inner::new`).
    pub(super) name: String,
    /// Lines from its `fn` to its closing brace, both counted.
    pub(super) lines: usize,
}

/// One method of an `impl` block, as [`Crate::methods`] finds it.
#[derive(Debug)]
pub(super) struct Method {
    /// The type the block is for, by its last path segment (`Inner`).
    pub(super) owner: String,
    /// The trait the block implements, if it is a trait's (`Samples`).
    pub(super) trait_: Option<String>,
    /// The method's name.
    pub(super) name: String,
    /// If the method's body is one call on a part of `self` (`self.routing.want(a, b)`,
    /// `self.state.health(node).await?`, `Self::f(&self.x)` not included) whose arguments are
    /// the method's own, unchanged: the part's field path (`routing`, `state.samples`) and the
    /// method called.
    pub(super) forwards_to: Option<(String, String)>,
}

/// Collects the methods of one module's code into `out`.
struct Methods<'o> {
    out: &'o mut Vec<Method>,
}

impl<'ast> Visit<'ast> for Methods<'_> {
    fn visit_item_impl(&mut self, block: &'ast syn::ItemImpl) {
        let owner = match &*block.self_ty {
            Type::Path(p) => p.path.segments.last().map(|s| name(&s.ident)),
            _ => None,
        };
        if let Some(owner) = owner {
            let trait_ = block
                .trait_
                .as_ref()
                .and_then(|(_, path, _)| path.segments.last().map(|s| name(&s.ident)));
            for item in &block.items {
                if let ImplItem::Fn(f) = item {
                    self.out.push(Method {
                        owner: owner.clone(),
                        trait_: trait_.clone(),
                        name: name(&f.sig.ident),
                        forwards_to: forward(&f.block),
                    });
                }
            }
        }
        syn::visit::visit_item_impl(self, block);
    }
}

/// Collects the field types of the structs in one module's code (see [`Crate::field_types`]).
struct Structs<'o>(&'o mut BTreeMap<(String, String), String>);

impl<'ast> Visit<'ast> for Structs<'_> {
    fn visit_item_struct(&mut self, s: &'ast syn::ItemStruct) {
        if let syn::Fields::Named(fields) = &s.fields {
            for f in &fields.named {
                let (Some(field), Some(ty)) = (&f.ident, held(&f.ty)) else { continue };
                self.0.insert((name(&s.ident), name(field)), ty);
            }
        }
        syn::visit::visit_item_struct(self, s);
    }
}

/// The type a field holds, by its last path segment, through `Arc`, `Rc`, `Box`, `Option` and
/// references.
fn held(ty: &Type) -> Option<String> {
    match ty {
        Type::Reference(r) => held(&r.elem),
        Type::Path(p) => {
            let last = p.path.segments.last()?;
            let ident = name(&last.ident);
            if ["Arc", "Rc", "Box", "Option"].contains(&ident.as_str()) {
                let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
                args.args.iter().find_map(|a| match a {
                    syn::GenericArgument::Type(t) => held(t),
                    _ => None,
                })
            } else {
                Some(ident)
            }
        }
        _ => None,
    }
}

/// The call a body only passes on (see [`Method::forwards_to`]), if it is one.
fn forward(block: &syn::Block) -> Option<(String, String)> {
    let [syn::Stmt::Expr(expr, _)] = block.stmts.as_slice() else { return None };
    let mut expr = expr;
    // Look through what does not change the call: `.await`, `?`, `&`, parentheses, a cast.
    loop {
        expr = match expr {
            syn::Expr::Await(e) => &e.base,
            syn::Expr::Try(e) => &e.expr,
            syn::Expr::Reference(e) => &e.expr,
            syn::Expr::Paren(e) => &e.expr,
            syn::Expr::Cast(e) => &e.expr,
            _ => break,
        };
    }
    let syn::Expr::MethodCall(call) = expr else { return None };
    let plain = |a: &syn::Expr| match a {
        syn::Expr::Path(_) | syn::Expr::Lit(_) => true,
        syn::Expr::Reference(r) => matches!(&*r.expr, syn::Expr::Path(_)),
        _ => false,
    };
    if !call.args.iter().all(plain) {
        return None;
    }
    let mut fields = Vec::new();
    let mut receiver = &*call.receiver;
    loop {
        match receiver {
            syn::Expr::Field(f) => {
                fields.push(f.member.to_token_stream().to_string());
                receiver = &f.base;
            }
            syn::Expr::Path(p) if p.path.is_ident("self") => break,
            _ => return None,
        }
    }
    if fields.is_empty() {
        return None;
    }
    fields.reverse();
    Some((fields.join("."), name(&call.method)))
}

/// Collects the functions of one module's code into `out`.
struct Functions<'o> {
    module: String,
    /// The type or trait whose `impl` or definition is being read.
    owner: Option<String>,
    out: &'o mut Vec<Function>,
}

impl Functions<'_> {
    fn push(&mut self, sig: &syn::Signature, block: &syn::Block) {
        let start = sig.fn_token.span.start().line;
        let end = block.brace_token.span.close().end().line;
        let name = match &self.owner {
            Some(owner) => format!("{owner}::{}", name(&sig.ident)),
            None => name(&sig.ident),
        };
        self.out.push(Function {
            module: self.module.clone(),
            name,
            lines: end.saturating_sub(start) + 1,
        });
    }
}

impl<'ast> Visit<'ast> for Functions<'_> {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        let owner = self.owner.take();
        self.push(&f.sig, &f.block);
        syn::visit::visit_item_fn(self, f);
        self.owner = owner;
    }

    fn visit_item_impl(&mut self, block: &'ast syn::ItemImpl) {
        let owner = match &*block.self_ty {
            Type::Path(p) => p.path.segments.last().map(|s| name(&s.ident)),
            ty => Some(type_text(ty)),
        };
        let outer = std::mem::replace(&mut self.owner, owner);
        syn::visit::visit_item_impl(self, block);
        self.owner = outer;
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        let outer = self.owner.replace(name(&t.ident));
        syn::visit::visit_item_trait(self, t);
        self.owner = outer;
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.push(&f.sig, &f.block);
        let owner = self.owner.take();
        syn::visit::visit_impl_item_fn(self, f);
        self.owner = owner;
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.push(&f.sig, block);
        }
        let owner = self.owner.take();
        syn::visit::visit_trait_item_fn(self, f);
        self.owner = owner;
    }
}

/// The inherent `impl` blocks of a module's code, at any depth.
#[derive(Default)]
struct Impls<'ast>(Vec<&'ast syn::ItemImpl>);

impl<'ast> Visit<'ast> for Impls<'ast> {
    fn visit_item_impl(&mut self, block: &'ast syn::ItemImpl) {
        if block.trait_.is_none() {
            self.0.push(block);
        }
        syn::visit::visit_item_impl(self, block);
    }
}

/// What [`Crate::handed_out`] looks for in the return types of `owner`'s methods.
struct Parts<'c> {
    krate: &'c Crate,
    owner: &'c str,
    components: &'c BTreeSet<String>,
}

impl Parts<'_> {
    /// The part of `owner` the type `ty` (written in module `at`) gives access to, if any: a
    /// component or a [`SHARED_STATE`] handle, held behind a reference or a [`SHARING`] pointer
    /// (`shared`: `ty` is behind one already). Wrappers (`Option`, `Result`, `Vec`, tuples,
    /// `impl Iterator<Item = …>`) are looked through, and so are the fields of this crate's
    /// structs, to a small `depth`: a component's fields all (a component holding another one's
    /// state, like `NodeRef(Arc<Node>)`, is the part itself), another struct's fields only where
    /// its holder reaches them (with a visibility modifier; its private ones are behind its own
    /// methods).
    fn find(&self, at: &ModPath, ty: &Type, shared: bool, depth: usize) -> Option<String> {
        let args = |args: &syn::PathArguments, shared: bool| match args {
            syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|a| match a {
                syn::GenericArgument::Type(t) => self.find(at, t, shared, depth),
                syn::GenericArgument::AssocType(t) => self.find(at, &t.ty, shared, depth),
                _ => None,
            }),
            _ => None,
        };
        match ty {
            Type::Reference(r) => self.find(at, &r.elem, true, depth),
            Type::Paren(p) => self.find(at, &p.elem, shared, depth),
            Type::Group(g) => self.find(at, &g.elem, shared, depth),
            Type::Slice(s) => self.find(at, &s.elem, shared, depth),
            Type::Array(a) => self.find(at, &a.elem, shared, depth),
            Type::Tuple(t) => t.elems.iter().find_map(|t| self.find(at, t, shared, depth)),
            Type::ImplTrait(t) => t.bounds.iter().find_map(|b| match b {
                syn::TypeParamBound::Trait(t) => {
                    t.path.segments.iter().find_map(|s| args(&s.arguments, shared))
                }
                _ => None,
            }),
            Type::Path(p) => {
                let last = p.path.segments.last()?;
                let word = name(&last.ident);
                if SHARED_STATE.contains(&word.as_str())
                    && (shared || word != "Mutex" && word != "RwLock")
                {
                    return Some(format!("`{word}`"));
                }
                if SHARING.contains(&word.as_str()) {
                    return args(&last.arguments, true);
                }
                let segments: Vec<String> =
                    p.path.segments.iter().map(|s| name(&s.ident)).collect();
                let found = self.krate.resolve(at, &segments).filter(|f| f != self.owner);
                if let Some(found) = found.filter(|_| p.qself.is_none()) {
                    let component = self.components.contains(&found);
                    if shared && component {
                        return Some(format!("`{found}`"));
                    }
                    let def = self.krate.struct_def(&found).filter(|_| depth < 3);
                    if let Some((home, def)) = def
                        && let Some(inner) = def
                            .fields
                            .iter()
                            .filter(|f| component || !matches!(f.vis, Visibility::Inherited))
                            .find_map(|f| self.find(&home, &f.ty, shared, depth + 1))
                    {
                        return Some(if component {
                            format!("`{found}`")
                        } else {
                            format!("{inner} in `{found}`")
                        });
                    }
                }
                args(&last.arguments, shared)
            }
            _ => None,
        }
    }
}

/// A type as compact text: `&Mutex<Vec<u8>>`, `Option<&Node>`.
pub(super) fn type_text(ty: &Type) -> String {
    let text = ty.to_token_stream().to_string();
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '\'';
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let keep = c != ' '
            || (i > 0 && word(chars[i - 1]) && chars.get(i + 1).is_some_and(|&n| word(n)))
            || (i > 0 && chars[i - 1] == ',');
        if keep {
            out.push(c);
        }
    }
    out.replace("->", " -> ").replace('=', " = ").replace('+', " + ")
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

/// The strongly connected components of `graph`: each node with the nodes it reaches and that
/// reach it back. The graphs are a module's children, a few dozen nodes at most.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::from([from.clone()]);
        let mut todo = vec![from];
        while let Some(v) = todo.pop() {
            for w in graph.get(v).into_iter().flatten() {
                if seen.insert(w.clone()) {
                    todo.push(w);
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|v| (v, reach(v))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for (v, seen) in &reached {
        let component = seen
            .iter()
            .filter(|w| reached.get(w).is_some_and(|r| r.contains(*v)))
            .cloned()
            .collect();
        if !out.contains(&component) {
            out.push(component);
        }
    }
    out
}

/// The root file of the library crate in `dir` (`crates/core`).
/// The checkout the structure tests read: `RWSPLIT_LAYOUT_ROOT` if set (another checkout, a
/// `git worktree` of an older commit, whose figures are printed and nothing checked: `true`),
/// else this one.
pub(super) fn checkout() -> (PathBuf, bool) {
    match std::env::var_os("RWSPLIT_LAYOUT_ROOT") {
        Some(other) => (PathBuf::from(other), true),
        None => (crate::project_root(), false),
    }
}

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
