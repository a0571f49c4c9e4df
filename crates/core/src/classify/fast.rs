//! The query state's fused fast path: lexing and classifying the common tokens of a read
//! query in one tight loop.

use super::keywords::{Kw, keyword, query_keyword};
use super::lexer::{CONT, Lexer, class, find_byte};
use super::{Classifier, Dialect, Reason};

/// The query-state variables of `Classifier::scan`, shared with its fast path.
pub(super) struct QueryVars<'a> {
    pub(super) prev: Kw,
    pub(super) name: Option<&'a [u8]>,
    pub(super) prev_dot: bool,
    pub(super) depth: u32,
}

impl Classifier {
    /// The query state's common case, lexed and classified in one tight loop: whitespace,
    /// quoted identifiers, words, numbers, parameters and plain punctuation. It stops, leaving
    /// the lexer at the byte, at anything else (strings, comments, `;`, variables …), which the
    /// general loop handles with the full lexer; the two apply exactly the same rules.
    #[inline]
    pub(super) fn fast_query<'a>(
        &self,
        lx: &mut Lexer<'a>,
        out: &mut QueryVars<'a>,
        with: bool,
        analyze: bool,
        copy: bool,
    ) -> Option<Reason> {
        if lx.in_exec_comment() || !self.fast_path {
            return None;
        }
        let src = lx.src();
        let dialect = lx.dialect();
        let quoted_double = dialect != Dialect::MySql;
        let mut rest = src.get(lx.pos()..).unwrap_or_default();
        let at = |rest: &[u8]| src.len() - rest.len();
        // Work on a local copy, so that the variables live in registers through the loop.
        let mut v =
            QueryVars { prev: out.prev, name: out.name, prev_dot: out.prev_dot, depth: out.depth };
        let result = loop {
            let Some((&b, mut tail)) = rest.split_first() else { break None };
            let b = if b == b' ' {
                // Single spaces between tokens are the most common byte: skip without dispatch.
                rest = tail;
                match tail.split_first() {
                    Some((&n, t)) => {
                        tail = t;
                        n
                    }
                    None => break None,
                }
            } else {
                b
            };
            match FAST[usize::from(b)] {
                F_SPACE => {
                    let n = tail
                        .iter()
                        .position(|&c| FAST[usize::from(c)] != F_SPACE)
                        .unwrap_or(tail.len());
                    rest = tail.get(n..).unwrap_or_default();
                }
                F_QUOTE if b == b'`' || quoted_double => {
                    let Some(end) = find_byte(tail, b) else { break None };
                    let (Some(name), Some(after)) = (tail.get(..end), tail.get(end + 1..)) else {
                        break None;
                    };
                    if after.first() == Some(&b) {
                        break None; // a doubled quote: the full lexer knows
                    }
                    v.name = Some(name);
                    v.prev = Kw::None;
                    v.prev_dot = false;
                    rest = after;
                    // `"table"."column"`: take the qualified name in one go (saves dispatches).
                    while let [b'.', q, tail @ ..] = rest
                        && *q == b
                    {
                        let Some(end) = find_byte(tail, b) else { break };
                        let (Some(name), Some(after)) = (tail.get(..end), tail.get(end + 1..))
                        else {
                            break;
                        };
                        if after.first() == Some(&b) {
                            break;
                        }
                        v.name = Some(name);
                        rest = after;
                    }
                    // `"column", `: the separator too.
                    if let [b',', tail @ ..] = rest {
                        v.reset(false);
                        rest = match tail {
                            [b' ', t @ ..] => t,
                            t => t,
                        };
                    }
                }
                F_WORD => {
                    let len = tail.iter().position(|&c| class(c) & CONT == 0).unwrap_or(tail.len());
                    if len == 0
                        && (b | 0x20) == b'e'
                        && dialect == Dialect::Postgres
                        && tail.first() == Some(&b'\'')
                    {
                        break None; // an E'' string
                    }
                    let (w, after) = rest.split_at_checked(len + 1).unwrap_or((rest, &[]));
                    if v.prev_dot {
                        v.prev = Kw::None;
                    } else {
                        let kw = keyword(w);
                        if let Some(r) = query_keyword(kw, v.prev, with, analyze) {
                            rest = after;
                            break Some(r);
                        }
                        v.prev = kw;
                    }
                    v.name = Some(w);
                    v.prev_dot = false;
                    rest = after;
                    // `name(`: the call, without another dispatch.
                    if let [b'(', tail @ ..] = rest {
                        if self.functions.contains(w) {
                            rest = tail;
                            break Some(Reason::WriteFunction);
                        }
                        v.depth += 1;
                        v.reset(false);
                        rest = tail;
                    }
                }
                F_OPEN => {
                    if v.name.is_some_and(|n| self.functions.contains(n)) {
                        rest = tail;
                        break Some(Reason::WriteFunction);
                    }
                    v.depth += 1;
                    v.reset(false);
                    rest = tail;
                }
                F_CLOSE if !copy => {
                    v.depth = v.depth.saturating_sub(1);
                    v.reset(false);
                    rest = tail;
                }
                F_DOT => {
                    v.reset(true);
                    rest = tail;
                }
                F_PUNCT => {
                    v.reset(false);
                    rest = tail;
                }
                F_DOLLAR
                    if dialect == Dialect::Postgres
                        && tail.first().is_some_and(u8::is_ascii_digit) =>
                {
                    let len = tail.iter().position(|c| !c.is_ascii_digit()).unwrap_or(tail.len());
                    rest = tail.get(len..).unwrap_or_default();
                    v.reset(false);
                }
                F_DIGIT => {
                    let len = tail
                        .iter()
                        .position(|&c| class(c) & CONT == 0 && c != b'.')
                        .unwrap_or(tail.len());
                    rest = tail.get(len..).unwrap_or_default();
                    v.reset(false);
                }
                _ => break None,
            }
        };
        lx.set_pos(at(rest));
        *out = v;
        result
    }
}

const F_OTHER: u8 = 0;
const F_SPACE: u8 = 1;
const F_QUOTE: u8 = 2;
const F_WORD: u8 = 3;
const F_OPEN: u8 = 4;
const F_CLOSE: u8 = 5;
const F_DOT: u8 = 6;
const F_PUNCT: u8 = 7;
const F_DOLLAR: u8 = 8;
const F_DIGIT: u8 = 9;

/// What the fast path does with each byte; `F_OTHER` hands over to the full lexer.
static FAST: [u8; 256] = {
    let mut t = [F_OTHER; 256];
    let mut c = 0u8;
    loop {
        t[c as usize] = match c {
            b' ' | b'\n' | b'\t' | b'\r' => F_SPACE,
            b'"' | b'`' => F_QUOTE,
            b'(' => F_OPEN,
            b')' => F_CLOSE,
            b'.' => F_DOT,
            b',' | b'=' | b'*' | b'<' | b'>' | b'+' | b'%' | b'|' | b'!' | b'?' => F_PUNCT,
            b'$' => F_DOLLAR,
            b'0'..=b'9' => F_DIGIT,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | 0x80..=0xff => F_WORD,
            _ => F_OTHER,
        };
        if c == u8::MAX {
            break t;
        }
        c += 1;
    }
};

impl QueryVars<'_> {
    /// After a token that is neither a word nor a quoted identifier.
    #[inline(always)]
    fn reset(&mut self, dot: bool) {
        self.prev_dot = dot;
        self.prev = Kw::None;
        self.name = None;
    }
}
