//! `cargo xtask guide`: the user guide (`docs/guide/`, an mdBook). Builds it with mdbook
//! (installed at a pinned version if this machine lacks it), checks its links, and compiles its
//! Rust samples as doc tests (`examples/guide.rs`). CI's "guide" phase (whose samples ran
//! with every doc test in its unit phase).
//!
//! The link check reads the Markdown sources, as a reader of the repository follows them: every
//! page `SUMMARY.md` lists exists, every `{{#include …}}` names a file, every relative link
//! names a file or directory of the repository, and every `#anchor` names a heading of its page
//! (mdBook's and GitHub's heading ids: lower case, spaces to `-`, other punctuation dropped).
//! mdbook itself checks none of that.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;

/// The mdbook CI installs if missing. Without its default features (`watch`, `serve`,
/// `search`): building is all CI does, and they would add a web server's crates to compile.
pub(crate) const MDBOOK_VERSION: &str = "0.5.4";

/// Where the guide lives, from the workspace root.
pub(crate) const GUIDE: &str = "docs/guide";

#[derive(Debug, Args)]
pub(crate) struct GuideArgs {
    /// Pass `--locked` to cargo (the samples' build, mdbook's install).
    #[arg(long)]
    locked: bool,
    /// The samples have run already: they are doc tests of `rwsplit-examples`, a default
    /// member, so CI's `cargo test` ran them in its unit phase.
    #[arg(skip)]
    samples_ran: bool,
}

impl GuideArgs {
    /// CI's settings: the samples ran with the unit phase's doc tests.
    pub(crate) fn for_ci(locked: bool) -> Self {
        GuideArgs { locked, samples_ran: true }
    }
}

pub(crate) fn run(args: &GuideArgs) -> anyhow::Result<()> {
    let root = crate::project_root();
    let problems = check_links(&root);
    if !problems.is_empty() {
        bail!("the guide's links:\n  {}", problems.join("\n  "));
    }
    eprintln!("xtask: the guide's links resolve");
    let mdbook = mdbook()?;
    crate::run(Command::new(&mdbook).arg("build").arg(root.join(GUIDE)))?;
    if args.samples_ran {
        eprintln!("xtask: the guide's samples ran with the doc tests (`cargo test`)");
        return Ok(());
    }
    let mut samples = crate::cargo();
    samples.args(["test", "-p", "rwsplit-examples", "--doc"]);
    if args.locked {
        samples.arg("--locked");
    }
    crate::run(&mut samples)
}

/// An mdbook of [`MDBOOK_VERSION`]: on `PATH` or in cargo's `bin` directory, else installed
/// there with `cargo install` (timed, like every command xtask runs).
fn mdbook() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let installed = home.join("bin").join("mdbook");
    for candidate in [PathBuf::from("mdbook"), installed.clone()] {
        let version = Command::new(&candidate).arg("--version").output();
        if version.is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).trim() == format!("mdbook v{MDBOOK_VERSION}")
        }) {
            return Ok(candidate);
        }
    }
    eprintln!(
        "xtask: mdbook {MDBOOK_VERSION} is missing: installing it (minutes, once per machine)"
    );
    // Unoptimised (`--debug`): it compiles in about half the time of a release build, and a
    // book of a dozen pages renders in well under a second either way.
    crate::run(crate::cargo().args([
        "install",
        "mdbook",
        "--locked",
        "--version",
        MDBOOK_VERSION,
        "--no-default-features",
        "--debug",
    ]))?;
    Ok(installed)
}

/// The pages `SUMMARY.md` lists, as paths relative to the guide.
pub(crate) fn summary_pages(root: &Path) -> Vec<String> {
    let summary = std::fs::read_to_string(root.join(GUIDE).join("SUMMARY.md")).unwrap_or_default();
    links(&summary)
        .into_iter()
        .filter(|l| !l.contains("://"))
        .map(|l| l.split('#').next().unwrap_or_default().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Every problem with the guide's links (empty: none).
pub(crate) fn check_links(root: &Path) -> Vec<String> {
    let guide = root.join(GUIDE);
    let mut problems = Vec::new();
    let pages = summary_pages(root);
    if pages.is_empty() {
        problems.push(format!("{GUIDE}/SUMMARY.md lists no page"));
    }
    for page in &pages {
        let path = guide.join(page);
        let Ok(text) = std::fs::read_to_string(&path) else {
            problems.push(format!("SUMMARY.md lists {page}, which does not exist"));
            continue;
        };
        let dir = path.parent().unwrap_or(&guide);
        for include in includes(&text) {
            if !dir.join(&include).is_file() {
                problems.push(format!("{page}: includes {include}, which does not exist"));
            }
        }
        for link in links(&text) {
            if let Some(problem) = check_link(dir, &path, &link) {
                problems.push(format!("{page}: {problem}"));
            }
        }
    }
    problems
}

/// What is wrong with `link` on the page at `page` (in `dir`), if anything.
fn check_link(dir: &Path, page: &Path, link: &str) -> Option<String> {
    if link.contains("://") || link.starts_with("mailto:") {
        return None;
    }
    let (file, anchor) = match link.split_once('#') {
        Some((f, a)) => (f, Some(a)),
        None => (link, None),
    };
    let target = if file.is_empty() { page.to_path_buf() } else { dir.join(file) };
    if !target.exists() {
        return Some(format!("{link}: {} does not exist", target.display()));
    }
    let anchor = anchor?;
    if target.extension().is_none_or(|e| e != "md") {
        return Some(format!("{link}: an anchor into a file that is not Markdown"));
    }
    let text = expanded(&target);
    if heading_ids(&text).contains(anchor) {
        None
    } else {
        Some(format!("{link}: no heading with the id `{anchor}` in {}", target.display()))
    }
}

/// The text of a Markdown file with its `{{#include …}}` directives replaced by the files.
fn expanded(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = text.clone();
    for include in includes(&text) {
        let inner = std::fs::read_to_string(dir.join(&include)).unwrap_or_default();
        out = out.replace(&format!("{{{{#include {include}}}}}"), &inner);
    }
    out
}

/// The files `{{#include path}}` directives name.
fn includes(text: &str) -> Vec<String> {
    text.split("{{#include ")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}"))
        .map(|(path, _)| path.trim().to_owned())
        .collect()
}

/// The targets of the Markdown links `[text](target)` outside code blocks and code spans.
pub(crate) fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        // Code spans are not links.
        let line: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].trim();
            if !target.is_empty() {
                out.push(target.to_owned());
            }
            rest = &after[end..];
        }
    }
    out
}

/// The lines of `text` outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push(line);
        }
    }
    out
}

/// The ids mdBook (and GitHub) give the headings of `text`.
pub(crate) fn heading_ids(text: &str) -> BTreeSet<String> {
    prose(text)
        .into_iter()
        .filter_map(|l| {
            let hashes = l.chars().take_while(|c| *c == '#').count();
            (1..=6).contains(&hashes).then(|| l[hashes..].trim()).filter(|h| !h.is_empty())
        })
        .map(heading_id)
        .collect()
}

/// A heading's id: lower case, whitespace to `-`, only letters, digits, `-` and `_` kept.
pub(crate) fn heading_id(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            c if c.is_whitespace() => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_ids_are_mdbooks() {
        assert_eq!(heading_id("The scope: task, session, token"), "the-scope-task-session-token");
        assert_eq!(heading_id("`Error::NoPrimary`"), "errornoprimary");
        assert_eq!(heading_id("rwsplit-axum's layer"), "rwsplit-axums-layer");
        assert_eq!(
            heading_id("Building a connection: `rwsplit_sea_orm::Error`"),
            "building-a-connection-rwsplit_sea_ormerror"
        );
    }

    #[test]
    fn links_skip_code() {
        let text = "see [a](a.md#x) and `[b](b.md)`\n```\n[c](c.md)\n```\n[d](https://e)";
        assert_eq!(links(text), ["a.md#x", "https://e"]);
    }

    /// The link check catches a missing page, file and anchor (the guide's own links are the
    /// tidy test's, `guide_links_resolve`).
    #[test]
    fn a_broken_link_is_reported() {
        let dir = std::env::temp_dir().join(format!("xtask-guide-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let page = dir.join("p.md");
        std::fs::write(&page, "# Title\n\n## A part\n").unwrap();
        assert!(check_link(&dir, &page, "p.md#a-part").is_none());
        assert!(check_link(&dir, &page, "#title").is_none());
        assert!(check_link(&dir, &page, "p.md#no-such").is_some());
        assert!(check_link(&dir, &page, "q.md").is_some());
        std::fs::remove_dir_all(&dir).ok();
    }
}
