//! The query state's fast path: one fused loop over the common tokens of a read query.

use super::functions::FunctionSet;
use super::keywords::{Kw, keyword, may_be_keyword, query_keyword};
use super::lexer::{CONT, Lexer, class, find_byte};
use super::{Dialect, Reason};

/// The query state's variables, which the general loop and the fast path hand to each other.
pub(super) struct QueryVars<'a> {
    /// The keyword of the previous token (`Kw::None` for anything else).
    pub(super) prev: Kw,
    /// The previous token if it could name a called function.
    pub(super) name: Option<&'a [u8]>,
    /// The previous token was a `.`: the next word is a qualified name's component.
    pub(super) prev_dot: bool,
    /// The parenthesis depth.
    pub(super) depth: u32,
}

/// The query state's common tokens lexed and classified one by one in a single tight loop
/// (whitespace, quoted identifiers, words, numbers, parameters and plain punctuation), with
/// runs of `"t"."col", ` column lists taken without a dispatch per token. It stops at anything
/// else (strings, comments, `;`, variables …), leaving the lexer at that byte for the general
/// loop, which applies exactly the same rules with the full lexer. Answers the write reason if
/// it finds one.
///
/// It needs of the classifier only its write `functions`; `with`, `analyze` and `copy` are
/// those of the query state. The caller must not be inside a MySQL executable comment (its
/// `*/` is the general lexer's).
// Always inlined, like `Classifier::scan`: it has two callers (`explain` and the cold second
// readings).
#[inline(always)]
pub(super) fn scan_query<'a>(
    lx: &mut Lexer<'a>,
    out: &mut QueryVars<'a>,
    functions: &FunctionSet,
    with: bool,
    analyze: bool,
    copy: bool,
) -> Option<Reason> {
    let src = lx.src();
    let dialect = lx.dialect();
    let quoted_double = dialect != Dialect::MySql;
    let pg = dialect == Dialect::Postgres;
    // Indices into `src` instead of sub-slices: one register per position, and bounds
    // checks that fold into the loads.
    let mut i = lx.pos();
    // Work on a local copy, so that the variables live in registers through the loop.
    let mut v =
        QueryVars { prev: out.prev, name: out.name, prev_dot: out.prev_dot, depth: out.depth };
    let result = 'scan: loop {
        let Some(&b0) = src.get(i) else { break None };
        let mut b = b0;
        if b == b' ' {
            // Single spaces between tokens are the most common byte: skip without dispatch.
            i += 1;
            match src.get(i) {
                Some(&n) => b = n,
                None => break None,
            }
        }
        // Here `src[i] == b`.
        match FAST[usize::from(b)] {
            F_SPACE => {
                i += 1;
                while src.get(i).is_some_and(|&c| FAST[usize::from(c)] == F_SPACE) {
                    i += 1;
                }
            }
            F_QUOTE if b == b'`' || quoted_double => {
                // A run of a column list, `"t"."col", "t"."col2", …`, without a dispatch
                // per token. Each pass starts at an opening quote at `i`.
                let rep = u64::from(b) * LO;
                // The last identifier's content, `src[ns..ne]`.
                let (mut ns, mut ne) = (0, 0);
                let mut dotted = false;
                loop {
                    let start = i + 1;
                    let next = match close_quote(src, start, rep, b) {
                        Some(e) => {
                            let next = src.get(e + 1).copied();
                            if next == Some(b) {
                                // A doubled quote: the full lexer knows. After a `.`,
                                // stop at the `.` (the previous identifier is complete).
                                if !dotted {
                                    break 'scan None;
                                }
                                i -= 1;
                                None
                            } else {
                                (ns, ne) = (start, e);
                                i = e + 1;
                                Some(next)
                            }
                        }
                        // Unterminated: likewise.
                        None if dotted => {
                            i -= 1;
                            None
                        }
                        None => break 'scan None,
                    };
                    if let Some(next) = next {
                        match next {
                            // `"table"."column"`: the qualified name in one go.
                            Some(b'.') if src.get(i + 1) == Some(&b) => {
                                i += 1;
                                dotted = true;
                                continue;
                            }
                            // `"column", `: the separator, and the next column if quoted.
                            Some(b',') => {
                                v.reset(false);
                                i += 1;
                                if src.get(i) == Some(&b' ') {
                                    i += 1;
                                }
                                if src.get(i) == Some(&b) {
                                    dotted = false;
                                    continue;
                                }
                                break;
                            }
                            _ => {}
                        }
                    }
                    v.name = src.get(ns..ne);
                    v.prev = Kw::None;
                    v.prev_dot = false;
                    break;
                }
            }
            F_WORD => {
                let start = i;
                let rest = src.get(start..).unwrap_or_default();
                let len = word_len(rest);
                if len == 1 && (b | 0x20) == b'e' && pg && rest.get(1) == Some(&b'\'') {
                    break None; // an E'' string
                }
                i = start + len;
                // `word_len` never exceeds `rest`: no check left, no panic possible.
                let w = rest.get(..len).unwrap_or(rest);
                if v.prev_dot || !may_be_keyword(b, len) {
                    // A qualified name's component, or a word no keyword can be.
                    v.prev = Kw::None;
                } else {
                    let kw = keyword(w);
                    if let Some(r) = query_keyword(kw, v.prev, with, analyze) {
                        break Some(r);
                    }
                    v.prev = kw;
                }
                v.name = Some(w);
                v.prev_dot = false;
                // `name(`: the call, without another dispatch.
                if src.get(i) == Some(&b'(') {
                    i += 1;
                    if functions.contains(w) {
                        break Some(Reason::WriteFunction);
                    }
                    v.depth += 1;
                    v.reset(false);
                }
            }
            F_OPEN => {
                i += 1;
                if v.name.is_some_and(|n| functions.contains(n)) {
                    break Some(Reason::WriteFunction);
                }
                v.depth += 1;
                v.reset(false);
            }
            F_CLOSE if !copy => {
                i += 1;
                v.depth = v.depth.saturating_sub(1);
                v.reset(false);
            }
            F_DOT => {
                i += 1;
                v.reset(true);
            }
            F_PUNCT => {
                i += 1;
                v.reset(false);
            }
            F_DOLLAR if pg && src.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 2;
                while src.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                v.reset(false);
            }
            F_DIGIT => {
                i += 1;
                while src.get(i).is_some_and(|&c| class(c) & CONT != 0 || c == b'.') {
                    i += 1;
                }
                v.reset(false);
            }
            _ => break None,
        }
    };
    lx.set_pos(i);
    *out = v;
    result
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The offset of the closing quote `q` (`rep` is `q` in every byte) at or after `from`:
/// eight bytes at once for the usual short identifier, else the general search.
#[inline(always)]
fn close_quote(src: &[u8], from: usize, rep: u64, q: u8) -> Option<usize> {
    if let Some(chunk) = src.get(from..).and_then(<[u8]>::first_chunk::<8>) {
        let v = u64::from_le_bytes(*chunk) ^ rep;
        let hit = v.wrapping_sub(LO) & !v & HI;
        if hit != 0 {
            return Some(from + (hit.trailing_zeros() / 8) as usize);
        }
        // Identifiers of 8 to 15 bytes (`created_at`): a second step, still inline.
        if let Some(chunk) = src.get(from + 8..).and_then(<[u8]>::first_chunk::<8>) {
            let v = u64::from_le_bytes(*chunk) ^ rep;
            let hit = v.wrapping_sub(LO) & !v & HI;
            if hit != 0 {
                return Some(from + 8 + (hit.trailing_zeros() / 8) as usize);
            }
            return find_from(src, from + 16, q);
        }
        return find_from(src, from + 8, q);
    }
    find_from(src, from, q)
}

/// The length of the word starting at `rest[0]`: eight bytes per bounds check.
#[inline(always)]
fn word_len(rest: &[u8]) -> usize {
    let mut n = 1;
    while let Some(chunk) = rest.get(n..).and_then(<[u8]>::first_chunk::<8>) {
        for (k, &c) in chunk.iter().enumerate() {
            if class(c) & CONT == 0 {
                return n + k;
            }
        }
        n += 8;
    }
    while rest.get(n).is_some_and(|&c| class(c) & CONT != 0) {
        n += 1;
    }
    n.min(rest.len())
}

/// The offset of the first `needle` in `src` at or after `from`, if any.
#[inline(always)]
fn find_from(src: &[u8], from: usize, needle: u8) -> Option<usize> {
    find_byte(src.get(from..)?, needle).map(|off| from + off)
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
