//! The comments of Rust source, for the tidy test that fails on a comment citing an issue.
//!
//! A comment says what the code does and why, as facts of the present; the tracker holds the
//! history. An issue number in a comment (`issue 25`, `issues 27 and 49`, `#25`) points a reader
//! at that history instead of the reason. Strings are not comments: the allow-lists in
//! `tidy.rs` name the issue that removes each entry, and a report may title a section after
//! the issue whose budget it checks.

/// Each comment of `src` (`//`, `///`, `//!` and `/* … */`), as (line of its start, 1-based,
/// its text after the opening marker). String, raw string and character literals are skipped,
/// so `"// not a comment"` is none.
pub(crate) fn comments(src: &str) -> Vec<(usize, String)> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Advances past `b[i]`, counting lines.
    let step = |i: &mut usize, line: &mut usize| {
        if b[*i] == '\n' {
            *line += 1;
        }
        *i += 1;
    };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let start = i + 2;
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            out.push((line, b[start..i].iter().collect()));
        } else if c == '/' && next == Some('*') {
            let (at, start) = (line, i + 2);
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
                    step(&mut i, &mut line);
                }
            }
            out.push((at, b[start..i.saturating_sub(2).max(start)].iter().collect()));
        } else if c == 'r' && matches!(next, Some('"' | '#')) && !ident_before(&b, i) {
            // A raw string `r#"…"#` (or `r"…"`): its end is the quote and as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                i += 1;
                continue;
            }
            i = j + 1;
            while i < b.len() {
                if b[i] == '"' && (1..=hashes).all(|k| b.get(i + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                step(&mut i, &mut line);
            }
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                if i < b.len() {
                    step(&mut i, &mut line);
                }
            }
            i += 1;
        } else if c == '\'' {
            // A character literal (`'"'`, `'\''`, `'\u{7f}'`), or a lifetime (`'a`), left as is.
            if next == Some('\\') {
                // The quote, the backslash and the escaped character, then up to the closing quote.
                i += 3;
                while i < b.len() && b[i] != '\'' && b[i] != '\n' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else {
            step(&mut i, &mut line);
        }
    }
    out
}

/// Whether `b[at]` continues an identifier (`bar"…"` is no raw string; `br"…"` is one).
fn ident_before(b: &[char], at: usize) -> bool {
    let ident = |k: usize| b.get(k).is_some_and(|c| c.is_alphanumeric() || *c == '_');
    match at.checked_sub(1) {
        None => false,
        Some(p) if b[p] == 'b' => p.checked_sub(1).is_some_and(ident),
        Some(p) => ident(p),
    }
}

/// Whether `comment` cites an issue by number: `issue 25`, `Issue 25's`, `issues 27 and 49`,
/// `issue #25`, or `#25` standing alone (after a space, a parenthesis or at the start). A
/// reference into another project (`tokio-rs/tracing#3611`) is a reason, not our history, and
/// `#[derive]`, `#![…]`, `#anchor` are no numbers.
pub(crate) fn cites_an_issue(comment: &str) -> bool {
    let lower = comment.to_lowercase();
    let digit_at = |s: &str, at: usize| s[at..].chars().next().is_some_and(|c| c.is_ascii_digit());
    let by_word = lower.match_indices("issue").any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric()) {
            return false;
        }
        let rest = &lower[at + "issue".len()..];
        let rest = rest.strip_prefix('s').unwrap_or(rest);
        let Some(rest) = rest.strip_prefix(' ') else { return false };
        let rest = rest.strip_prefix('#').unwrap_or(rest);
        digit_at(rest, 0)
    });
    let by_hash = lower.match_indices('#').any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        before.is_none_or(|c| c.is_whitespace() || c == '(' || c == ',')
            && digit_at(&lower, at + 1)
            && lower[at + 1..]
                .chars()
                .find(|c| !c.is_ascii_digit())
                .is_none_or(|c| !c.is_alphanumeric() && c != '_')
    });
    by_word || by_hash
}

#[cfg(test)]
mod tests {
    use super::{cites_an_issue, comments};

    #[test]
    fn the_comment_reader_skips_strings_and_characters() {
        let src = "//! Crate docs.\nfn f() {\n    let s = \"// not one\"; // one\n    \
                   let r = r#\"a \"// nor\" b\"#;\n    let c = '\"'; /* block\n   on two */\n    \
                   let q = '\\''; let l: &'static str = \"x\\\"// no\";\n    \
                   let e = '\\\\'; let f = br\"// no\";\n}\n/// Item docs.\n";
        let found: Vec<(usize, String)> = comments(src);
        let owned = |l: usize, s: &str| (l, s.to_owned());
        assert_eq!(
            found,
            vec![
                owned(1, "! Crate docs."),
                owned(3, " one"),
                owned(5, " block\n   on two "),
                owned(10, "/ Item docs."),
            ]
        );
    }

    #[test]
    fn the_issue_check_finds_citations_and_nothing_else() {
        for cited in [
            " issue 25: a frozen primary",
            "/ (issue 12: unnoticed in 2 of 3 runs)",
            "! Issue 25's budget",
            " issues 27 and 49",
            " see issue #25",
            " fixed in #24",
            " (#24)",
            " #47, then",
        ] {
            assert!(cites_an_issue(cited), "{cited:?} cites an issue");
        }
        for clean in [
            " the issue's target is 99 %",
            " an issue with the server",
            " tissue 4",
            " #[derive(Debug)] on the struct",
            " `#![warn(missing_docs)]`",
            " see the guide's [section](consistency.md#bounded-staleness)",
            " the event for the scoped subscriber (tokio-rs/tracing#3611)",
            " `{:#1}` pads",
            " #1a is a colour",
        ] {
            assert!(!cites_an_issue(clean), "{clean:?} cites no issue");
        }
    }
}
