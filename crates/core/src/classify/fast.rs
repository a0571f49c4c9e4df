//! The query state's fast path: a structural pass over 64-byte windows that skips the tokens
//! which cannot change a read query's classification, and lexes and classifies the others.
//!
//! Inside a read query most bytes are spaces, `,`, `.`, `=`, `)` and quoted identifiers:
//! `"t"."col", "t"."col2" = …`. None of them can make the query a write on its own; what they
//! leave behind for the next token is decided by the last of them (see [`Classifier::region`]).
//! Each window is classified eight bytes per step into two bit masks (these bytes, and the
//! identifier quotes); a prefix XOR of the quote mask marks the bytes inside quoted
//! identifiers, so every byte left over, an *event*, is the first byte of a token outside
//! them: a word, a number, a parameter, `(`, or something (a string, a comment, `;`, …) the
//! general lexer handles. The walk goes from event to event with `trailing_zeros`.

use super::keywords::{Kw, keyword, may_be_keyword, query_keyword};
use super::lexer::{CONT, Lexer, WS, class};
use super::{Classifier, Dialect, Reason};

/// The query-state variables of `Classifier::scan`, shared with its fast path.
pub(super) struct QueryVars<'a> {
    pub(super) prev: Kw,
    pub(super) name: Option<&'a [u8]>,
    pub(super) prev_dot: bool,
    pub(super) depth: u32,
}

/// The width of a window, in bytes (one bit of a `u64` mask each).
const W: usize = 64;

impl Classifier {
    /// The query state's common case, lexed and classified a window at a time. It stops,
    /// leaving the lexer at a token, at anything it does not handle (strings, comments, `;`,
    /// variables …), which the general loop handles with the full lexer; the two apply exactly
    /// the same rules.
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
        let pg = dialect == Dialect::Postgres;
        // The identifier quote the windows track; the other one (PostgreSQL's and SQLite's
        // backticks, MySQL's `"` strings) is an event for the general lexer.
        let q = if dialect == Dialect::MySql { b'`' } else { b'"' };
        // `)` only matters in `COPY ( … ) TO`; elsewhere it is skipped like `,`.
        let close = if copy { b' ' } else { b')' };
        // Work on a local copy, so that the variables live in registers through the loop.
        let mut v =
            QueryVars { prev: out.prev, name: out.name, prev_dot: out.prev_dot, depth: out.depth };
        // The next byte to look at; always outside quoted identifiers.
        let mut i = lx.pos();
        // Where the skipped tokens before the next event start: `v` holds the variables as of
        // `rs`, the tokens in `src[rs..event]` are applied when an event needs them.
        let mut rs = i;
        let mut base = i;
        let (mut events, mut in_quote) = window(src, base, q, close, false);
        let result = loop {
            let rel = i - base;
            let m = if rel < W { events & (u64::MAX << rel) } else { 0 };
            if m == 0 {
                // Nothing more in this window: the next one starts where this one ends, or at
                // `i` if a token ran past the end (outside quotes, then).
                let next = base + W;
                let carry = if i >= next {
                    // The next window if the token ended in it, else one at `i`.
                    base = if i - next < W { next } else { i };
                    false
                } else if next >= src.len() {
                    if in_quote {
                        // An unterminated identifier: the general lexer reports it. (It opened
                        // after `rs`; the bound keeps the scan moving forward regardless.)
                        i = quote_open(src, src.len(), q).max(rs);
                    } else {
                        i = src.len();
                    }
                    break None;
                } else {
                    base = next;
                    i = next;
                    in_quote
                };
                (events, in_quote) = window(src, base, q, close, carry);
                continue;
            }
            let p = base + m.trailing_zeros() as usize;
            // Past the end, the window is padded with events.
            let Some(&b) = src.get(p) else {
                i = src.len();
                break None;
            };
            i = p + 1;
            match EV[usize::from(b)] {
                E_SKIP => continue,
                E_WORD => {
                    let rest = src.get(p..).unwrap_or_default();
                    let len = word_len(rest);
                    if len == 1 && (b | 0x20) == b'e' && pg && rest.get(1) == Some(&b'\'') {
                        // An E'' string.
                        self.region(src, rs, p, q, &mut v);
                        i = p;
                        break None;
                    }
                    i = p + len;
                    // `word_len` never exceeds `rest`: no check left, no panic possible.
                    let w = rest.get(..len).unwrap_or(rest);
                    if !may_be_keyword(b, len) {
                        // A word no keyword can be.
                        v.prev = Kw::None;
                    } else {
                        // The skipped tokens leave no keyword behind, and maybe a `.`.
                        let (prev, prev_dot) = match last_token(src, rs, p) {
                            None => (v.prev, v.prev_dot),
                            Some(l) => (Kw::None, src.get(l) == Some(&b'.')),
                        };
                        if prev_dot {
                            // A qualified name's component.
                            v.prev = Kw::None;
                        } else {
                            let kw = keyword(w);
                            if let Some(r) = query_keyword(kw, prev, with, analyze) {
                                break Some(r);
                            }
                            v.prev = kw;
                        }
                    }
                    v.name = Some(w);
                    v.prev_dot = false;
                    // `name(`: the call, without another event.
                    if src.get(i) == Some(&b'(') {
                        i += 1;
                        if self.functions.contains(w) {
                            break Some(Reason::WriteFunction);
                        }
                        if copy {
                            v.depth += 1;
                        }
                        v.reset(false);
                    }
                }
                E_OPEN => {
                    self.region(src, rs, p, q, &mut v);
                    if v.name.is_some_and(|n| self.functions.contains(n)) {
                        break Some(Reason::WriteFunction);
                    }
                    if copy {
                        v.depth += 1;
                    }
                    v.reset(false);
                }
                E_DIGIT => {
                    while src.get(i).is_some_and(|&c| class(c) & CONT != 0 || c == b'.') {
                        i += 1;
                    }
                    v.reset(false);
                }
                E_DOLLAR if pg && src.get(i).is_some_and(u8::is_ascii_digit) => {
                    i += 1;
                    while src.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                    v.reset(false);
                }
                // `-` and `/` on their own are operators; `--` and `/*` start comments.
                E_MINUS if src.get(i) != Some(&b'-') => continue,
                E_SLASH if src.get(i) != Some(&b'*') => continue,
                E_COLON if dialect != Dialect::Sqlite => continue,
                _ => {
                    self.region(src, rs, p, q, &mut v);
                    i = p;
                    break None;
                }
            }
            rs = i;
        };
        lx.set_pos(i);
        *out = v;
        result
    }

    /// Applies to `v` the skipped tokens in `src[rs..p]`: the last of them decides. A quoted
    /// identifier may name a called function; a `.` makes the next word a qualified name's
    /// component; anything else clears the variables. Whitespace alone changes nothing.
    #[inline(always)]
    fn region<'a>(&self, src: &'a [u8], rs: usize, p: usize, q: u8, v: &mut QueryVars<'a>) {
        if let Some(l) = last_token(src, rs, p) {
            match src.get(l) {
                Some(&c) if c == q => {
                    let open = quote_open(src, l, q);
                    v.name = src.get(open + 1..l);
                    v.prev = Kw::None;
                    v.prev_dot = false;
                }
                c => v.reset(c == Some(&b'.')),
            }
        }
    }
}

/// The position of the last byte in `src[rs..p]` that is not whitespace, if any.
#[inline(always)]
fn last_token(src: &[u8], rs: usize, p: usize) -> Option<usize> {
    let mut l = p;
    while l > rs && src.get(l - 1).is_some_and(|&c| class(c) & WS != 0) {
        l -= 1;
    }
    if l > rs { Some(l - 1) } else { None }
}

/// The opening quote of the quoted identifier that `src[end]` closes (or that is open at the
/// end of the text, `end == src.len()`). Inside an identifier quotes come in doubled pairs, so
/// going backwards the first run of quotes of odd length starts with the opening one.
#[inline(never)]
fn quote_open(src: &[u8], end: usize, q: u8) -> usize {
    let mut j = end;
    loop {
        let Some(k) = src.get(..j).and_then(|s| s.iter().rposition(|&c| c == q)) else {
            return j;
        };
        let mut s = k;
        while s > 0 && src.get(s - 1) == Some(&q) {
            s -= 1;
        }
        if (k - s) % 2 == 0 {
            return s;
        }
        j = s;
    }
}

/// Moves the low bit of each byte of `lanes` (0 or 1) to bit `k` of the result, for byte `k`.
#[inline(always)]
fn pack8(lanes: u64) -> u64 {
    // Each byte's bit lands at a distinct position of the top byte: no carries.
    lanes.wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// The masks of the window `src[base..base + 64]` (padded with events past the end): the
/// events (bytes outside quoted identifiers other than space, `,`, `.`, `=`, the quote and
/// `close`), and whether the window ends inside a quoted identifier. `carry`: it starts inside
/// one.
#[inline(always)]
fn window(src: &[u8], base: usize, q: u8, close: u8, carry: bool) -> (u64, bool) {
    let mut buf = [0u8; W];
    let chunk = match src.get(base..).and_then(<[u8]>::first_chunk::<W>) {
        Some(c) => c,
        None => {
            for (d, &s) in buf.iter_mut().zip(src.get(base..).unwrap_or_default()) {
                *d = s;
            }
            &buf
        }
    };
    // Byte predicates into lanes (vectorised by the compiler), then eight lanes per multiply.
    let mut ls = [0u8; W];
    let mut lq = [0u8; W];
    for ((s, qq), &c) in ls.iter_mut().zip(lq.iter_mut()).zip(chunk) {
        let isq = c == q;
        *s = u8::from((c == b' ') | (c == b',') | (c == b'.') | (c == b'=') | (c == close) | isq);
        *qq = u8::from(isq);
    }
    let mut skip = 0u64;
    let mut quotes = 0u64;
    let (s8, _) = ls.as_chunks::<8>();
    let (q8, _) = lq.as_chunks::<8>();
    for (k, (s, qq)) in s8.iter().zip(q8).enumerate() {
        skip |= pack8(u64::from_le_bytes(*s)) << (8 * k);
        quotes |= pack8(u64::from_le_bytes(*qq)) << (8 * k);
    }
    // Bit k of `inside`: an odd number of quotes up to and including byte k, so byte k is an
    // opening quote or inside an identifier.
    let mut inside = quotes;
    inside ^= inside << 1;
    inside ^= inside << 2;
    inside ^= inside << 4;
    inside ^= inside << 8;
    inside ^= inside << 16;
    inside ^= inside << 32;
    if carry {
        inside = !inside;
    }
    (!(skip | inside), inside >> 63 != 0)
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

/// A byte that is a token on its own (or whitespace) in every dialect, and clears the
/// variables: skipped like the window's `,`.
const E_SKIP: u8 = 0;
const E_WORD: u8 = 1;
const E_DIGIT: u8 = 2;
const E_OPEN: u8 = 3;
const E_DOLLAR: u8 = 4;
const E_MINUS: u8 = 5;
const E_SLASH: u8 = 6;
const E_COLON: u8 = 7;
/// For the general lexer: strings, quotes, comments, `;`, variables, parameters, `)` in COPY.
const E_OTHER: u8 = 8;

/// What the fast path does with an event's first byte.
static EV: [u8; 256] = {
    let mut t = [E_SKIP; 256];
    let mut c = 0u8;
    loop {
        t[c as usize] = match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | 0x80..=0xff => E_WORD,
            b'0'..=b'9' => E_DIGIT,
            b'(' => E_OPEN,
            b'$' => E_DOLLAR,
            b'-' => E_MINUS,
            b'/' => E_SLASH,
            b':' => E_COLON,
            b'\'' | b'"' | b'`' | b'#' | b';' | b'@' | b'[' | b')' => E_OTHER,
            _ => E_SKIP,
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
