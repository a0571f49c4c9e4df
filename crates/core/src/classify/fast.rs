//! The query state's fast path: lexing and classifying the common tokens of a read query
//! window by window, from bit masks (AVX2), or with the scalar loop of `scalar.rs`.

use super::keywords::{Kw, keyword, may_be_query_keyword, query_keyword};
use super::lexer::{CONT, Lexer, class, find_byte};
#[cfg(test)]
use super::masks;
#[cfg(target_arch = "x86_64")]
use super::masks::x86;
use super::masks::{Engine, Masks, Simd, WINDOW, prefix_xor, window};
use super::{Classifier, Dialect, Reason};

/// The query-state variables of `Classifier::scan`, shared with its fast path.
pub(super) struct QueryVars<'a> {
    pub(super) prev: Kw,
    pub(super) name: Option<&'a [u8]>,
    pub(super) prev_dot: bool,
    pub(super) depth: u32,
}

impl Classifier {
    /// The query state's common case: whitespace, quoted identifiers, words, numbers,
    /// parameters and plain punctuation, lexed and classified by the windowed path on CPUs with
    /// AVX2 and by the scalar loop otherwise (and for short rests). Either stops, leaving the
    /// lexer at the byte, at anything else (strings, comments, `;`, variables …), which the
    /// general loop handles with the full lexer; all apply exactly the same rules.
    #[inline]
    pub(super) fn fast_query<'a>(
        &self,
        lx: &mut Lexer<'a>,
        out: &mut QueryVars<'a>,
        with: bool,
        analyze: bool,
        copy: bool,
    ) -> Option<Reason> {
        if lx.in_exec_comment() {
            return None;
        }
        let args = (lx, out, with, analyze, copy);
        match self.engine {
            Engine::General => None,
            Engine::Scalar => self.scalar_query(args.0, args.1, with, analyze, copy),
            #[cfg(test)]
            Engine::Portable => self.fast_scan(args, masks::Portable),
            #[cfg(target_arch = "x86_64")]
            Engine::Auto => match x86::Avx2::detect() {
                // A short rest (`SELECT 1`, the end after a string) costs the scalar loop less
                // than a window.
                Some(avx2) if args.0.src().len().saturating_sub(args.0.pos()) >= SHORT => {
                    #[allow(unsafe_code)]
                    // SAFETY: `fast_avx2` enables what `Avx2::detect` found.
                    unsafe {
                        self.fast_avx2(args, avx2)
                    }
                }
                _ => self.scalar_query(args.0, args.1, with, analyze, copy),
            },
            #[cfg(not(target_arch = "x86_64"))]
            Engine::Auto => self.scalar_query(args.0, args.1, with, analyze, copy),
        }
    }

    /// [`Classifier::fast_scan`] with AVX2 masks, compiled for CPUs with AVX2 and BMI.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt")]
    fn fast_avx2<'a>(&self, args: Args<'a, '_>, avx2: x86::Avx2) -> Option<Reason> {
        self.fast_scan(args, avx2)
    }

    /// The fast path over windows whose masks `simd` computes.
    ///
    /// Each 64-byte window becomes bit masks (`masks.rs`): word bytes, the identifier quote,
    /// event bytes, passed-over token bytes and dots. A prefix XOR of the quote bits covers the
    /// bytes inside quoted identifiers. What is left are the *events*: words that may be one of
    /// the keywords that matter in a query (by their first byte), parameters, a `.` after a word
    /// (a number may go on past it), `(`, and every byte the general lexer must see. They are
    /// visited in order with `trailing_zeros`. The tokens between two events — other words and
    /// numbers, quoted identifiers, quiet punctuation — are not visited: only the last of them
    /// can matter (a name before `(`, a `.` before a word), so [`settle`] applies just that
    /// one, found from the masks too, and only when an event needs the variables. A token that
    /// runs past the window is taken whole from the text; the next window starts after it.
    ///
    /// `COPY ( … ) TO` queries, which count parentheses, are left to the general lexer.
    #[inline(always)]
    fn fast_scan<'a>(
        &self,
        (lx, out, with, analyze, copy): Args<'a, '_>,
        simd: impl Simd,
    ) -> Option<Reason> {
        if copy {
            return None;
        }
        let src = lx.src();
        let dialect = lx.dialect();
        let pg = dialect == Dialect::Postgres;
        // The identifier quote the windows track; the other one (PostgreSQL's and SQLite's
        // backticks, MySQL's `"` strings) is left to the general lexer.
        let q = if dialect == Dialect::MySql { b'`' } else { b'"' };
        // Work on a local copy, so that the variables live in registers through the loop.
        let mut v = Vars::from(src, out);
        // The window's first byte. It is never inside a token.
        let mut base = lx.pos();
        // The tokens an earlier window passed over after its last event (`pending.tokens`,
        // bits of the window at `pending.base`): applied only if an event needs them before
        // this window passes over a token of its own, which would make them moot.
        let mut pending = Pending { base, word: 0, quote: 0, tokens: 0 };
        // What the scan found, and where the general lexer goes on.
        let (result, stop) = 'scan: loop {
            if base >= src.len() {
                pending.settle(src, q, &mut v);
                break (None, src.len());
            }
            let m = window(src, base, q, simd);
            let inside = prefix_xor(m.quote);
            let closing = m.quote & !inside;
            let word = m.word & !inside;
            // What `settle` looks at: passed-over words, closing quotes, quiet punctuation.
            let mut tokens = (m.tokens | closing) & !inside;
            // Events: candidate words' first bytes, other bytes that are not passed over, and
            // (where digits are no candidates) a `.` after a word, which may continue a number.
            let mut events =
                ((word & !(word << 1) | !m.word) & m.events | m.dot & word << 1) & !inside;
            let mut next = base + WINDOW;
            // A quoted identifier or a word that runs past the window (from the window's last
            // quote, or after its last non-word byte): taken whole from the text below, unless
            // an event already took it, and the next window starts after it.
            let mut cross = None;
            if (inside | word) >> 63 != 0 {
                let start = if inside >> 63 != 0 {
                    highest(m.quote).unwrap_or_default()
                } else {
                    highest(!m.word).map_or(0, |s| s + 1)
                };
                cross = Some(start);
                tokens &= below(start);
            }
            if closing & (m.quote >> 1) != 0
                || (closing >> 63 != 0 && src.get(base + WINDOW) == Some(&q))
            {
                // A doubled quote inside an identifier: the general lexer takes that
                // identifier, from its opening quote (an event that stops the scan).
                let doubled = closing & (m.quote >> 1 | 1 << 63);
                let c = doubled.trailing_zeros() as usize;
                events |= 1 << highest(m.quote & below(c)).unwrap_or(c);
            }
            while events != 0 {
                let p = events.trailing_zeros() as usize;
                events &= events - 1;
                // Whatever the event is, it settles or overrides what is pending.
                let pending_before = pending.tokens;
                pending.tokens = 0;
                let at = base + p;
                let Some(&b) = src.get(at) else { break };
                // The tokens passed over since the last event. Only what needs the variables
                // applies them (`settle`): a token that sets them all does not.
                let passed = tokens & below(p);
                // Where the token ends.
                let end = match EVENT[usize::from(b)] {
                    E_WORD => {
                        let run = (!m.word >> p).trailing_zeros() as usize;
                        let len = if p + run < WINDOW {
                            run
                        } else {
                            // It may go on in the next window.
                            word_len(src.get(at..).unwrap_or_default())
                        };
                        if may_be_query_keyword(b, len) {
                            settle_or(src, base, &m, passed, (pending_before, &pending), q, &mut v);
                            if !v.prev_dot {
                                let w = src.get(at..at + len).unwrap_or_default();
                                let kw = keyword(w);
                                if let Some(r) = query_keyword(kw, v.prev, with, analyze) {
                                    break 'scan (Some(r), at + len);
                                }
                                v.name(at, len);
                                v.prev = kw;
                                p + len
                            } else {
                                // A qualified name's component.
                                v.name(at, len);
                                p + len
                            }
                        } else {
                            // A word no keyword that matters can be.
                            v.name(at, len);
                            p + len
                        }
                    }
                    E_OPEN => {
                        settle_or(src, base, &m, passed, (pending_before, &pending), q, &mut v);
                        if v.name_len > 0
                            && src
                                .get(v.name_at)
                                .is_some_and(|&f| self.functions.may_contain(f, v.name_len))
                            && src
                                .get(v.name_at..v.name_at + v.name_len)
                                .is_some_and(|n| self.functions.contains(n))
                        {
                            break 'scan (Some(Reason::WriteFunction), at + 1);
                        }
                        v.reset(false);
                        p + 1
                    }
                    E_PUNCT => {
                        v.reset(false);
                        p + 1
                    }
                    E_DOT => {
                        // After a word: a number's `.` if the word is digits (`1.5`, `1.e5`),
                        // else a qualified name's.
                        let start = highest(!m.word & below(p)).map_or(0, |s| s + 1);
                        if src.get(base + start).is_some_and(u8::is_ascii_digit) {
                            let mut i = at + 1;
                            while src.get(i).is_some_and(|&c| class(c) & CONT != 0 || c == b'.') {
                                i += 1;
                            }
                            v.reset(false);
                            i - base
                        } else {
                            v.reset(true);
                            p + 1
                        }
                    }
                    E_DIGIT => {
                        // A number takes word bytes and dots: `1.5e3`, `12abc`.
                        let run = (!m.word >> p).trailing_zeros() as usize;
                        let mut i = at + run;
                        if p + run >= WINDOW || src.get(i) == Some(&b'.') {
                            // It may go on in the next window, or after the `.`.
                            i = at + 1;
                            while src.get(i).is_some_and(|&c| class(c) & CONT != 0 || c == b'.') {
                                i += 1;
                            }
                        }
                        v.reset(false);
                        i - base
                    }
                    E_DOLLAR if pg && src.get(at + 1).is_some_and(u8::is_ascii_digit) => {
                        // `$1`. (`$1x` is a parameter and a word: the general lexer's.)
                        let mut i = at + 2;
                        while src.get(i).is_some_and(u8::is_ascii_digit) {
                            i += 1;
                        }
                        if src.get(i).is_some_and(|&c| class(c) & CONT != 0) {
                            settle_or(src, base, &m, passed, (pending_before, &pending), q, &mut v);
                            break 'scan (None, at);
                        }
                        v.reset(false);
                        i - base
                    }
                    // `E'…'` (PostgreSQL) is one token: the general lexer lexes it from the
                    // `E`, which `v` may already hold as a name (the string clears it anyway).
                    E_STRING
                        if pg
                            && at > 0
                            && src.get(at - 1).is_some_and(|&e| e | 0x20 == b'e')
                            && (at < 2
                                || src.get(at - 2).is_some_and(|&c| class(c) & CONT == 0)) =>
                    {
                        break 'scan (None, at - 1);
                    }
                    _ => {
                        settle_or(src, base, &m, passed, (pending_before, &pending), q, &mut v);
                        break 'scan (None, at);
                    }
                };
                // Drop what the token covers; past the window, go on after it.
                if end < WINDOW {
                    events &= u64::MAX << end;
                    tokens &= u64::MAX << end;
                } else {
                    next = base + end;
                    tokens = 0;
                    cross = None;
                    break;
                }
            }
            if let Some(start) = cross {
                // The token that runs past the window is the last one before the next window:
                // it overrides what is pending.
                let at = base + start;
                next = if src.get(at) == Some(&q) {
                    match quoted_end(src, at, q) {
                        Some(end) => {
                            v.name(at + 1, end - at - 2);
                            end
                        }
                        None => {
                            // Doubled quotes, or no closing quote: the general lexer's.
                            settle_or(src, base, &m, tokens, (pending.tokens, &pending), q, &mut v);
                            break 'scan (None, at);
                        }
                    }
                } else if src.get(at).is_some_and(u8::is_ascii_digit) {
                    // A number (digits are no events here): it takes word bytes and dots.
                    let mut i = at + 1;
                    while src.get(i).is_some_and(|&c| class(c) & CONT != 0 || c == b'.') {
                        i += 1;
                    }
                    v.reset(false);
                    i
                } else {
                    let len = word_len(src.get(at..).unwrap_or_default());
                    v.name(at, len);
                    at + len
                };
                pending.tokens = 0;
            } else if tokens != 0 {
                pending = Pending { base, word: m.word, quote: m.quote, tokens };
            }
            base = next;
        };
        lx.set_pos(stop.min(src.len()));
        v.store(src, out);
        result
    }
}

/// Below this many bytes left, the scalar loop is cheaper than a window (about 10 instructions
/// a byte against about 200 a window).
const SHORT: usize = 24;

/// The arguments of the fast path.
type Args<'a, 'b> = (&'b mut Lexer<'a>, &'b mut QueryVars<'a>, bool, bool, bool);

/// Tokens an earlier window passed over, not yet applied (see `pending` in `fast_scan`).
struct Pending {
    base: usize,
    word: u64,
    quote: u64,
    tokens: u64,
}

impl Pending {
    /// Applies the tokens to `v`.
    #[inline(always)]
    fn settle(&self, src: &[u8], q: u8, v: &mut Vars) {
        let m = Masks { word: self.word, quote: self.quote, events: 0, tokens: 0, dot: 0 };
        settle(src, self.base, &m, self.tokens, q, v);
    }
}

/// [`settle`] with `tokens` of the current window if there are any, else with the tokens
/// `earlier.0` of an earlier window (`earlier.1`).
#[inline(always)]
fn settle_or(
    src: &[u8],
    base: usize,
    m: &Masks,
    tokens: u64,
    earlier: (u64, &Pending),
    q: u8,
    v: &mut Vars,
) {
    if tokens != 0 {
        settle(src, base, m, tokens, q, v);
    } else if earlier.0 != 0 {
        let p = earlier.1;
        let m = Masks { word: p.word, quote: p.quote, events: 0, tokens: 0, dot: 0 };
        settle(src, p.base, &m, earlier.0, q, v);
    }
}

/// Applies to `v` the last of the tokens `tokens` (bits of the window at `base`, whose masks
/// are `m`): words that were no event, closing quotes and quiet punctuation. A word or a
/// quoted identifier may name a called function (a word that is not an event is no keyword
/// that matters); a `.` makes the next word a qualified name's component; any other
/// punctuation clears the variables. Without tokens (whitespace only) nothing changes.
#[inline(always)]
fn settle(src: &[u8], base: usize, m: &Masks, tokens: u64, q: u8, v: &mut Vars) {
    let Some(l) = highest(tokens) else { return };
    if m.word >> l & 1 != 0 {
        // A word: from after the last byte below it that is none. (A number if it starts with
        // a digit, when digits are no events.)
        let start = highest(!m.word & below(l)).map_or(0, |s| s + 1);
        if src.get(base + start).is_some_and(u8::is_ascii_digit) {
            v.reset(false);
        } else {
            v.name(base + start, l + 1 - start);
        }
        return;
    }
    let c = src.get(base + l).copied();
    if c == Some(q) {
        // A closing quote; the opening one is the window's previous quote.
        let open = highest(m.quote & below(l)).map_or(l, |o| o + 1);
        v.name(base + open, l - open);
    } else {
        v.reset(c == Some(b'.'));
    }
}

/// The end (exclusive) of the quoted identifier opened by `q` at `src[at]`, if it is closed
/// and has no doubled quote.
#[inline(always)]
fn quoted_end(src: &[u8], at: usize, q: u8) -> Option<usize> {
    let close = at + 1 + find_byte(src.get(at + 1..)?, q)?;
    (src.get(close + 1) != Some(&q)).then_some(close + 1)
}

/// The position of the highest set bit of `mask`, if any.
#[inline(always)]
fn highest(mask: u64) -> Option<usize> {
    (mask != 0).then(|| 63 - mask.leading_zeros() as usize)
}

/// Bits `0..k`, for `k` < 64.
#[inline(always)]
fn below(k: usize) -> u64 {
    !(u64::MAX << (k & 63))
}

/// The length of the word starting at `rest[0]`: eight bytes per bounds check.
#[inline(always)]
pub(super) fn word_len(rest: &[u8]) -> usize {
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

const E_STOP: u8 = 0;
const E_WORD: u8 = 1;
const E_OPEN: u8 = 2;
const E_PUNCT: u8 = 3;
const E_DOLLAR: u8 = 4;
const E_DIGIT: u8 = 5;
const E_STRING: u8 = 6;
const E_DOT: u8 = 7;

/// What the fast path does at an event's first byte; `E_STOP` hands over to the full lexer.
/// (Quiet bytes and quoted identifiers are never events.)
static EVENT: [u8; 256] = {
    let mut t = [E_STOP; 256];
    let mut c = 0u8;
    loop {
        t[c as usize] = match c {
            b'(' => E_OPEN,
            b'%' | b'|' | b'!' => E_PUNCT,
            b'$' => E_DOLLAR,
            b'0'..=b'9' => E_DIGIT,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | 0x80..=0xff => E_WORD,
            b'\'' => E_STRING,
            // Only after a word, where digits are no events (see `Masks::dot`).
            b'.' => E_DOT,
            _ => E_STOP,
        };
        if c == u8::MAX {
            break t;
        }
        c += 1;
    }
};

/// The query variables inside the windowed path, with the name as a range of the text (empty:
/// no name), so that passing a name over makes no slice. (The parenthesis depth, which only
/// `COPY ( … ) TO` needs, is left as it was: that query does not take this path.)
struct Vars {
    prev: Kw,
    prev_dot: bool,
    name_at: usize,
    name_len: usize,
}

impl Vars {
    /// From the general loop's variables (whose name, if any, lies in `src`).
    #[inline(always)]
    fn from(src: &[u8], out: &QueryVars<'_>) -> Self {
        let (name_at, name_len) = out
            .name
            .map_or((0, 0), |n| (n.as_ptr().addr().wrapping_sub(src.as_ptr().addr()), n.len()));
        Self { prev: out.prev, prev_dot: out.prev_dot, name_at, name_len }
    }

    /// Back to the general loop's variables. (An empty name becomes none: both mean that a `(`
    /// after it calls no function on the list.)
    #[inline(always)]
    fn store<'a>(&self, src: &'a [u8], out: &mut QueryVars<'a>) {
        out.prev = self.prev;
        out.prev_dot = self.prev_dot;
        out.name = if self.name_len == 0 {
            None
        } else {
            src.get(self.name_at..self.name_at + self.name_len)
        };
    }

    /// After a word or quoted identifier at `src[at..at + len]` that is no keyword that matters.
    #[inline(always)]
    fn name(&mut self, at: usize, len: usize) {
        self.name_at = at;
        self.name_len = len;
        self.prev = Kw::None;
        self.prev_dot = false;
    }

    /// After a token that is neither a word nor a quoted identifier.
    #[inline(always)]
    fn reset(&mut self, dot: bool) {
        self.prev_dot = dot;
        self.prev = Kw::None;
        self.name_len = 0;
    }
}
