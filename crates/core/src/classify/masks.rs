//! Byte-class bit masks of a 64-byte window, the input of the query state's windowed fast path.
//!
//! Bit `k` of each mask describes byte `k` of the window. The masks come from AVX2, 32 bytes per
//! instruction (detected at run time): a nibble shuffle classifies every byte at once, compares
//! pick out the rest, `vpmovmskb` makes bits of them. CPUs without AVX2 take the scalar fast
//! path (`scalar.rs`) instead: masks built without a byte shuffle and a 32-byte `movemask` cost
//! more than that loop (SSE2 masks were measured at 2,265 instructions for the 197-byte SELECT
//! against its 1,905; a table loop at 8,686). Tests build the same masks with a table loop,
//! check AVX2's against them for every byte value, and run the windowed path on them too.

#[cfg(test)]
use super::keywords::starts_query_keyword;
#[cfg(test)]
use super::lexer::{CONT, DIGIT, WS, class};

/// The window length: one bit per byte of a `u64`.
pub(super) const WINDOW: usize = 64;

/// Which fast path the query state takes. [`Engine::Auto`] in normal use; the others exist so
/// that tests can compare each with the general lexer on any machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code, reason = "tests construct the other engines"))]
pub(super) enum Engine {
    /// No fast path: the general lexer for everything.
    General,
    /// The windowed path with AVX2 masks if the CPU has AVX2, else the scalar path.
    Auto,
    /// The scalar path, on any CPU.
    Scalar,
    /// The windowed path with masks from a table loop (tests only: slow, but on any CPU).
    #[cfg(test)]
    Portable,
}

/// The masks of one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Masks {
    /// Bytes that continue a word: ASCII letters and digits, `_`, `$` and bytes from 0x80 on
    /// (the lexer's `CONT` class).
    pub(super) word: u64,
    /// The identifier quote the window tracks.
    pub(super) quote: u64,

    /// Bytes that are an event where a token starts (see `is_event`): the first bytes of
    /// words that may matter (digits, `$` and the first letters of [`QUERY_KEYWORDS`]; a
    /// superset is fine, SSE2 takes every word byte) and every byte that is neither a word
    /// byte, the quote, whitespace nor quiet punctuation.
    ///
    /// [`QUERY_KEYWORDS`]: super::keywords::QUERY_KEYWORDS
    pub(super) events: u64,
    /// Bytes of tokens the fast path passes over and may have to look back at: word bytes and
    /// quiet punctuation (see `is_quiet_punct`).
    pub(super) tokens: u64,
    /// `.` bytes, where digits are not events (AVX2): a `.` right after a word is then an event,
    /// as it may continue a number (`1.5`, `1.e5`). Zero where digits are events.
    pub(super) dot: u64,
}

/// Punctuation the fast path passes over: `)`, `*`, `+`, `,`, `.`, `<`, `=`, `>`, `?`.
#[cfg(test)]
#[inline(always)]
pub(super) fn is_quiet_punct(b: u8) -> bool {
    matches!(b, b')' | b'*' | b'+' | b',' | b'.' | b'<' | b'=' | b'>' | b'?')
}

/// Whether a word starting with `b` is worth an event: a number, a parameter, or a word that
/// may be one of [`QUERY_KEYWORDS`](super::keywords::QUERY_KEYWORDS). (AVX2 masks leave numbers
/// out and mark `.` instead, see [`Masks::dot`].)
#[cfg(test)]
#[inline(always)]
pub(super) fn is_cand(b: u8) -> bool {
    class(b) & DIGIT != 0 || b == b'$' || starts_query_keyword(b)
}

/// Whether `b` is an event where a token starts, with `quote` the identifier quote (see
/// [`Masks::events`]; SIMD masks may add word bytes).
#[cfg(test)]
#[inline(always)]
pub(super) fn is_event(b: u8, quote: u8) -> bool {
    if class(b) & CONT != 0 {
        is_cand(b)
    } else {
        b != quote && class(b) & WS == 0 && !is_quiet_punct(b)
    }
}

/// The masks of `src[base..base + 64]` (`base` < `src.len()`); past the end of `src` the
/// window reads as spaces.
#[inline(always)]
pub(super) fn window(src: &[u8], base: usize, quote: u8, simd: impl Simd) -> Masks {
    // One call of `masks`, so that it is inlined once.
    let mut pad = [b' '; WINDOW];
    let (w, shift) = if let Some(w) = src.get(base..).and_then(<[u8]>::first_chunk::<WINDOW>) {
        (w, 0)
    } else if let Some(w) = src.last_chunk::<WINDOW>() {
        // The text's last 64 bytes: shifted, the bytes past its end read as spaces, which are
        // in no mask.
        (w, (base + WINDOW).saturating_sub(src.len()).min(WINDOW - 1))
    } else {
        // A text shorter than a window.
        for (d, s) in pad.iter_mut().zip(src.get(base..).unwrap_or_default()) {
            *d = *s;
        }
        (&pad, 0)
    };
    let m = simd.masks(w, quote);
    Masks {
        word: m.word >> shift,
        quote: m.quote >> shift,
        events: m.events >> shift,
        tokens: m.tokens >> shift,
        dot: m.dot >> shift,
    }
}

/// A way to compute masks. A value of an implementing type is proof that the CPU can run it.
pub(super) trait Simd: Copy {
    /// The masks of `w`.
    fn masks(self, w: &[u8; WINDOW], quote: u8) -> Masks;
}

/// Masks from a table loop, a byte at a time: any CPU (tests only).
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub(super) struct Portable;

#[cfg(test)]
impl Simd for Portable {
    #[inline(always)]
    fn masks(self, w: &[u8; WINDOW], quote: u8) -> Masks {
        let mut m = Masks { word: 0, quote: 0, events: 0, tokens: 0, dot: 0 };
        for (k, &b) in w.iter().enumerate() {
            let word = class(b) & CONT != 0;
            m.word |= u64::from(word) << k;
            m.quote |= u64::from(b == quote) << k;
            m.events |= u64::from(is_event(b, quote)) << k;
            m.tokens |= u64::from(word || is_quiet_punct(b)) << k;
        }
        m
    }
}

/// `b` as the signed lane type of the intrinsics.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
const fn lane(b: u8) -> i8 {
    i8::from_ne_bytes([b])
}

/// The intrinsics, by instruction set.
#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    use super::{Masks, Simd, WINDOW, lane};

    /// AVX2: made only on CPUs that have it, with the bit instructions the AVX2 build of the
    /// fast path uses (`tzcnt`, `lzcnt`, `shlx`).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx2(());

    impl Avx2 {
        /// `Some` if this CPU has AVX2, BMI1, BMI2 and LZCNT: a cached load after the first
        /// call.
        #[inline(always)]
        pub(crate) fn detect() -> Option<Self> {
            let has = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("bmi1")
                && std::arch::is_x86_feature_detected!("bmi2")
                && std::arch::is_x86_feature_detected!("lzcnt");
            has.then_some(Self(()))
        }
    }

    impl Simd for Avx2 {
        #[inline(always)]
        #[allow(unsafe_code)]
        fn masks(self, w: &[u8; WINDOW], quote: u8) -> Masks {
            // SAFETY: an `Avx2` exists only where `detect` found AVX2.
            unsafe { avx2_masks(w, quote) }
        }
    }

    /// The 32 bytes `b` as a vector (one unaligned load once compiled).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn vector(b: &[u8; 32]) -> __m256i {
        let l = |i: usize| lane(b[i]);
        _mm256_setr_epi8(
            l(0),
            l(1),
            l(2),
            l(3),
            l(4),
            l(5),
            l(6),
            l(7),
            l(8),
            l(9),
            l(10),
            l(11),
            l(12),
            l(13),
            l(14),
            l(15),
            l(16),
            l(17),
            l(18),
            l(19),
            l(20),
            l(21),
            l(22),
            l(23),
            l(24),
            l(25),
            l(26),
            l(27),
            l(28),
            l(29),
            l(30),
            l(31),
        )
    }

    /// A 16-byte table in both 128-bit halves, for `_mm256_shuffle_epi8`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn table(t: [u8; 16]) -> __m256i {
        let mut both = [0u8; 32];
        let (lo, hi) = both.split_at_mut(16);
        lo.copy_from_slice(&t);
        hi.copy_from_slice(&t);
        vector(&both)
    }

    /// The byte classes of [`avx2_masks`], one bit each. Each class is a rectangle: the bytes
    /// whose high nibble is in one set and low nibble in another, so that a byte's classes are
    /// `LOW[low nibble] & HIGH[high nibble]`.
    mod class {
        /// Letters a query keyword can start with, `@`–`O` rows: `D F I K L M N`.
        pub(super) const CAND_A: u8 = 1;
        /// Letters a query keyword can start with, `P`–`_` rows: `P S U V`.
        pub(super) const CAND_P: u8 = 2;
        /// The other letters of the `@`–`O` rows.
        pub(super) const LETTER_A: u8 = 4;
        /// The other letters of the `P`–`_` rows.
        pub(super) const LETTER_P: u8 = 8;
        /// `0`–`9`.
        pub(super) const DIGIT: u8 = 16;
        /// `)*+,.`.
        pub(super) const PUNCT_2: u8 = 32;
        /// `<=>?`.
        pub(super) const PUNCT_3: u8 = 64;
        /// `\t \n \v \f \r`.
        pub(super) const CONTROL_SPACE: u8 = 128;

        /// By low nibble.
        pub(super) const LOW: [u8; 16] = {
            let mut t = [0u8; 16];
            let mut lo = 0;
            while lo < 16 {
                let mut c = 0;
                // `d f i k l m n` and `p s u v` by low nibble.
                if matches!(lo, 4 | 6 | 9 | 0xb | 0xc | 0xd | 0xe) {
                    c |= CAND_A;
                } else if lo != 0 {
                    c |= LETTER_A;
                }
                if matches!(lo, 0 | 3 | 5 | 6) {
                    c |= CAND_P;
                } else if lo <= 0xa {
                    c |= LETTER_P;
                }
                if lo <= 9 {
                    c |= DIGIT;
                }
                if matches!(lo, 9 | 0xa | 0xb | 0xc | 0xe) {
                    c |= PUNCT_2;
                }
                if lo >= 0xc {
                    c |= PUNCT_3;
                }
                if lo >= 9 && lo <= 0xd {
                    c |= CONTROL_SPACE;
                }
                t[lo] = c;
                lo += 1;
            }
            t
        };

        /// By high nibble (bytes from 0x80 on: none).
        pub(super) const HIGH: [u8; 16] = {
            let mut t = [0u8; 16];
            t[0] = CONTROL_SPACE;
            t[2] = PUNCT_2;
            t[3] = DIGIT | PUNCT_3;
            t[4] = CAND_A | LETTER_A;
            t[5] = CAND_P | LETTER_P;
            t[6] = CAND_A | LETTER_A;
            t[7] = CAND_P | LETTER_P;
            t
        };
    }

    /// Lanes where `classes` has any of the bits `set` (all below 0x80).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn any(classes: __m256i, set: u8) -> __m256i {
        _mm256_cmpgt_epi8(
            _mm256_and_si256(classes, _mm256_set1_epi8(lane(set))),
            _mm256_setzero_si256(),
        )
    }

    /// The sign bits of the 32 lanes.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn bits32(v: __m256i) -> u64 {
        u64::from(u32::from_ne_bytes(_mm256_movemask_epi8(v).to_ne_bytes()))
    }

    /// The masks of `w`, 32 bytes per instruction: one byte shuffle per nibble classifies
    /// every byte at once (as simdjson does), compares pick out `_`, `$`, space and the quote.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn avx2_masks(w: &[u8; WINDOW], quote: u8) -> Masks {
        use class::*;
        let low = table(LOW);
        let high = table(HIGH);
        let nibble = _mm256_set1_epi8(0x0f);
        let mut m = Masks { word: 0, quote: 0, events: 0, tokens: 0, dot: 0 };
        for (k, chunk) in w.as_chunks::<32>().0.iter().enumerate() {
            let v = vector(chunk);
            let lo = _mm256_shuffle_epi8(low, _mm256_and_si256(v, nibble));
            let hi = _mm256_shuffle_epi8(high, _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble));
            let classes = _mm256_and_si256(lo, hi);
            let under = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(lane(b'_')));
            let dollar = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(lane(b'$')));
            // Digits are no candidates: `.` after a word is an event instead.
            let cand = _mm256_or_si256(any(classes, CAND_A | CAND_P), dollar);
            // `v` adds its sign bit: bytes from 0x80 on continue words.
            let word = _mm256_or_si256(
                _mm256_or_si256(any(classes, LETTER_A | LETTER_P | DIGIT), cand),
                _mm256_or_si256(under, v),
            );
            let punct = any(classes, PUNCT_2 | PUNCT_3);
            // CONTROL_SPACE is the sign bit.
            let space =
                _mm256_or_si256(classes, _mm256_cmpeq_epi8(v, _mm256_set1_epi8(lane(b' '))));
            let q = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(lane(quote)));
            let passed = _mm256_or_si256(_mm256_or_si256(word, q), _mm256_or_si256(space, punct));
            let shift = 32 * k;
            m.word |= bits32(word) << shift;
            m.quote |= bits32(q) << shift;
            m.events |=
                bits32(_mm256_or_si256(cand, _mm256_xor_si256(passed, _mm256_set1_epi8(-1))))
                    << shift;
            m.tokens |= bits32(_mm256_or_si256(word, punct)) << shift;
            m.dot |= bits32(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(lane(b'.')))) << shift;
        }
        m
    }
}

/// Bit `k` of the result is the XOR of bits `0..=k` of `x`: with `x` the quote bits, the bytes
/// from an opening quote up to (not including) its closing quote.
#[inline(always)]
pub(super) const fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    type Implementation = (&'static str, fn(&[u8; WINDOW], u8) -> Masks);

    /// Every implementation on this machine, by name.
    fn implementations() -> Vec<Implementation> {
        #[allow(unused_mut)]
        let mut v: Vec<Implementation> = vec![("portable", |w, q| Portable.masks(w, q))];
        #[cfg(target_arch = "x86_64")]
        if x86::Avx2::detect().is_some() {
            v.push(("avx2", |w, q| {
                x86::Avx2::detect().map_or(Portable.masks(w, q), |a| a.masks(w, q))
            }));
        }
        v
    }

    #[test]
    fn every_implementation_agrees_on_every_byte() {
        for (name, f) in implementations() {
            for quote in [b'"', b'`'] {
                for start in (0u8..=255).step_by(WINDOW) {
                    let mut w = [0u8; WINDOW];
                    for (k, b) in w.iter_mut().enumerate() {
                        *b = start.wrapping_add(u8::try_from(k).unwrap_or_default());
                    }
                    let m = f(&w, quote);
                    for (k, &b) in w.iter().enumerate() {
                        let at = |mask: u64| mask >> k & 1 == 1;
                        let word = class(b) & CONT != 0;
                        assert_eq!(at(m.word), word, "{name}: word {b}");
                        assert_eq!(at(m.quote), b == quote, "{name}: quote {b}");
                        assert_eq!(at(m.tokens), word || is_quiet_punct(b), "{name}: token {b}");
                        // Events: exact outside words; within, a superset of the candidates
                        // (digits aside where `.` is marked).
                        assert!(!at(m.dot) || b == b'.', "{name}: dot {b}");
                        let number = class(b) & DIGIT != 0 && m.dot != 0;
                        if b == b'.' && !at(m.dot) {
                            assert!(name != "avx2", "{name}: no dot {b}");
                        }
                        if word {
                            assert!(at(m.events) || !is_cand(b) || number, "{name}: cand {b}");
                        } else {
                            assert_eq!(at(m.events), is_event(b, quote), "{name}: event {b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_candidates_are_the_first_letters_of_the_query_keywords() {
        for b in 0..=255u8 {
            let first = super::super::keywords::QUERY_KEYWORDS
                .iter()
                .any(|k| k[0] == b.to_ascii_uppercase());
            assert_eq!(starts_query_keyword(b), first, "{b}");
        }
    }

    #[test]
    fn windows_past_the_end_read_as_spaces() {
        let m = window(b"ab\"c", 0, b'"', Portable);
        assert_eq!((m.word, m.quote, m.events, m.tokens), (0b1011, 0b0100, 0, 0b1011));
        assert_eq!(window(b"ab", 5, b'"', Portable).word, 0);
    }

    #[test]
    fn prefix_xor_marks_quoted_bytes() {
        // `"a" "b""c"`: quotes at 0, 2, 4, 6, 7, 9.
        let q = 0b10_1101_0101;
        assert_eq!(prefix_xor(q), 0b01_1011_0011);
        assert_eq!(prefix_xor(1 << 63), 1 << 63);
        assert_eq!(prefix_xor(1), u64::MAX);
    }
}
