//! The keywords the classifier recognises, and what they mean inside a read query.

use super::Reason;

/// The write reason, if keyword `kw` after `prev` makes a read query a write.
#[inline]
pub(super) fn query_keyword(kw: Kw, prev: Kw, with: bool, analyze: bool) -> Option<Reason> {
    let dml = || {
        if analyze {
            Reason::ExplainAnalyze
        } else if with {
            Reason::DataModifyingCte
        } else {
            Reason::Statement
        }
    };
    match kw {
        Kw::None => None,
        Kw::Insert | Kw::Delete | Kw::Merge => Some(dml()),
        Kw::Update if matches!(prev, Kw::For | Kw::Key) => Some(Reason::LockingClause),
        Kw::Update => Some(dml()),
        Kw::Share | Kw::No | Kw::Key if prev == Kw::For => Some(Reason::LockingClause),
        Kw::Share if prev == Kw::Key => Some(Reason::LockingClause),
        Kw::In if prev == Kw::Lock => Some(Reason::LockingClause),
        Kw::Into => Some(Reason::SelectInto),
        Kw::Value if matches!(prev, Kw::Next | Kw::Previous) => Some(Reason::WriteFunction),
        Kw::SqlCalcFoundRows => Some(Reason::SessionState),
        _ => None,
    }
}

/// MySQL system variables whose value is the session's own: an explicit session scope
/// (`@@session.x`, `@@local.x`, whose first component is `session`/`local`), a name the lexer
/// cannot read (`` @@`x` ``: empty), or a per-session result or state.
pub(super) fn is_session_sysvar(v: &[u8]) -> bool {
    const SESSION: [&[u8]; 11] = [
        b"SESSION",
        b"LOCAL",
        b"IDENTITY",
        b"LAST_INSERT_ID",
        b"INSERT_ID",
        b"WARNING_COUNT",
        b"ERROR_COUNT",
        b"LAST_GTID",
        b"IN_TRANSACTION",
        b"PSEUDO_THREAD_ID",
        b"GTID_SEQ_NO",
    ];
    v.is_empty() || SESSION.iter().any(|k| is(v, k))
}

/// What after `SHOW` reads the session's own state (MySQL/MariaDB): warnings and errors of
/// its last statement, and status or variables in session scope — explicit, or the default of
/// `SHOW STATUS`/`SHOW VARIABLES` — and its profiles.
pub(super) fn is_session_show(w: &[u8]) -> bool {
    const SESSION: [&[u8]; 9] = [
        b"WARNINGS",
        b"ERRORS",
        b"COUNT",
        b"SESSION",
        b"LOCAL",
        b"STATUS",
        b"VARIABLES",
        b"PROFILE",
        b"PROFILES",
    ];
    SESSION.iter().any(|k| is(w, k))
}

/// The keywords the classifier cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kw {
    None,
    /// Not a keyword: the `=` of `FORMAT = JSON`.
    Equals,
    Analyze,
    Binary,
    Copy,
    Delete,
    Desc,
    Describe,
    Explain,
    False,
    For,
    From,
    In,
    Insert,
    Into,
    Key,
    Lock,
    Master,
    Merge,
    Next,
    No,
    Off,
    Previous,
    Select,
    Share,
    Show,
    SqlCalcFoundRows,
    Stdout,
    Table,
    To,
    Update,
    Value,
    Values,
    With,
}

/// Every keyword [`keyword`] recognises, upper case.
const KEYWORDS: [&[u8]; 33] = [
    b"ANALYSE",
    b"ANALYZE",
    b"BINARY",
    b"COPY",
    b"DELETE",
    b"DESC",
    b"DESCRIBE",
    b"EXPLAIN",
    b"FALSE",
    b"FOR",
    b"FROM",
    b"IN",
    b"INSERT",
    b"INTO",
    b"KEY",
    b"LOCK",
    b"MASTER",
    b"MERGE",
    b"NEXT",
    b"NO",
    b"OFF",
    b"PREVIOUS",
    b"SELECT",
    b"SHARE",
    b"SHOW",
    b"SQL_CALC_FOUND_ROWS",
    b"STDOUT",
    b"TABLE",
    b"TO",
    b"UPDATE",
    b"VALUE",
    b"VALUES",
    b"WITH",
];

/// For each first byte, a bit per length (all below 32) of the `words` starting with it, either
/// case.
const fn lengths_by_first_byte(words: &[&[u8]]) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < words.len() {
        let k = words[i];
        t[k[0] as usize] |= 1 << k.len();
        t[(k[0] | 0x20) as usize] |= 1 << k.len();
        i += 1;
    }
    t
}

/// For each first byte, a bit per keyword length (all below 32) starting with it, either case.
static KEYWORD_LENGTHS: [u32; 256] = lengths_by_first_byte(&KEYWORDS);

/// For each last byte, a bit per keyword length ending with it, either case.
static KEYWORD_ENDS: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < KEYWORDS.len() {
        let k = KEYWORDS[i];
        let last = k[k.len() - 1];
        t[last as usize] |= 1 << k.len();
        t[(last | 0x20) as usize] |= 1 << k.len();
        i += 1;
    }
    t
};

/// Whether a word of `len` bytes starting with `first` can be a keyword at all: a table
/// lookup that lets most identifiers skip [`keyword`]. Never false for a keyword.
#[inline(always)]
pub(super) fn may_be_keyword(first: u8, len: usize) -> bool {
    // Bit 31 is never set (no keyword has 31 bytes), so longer words are rejected.
    (KEYWORD_LENGTHS[usize::from(first)] >> len.min(31)) & 1 != 0
}

/// Bare `EXPLAIN` options (PostgreSQL's legacy syntax and MySQL's) other than `ANALYZE`.
pub(super) fn is_explain_option(w: &[u8]) -> bool {
    is(w, b"VERBOSE") || is(w, b"FORMAT") || is(w, b"EXTENDED") || is(w, b"PARTITIONS")
}

/// `w` equals the uppercase ASCII keyword `k`, ignoring case.
#[inline(always)]
fn is(w: &[u8], k: &[u8]) -> bool {
    // Clearing bit 5 upper-cases ASCII letters and keeps `_`; `w` has `k`'s length.
    w.len() == k.len() && w.iter().zip(k).all(|(a, b)| a & 0xdf == *b)
}

/// Packs a keyword of at most 8 bytes into a `u64`, little-endian, zero-padded.
const fn pack(k: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < k.len() && i < 8 {
        v |= (k[i] as u64) << (8 * i);
        i += 1;
    }
    v
}

/// The keyword `w` is, if the classifier cares about it.
///
/// Words of up to 8 bytes are packed into a `u64` and upper-cased with one mask (clearing bit 5
/// of every byte maps `a-z` to `A-Z` and cannot map any other identifier byte onto a letter),
/// so the lookup is one integer `match`.
#[inline(always)]
pub(super) fn keyword(w: &[u8]) -> Kw {
    let len = w.len();
    if len > 8 {
        return if len == 19 && is(w, b"SQL_CALC_FOUND_ROWS") {
            Kw::SqlCalcFoundRows
        } else {
            Kw::None
        };
    }
    // Most words are not keywords: reject by (first byte, length) before packing.
    let (Some(&first), Some(&last)) = (w.first(), w.last()) else { return Kw::None };
    if !may_be_keyword(first, len) || (KEYWORD_ENDS[usize::from(last)] >> len) & 1 == 0 {
        return Kw::None;
    }
    let mut word = 0u64;
    for (i, &b) in w.iter().enumerate() {
        word |= u64::from(b & 0xdf) << (8 * i);
    }
    const ANALYSE: u64 = pack(b"ANALYSE");
    const ANALYZE: u64 = pack(b"ANALYZE");
    const BINARY: u64 = pack(b"BINARY");
    const COPY: u64 = pack(b"COPY");
    const DELETE: u64 = pack(b"DELETE");
    const DESC: u64 = pack(b"DESC");
    const DESCRIBE: u64 = pack(b"DESCRIBE");
    const EXPLAIN: u64 = pack(b"EXPLAIN");
    const FALSE: u64 = pack(b"FALSE");
    const FOR: u64 = pack(b"FOR");
    const FROM: u64 = pack(b"FROM");
    const IN: u64 = pack(b"IN");
    const INSERT: u64 = pack(b"INSERT");
    const INTO: u64 = pack(b"INTO");
    const KEY: u64 = pack(b"KEY");
    const LOCK: u64 = pack(b"LOCK");
    const MASTER: u64 = pack(b"MASTER");
    const MERGE: u64 = pack(b"MERGE");
    const NEXT: u64 = pack(b"NEXT");
    const NO: u64 = pack(b"NO");
    const OFF: u64 = pack(b"OFF");
    const PREVIOUS: u64 = pack(b"PREVIOUS");
    const SELECT: u64 = pack(b"SELECT");
    const SHARE: u64 = pack(b"SHARE");
    const SHOW: u64 = pack(b"SHOW");
    const STDOUT: u64 = pack(b"STDOUT");
    const TABLE: u64 = pack(b"TABLE");
    const TO: u64 = pack(b"TO");
    const UPDATE: u64 = pack(b"UPDATE");
    const VALUE: u64 = pack(b"VALUE");
    const VALUES: u64 = pack(b"VALUES");
    const WITH: u64 = pack(b"WITH");
    match word {
        ANALYSE | ANALYZE => Kw::Analyze,
        BINARY => Kw::Binary,
        COPY => Kw::Copy,
        DELETE => Kw::Delete,
        DESC => Kw::Desc,
        DESCRIBE => Kw::Describe,
        EXPLAIN => Kw::Explain,
        FALSE => Kw::False,
        FOR => Kw::For,
        FROM => Kw::From,
        IN => Kw::In,
        INSERT => Kw::Insert,
        INTO => Kw::Into,
        KEY => Kw::Key,
        LOCK => Kw::Lock,
        MASTER => Kw::Master,
        MERGE => Kw::Merge,
        NEXT => Kw::Next,
        NO => Kw::No,
        OFF => Kw::Off,
        PREVIOUS => Kw::Previous,
        SELECT => Kw::Select,
        SHARE => Kw::Share,
        SHOW => Kw::Show,
        STDOUT => Kw::Stdout,
        TABLE => Kw::Table,
        TO => Kw::To,
        UPDATE => Kw::Update,
        VALUE => Kw::Value,
        VALUES => Kw::Values,
        WITH => Kw::With,
        _ => Kw::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_filter_never_rejects_a_keyword() {
        for k in KEYWORDS {
            let lower = k.to_ascii_lowercase();
            assert_ne!(keyword(k), Kw::None);
            assert_eq!(keyword(&lower), keyword(k));
            assert!(may_be_keyword(k[0], k.len()), "{k:?}");
            assert!(may_be_keyword(lower[0], k.len()), "{k:?}");
        }
        assert!(!may_be_keyword(b'c', 8)); // COALESCE
        assert!(!may_be_keyword(b's', 40));
        assert!(!may_be_keyword(b'"', 4));
        assert_eq!(keyword(b"NULL"), Kw::None); // starts like NEXT, ends like no keyword
        assert_eq!(keyword(b"is"), Kw::None);
    }
}
