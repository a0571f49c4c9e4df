//! MariaDB GTID positions and MySQL GTID sets.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result, snippet};

/// One MariaDB GTID: `domain-server-sequence`.
///
/// ```
/// use rwsplit_core::MariaDbGtid;
/// let g: MariaDbGtid = "0-1-208".parse()?;
/// assert_eq!((g.domain(), g.server(), g.sequence()), (0, 1, 208));
/// assert_eq!(g.to_string(), "0-1-208");
/// # Ok::<(), rwsplit_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MariaDbGtid {
    domain: u32,
    server: u32,
    seq: u64,
}

impl MariaDbGtid {
    /// A GTID.
    #[must_use]
    pub const fn new(domain: u32, server: u32, sequence: u64) -> Self {
        Self { domain, server, seq: sequence }
    }

    /// The replication domain.
    #[must_use]
    pub const fn domain(&self) -> u32 {
        self.domain
    }

    /// The `server_id` of the server that wrote the transaction.
    #[must_use]
    pub const fn server(&self) -> u32 {
        self.server
    }

    /// The sequence number within the domain.
    #[must_use]
    pub const fn sequence(&self) -> u64 {
        self.seq
    }
}

impl fmt::Display for MariaDbGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl FromStr for MariaDbGtid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let err = || Error::InvalidGtid { text: snippet(s) };
        let mut parts = s.trim().split('-');
        let (Some(d), Some(srv), Some(n), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        let num = |t: &str| {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            t.parse::<u64>().map_err(|_| err())
        };
        let domain = u32::try_from(num(d)?).map_err(|_| err())?;
        let server = u32::try_from(num(srv)?).map_err(|_| err())?;
        Ok(Self { domain, server, seq: num(n)? })
    }
}

/// A MariaDB GTID position: at most one GTID per domain (`@@gtid_current_pos`,
/// `@@gtid_slave_pos`, or the `last_gtid` of a session), e.g. `0-1-208,1-2-5`.
///
/// Parsing is lenient with whitespace and newlines; an empty string is the empty position.
/// If a domain appears twice, the later sequence wins (ties: the larger server id).
///
/// ```
/// use rwsplit_core::MariaDbPosition;
/// let p: MariaDbPosition = "1-2-5, 0-1-208".parse()?;
/// assert_eq!(p.to_string(), "0-1-208,1-2-5");
/// assert_eq!(p.get(1).map(|g| g.sequence()), Some(5));
/// # Ok::<(), rwsplit_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MariaDbPosition {
    /// Sorted by domain, one per domain.
    gtids: Vec<MariaDbGtid>,
}

impl MariaDbPosition {
    /// A position from GTIDs in any order (`O(n log n)`).
    #[must_use]
    pub fn new(gtids: impl IntoIterator<Item = MariaDbGtid>) -> Self {
        Self::normalised(gtids.into_iter().collect())
    }

    /// Sorted by domain, one per domain: the later sequence wins (ties: the larger server id).
    fn normalised(mut gtids: Vec<MariaDbGtid>) -> Self {
        // By domain, and within a domain the winner first; `dedup` keeps the first.
        gtids.sort_unstable_by(|a, b| {
            a.domain.cmp(&b.domain).then_with(|| (b.seq, b.server).cmp(&(a.seq, a.server)))
        });
        gtids.dedup_by_key(|g| g.domain);
        Self { gtids }
    }

    /// The GTIDs, sorted by domain.
    #[must_use]
    pub fn gtids(&self) -> &[MariaDbGtid] {
        &self.gtids
    }

    /// The GTID of `domain`, if any.
    #[must_use]
    pub fn get(&self, domain: u32) -> Option<&MariaDbGtid> {
        self.gtids.binary_search_by_key(&domain, |g| g.domain).ok().and_then(|i| self.gtids.get(i))
    }

    /// Parses GTIDs separated by `sep`, in time linear in the text plus a sort.
    pub(crate) fn parse_with(text: &str, sep: char) -> Result<Self> {
        let mut gtids = Vec::new();
        for part in text.split(sep) {
            let part = part.trim();
            if !part.is_empty() {
                gtids.push(part.parse()?);
            }
        }
        Ok(Self::normalised(gtids))
    }

    pub(crate) fn write_with(&self, f: &mut fmt::Formatter<'_>, sep: char) -> fmt::Result {
        for (i, g) in self.gtids.iter().enumerate() {
            if i > 0 {
                write!(f, "{sep}")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }

    /// Transactions `self` (a token) is ahead of `replayed`, or `None` when a domain's last
    /// GTID was written by another server (a failover happened in between, so sequence
    /// numbers cannot be compared safely).
    pub(crate) fn shortfall(&self, replayed: &Self) -> Option<u64> {
        let mut total = 0u64;
        for g in &self.gtids {
            let behind = match replayed.get(g.domain) {
                None => g.seq,
                Some(r) if r.server == g.server => g.seq.saturating_sub(r.seq),
                Some(_) => return None,
            };
            total = total.saturating_add(behind);
        }
        Some(total)
    }

    /// `self` (a token) no further ahead than `primary`: a domain the primary has not written
    /// is dropped, and a GTID of the primary's server ahead of the primary's is lowered to it.
    /// A GTID of another server is kept (another history: not comparable). Linear.
    pub(crate) fn clamp_to(&mut self, primary: &Self) {
        let mut theirs = primary.gtids.iter().peekable();
        self.gtids.retain_mut(|g| {
            while theirs.next_if(|p| p.domain < g.domain).is_some() {}
            match theirs.peek() {
                Some(p) if p.domain == g.domain => {
                    if p.server == g.server && g.seq > p.seq {
                        g.seq = p.seq;
                    }
                    true
                }
                _ => false,
            }
        });
    }

    /// Keeps, per domain, the later GTID of the two (one linear pass over both).
    pub(crate) fn merge(&mut self, other: &Self) {
        if other.gtids.is_empty() {
            return;
        }
        let mine = std::mem::take(&mut self.gtids);
        let mut out: Vec<MariaDbGtid> = Vec::with_capacity(mine.len().max(other.gtids.len()));
        let (mut a, mut b) = (mine.iter().peekable(), other.gtids.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.domain < y.domain => a.next(),
                (Some(x), Some(y)) if x.domain > y.domain => b.next(),
                (Some(x), Some(y)) => {
                    let winner = if (y.seq, y.server) > (x.seq, x.server) { **y } else { **x };
                    a.next();
                    b.next();
                    out.push(winner);
                    continue;
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            out.extend(next.copied());
        }
        self.gtids = out;
    }
}

impl fmt::Display for MariaDbPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_with(f, ',')
    }
}

impl FromStr for MariaDbPosition {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse_with(s, ',')
    }
}

/// A MySQL GTID set, e.g. `3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9,…`, including
/// MySQL 8.3+ tagged GTIDs (`uuid:tag:1-5`). Comparison is set inclusion.
///
/// Parsing accepts what `@@gtid_executed` prints (upper or lower case, newlines after commas);
/// display is normalised: lowercase, sorted, intervals merged.
///
/// ```
/// use rwsplit_core::GtidSet;
/// let replica: GtidSet = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:6-9,\n4a1b5c3d-0000-0000-0000-000000000001:1-3".parse()?;
/// let token: GtidSet = "3e11fa47-71ca-11e1-9e33-c80aa9429562:7".parse()?;
/// assert!(replica.contains(&token));
/// assert_eq!(replica.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9,4a1b5c3d-0000-0000-0000-000000000001:1-3");
/// # Ok::<(), rwsplit_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GtidSet {
    /// Sorted by (uuid, tag); no empty interval lists.
    entries: Vec<GtidEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct GtidKey {
    uuid: [u8; 16],
    tag: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GtidEntry {
    key: GtidKey,
    /// Sorted, disjoint, non-adjacent, inclusive.
    intervals: Vec<(u64, u64)>,
}

impl GtidSet {
    /// Whether the set holds no transaction.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many transactions the set holds (saturating).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.entries
            .iter()
            .flat_map(|e| e.intervals.iter())
            .fold(0u64, |n, (a, b)| n.saturating_add(b - a + 1))
    }

    /// Whether every transaction of `other` is in `self`.
    #[must_use]
    pub fn contains(&self, other: &Self) -> bool {
        other.missing_from(self) == 0
    }

    /// Adds every transaction of `other` (one linear pass over both sets).
    pub fn union(&mut self, other: &Self) {
        if other.entries.is_empty() {
            return;
        }
        let mine = std::mem::take(&mut self.entries);
        let mut out: Vec<GtidEntry> = Vec::with_capacity(mine.len().max(other.entries.len()));
        let mut b = other.entries.iter().peekable();
        for e in mine {
            while let Some(o) = b.next_if(|o| o.key < e.key) {
                out.push(o.clone());
            }
            match b.next_if(|o| o.key == e.key) {
                Some(o) => {
                    let mut all = Vec::with_capacity(e.intervals.len() + o.intervals.len());
                    all.extend_from_slice(&e.intervals);
                    all.extend_from_slice(&o.intervals);
                    out.push(GtidEntry { key: e.key, intervals: normalise_intervals(all) });
                }
                None => out.push(e),
            }
        }
        out.extend(b.cloned());
        self.entries = out;
    }

    /// Keeps only the transactions `other` holds too (`self` a token, `other` the primary's
    /// executed set). Linear in both.
    pub(crate) fn intersect(&mut self, other: &Self) {
        let mut theirs = other.entries.iter().peekable();
        self.entries.retain_mut(|e| {
            while theirs.next_if(|o| o.key < e.key).is_some() {}
            let Some(o) = theirs.peek().filter(|o| o.key == e.key) else { return false };
            e.intervals = intersect_intervals(&e.intervals, &o.intervals);
            !e.intervals.is_empty()
        });
    }

    /// How many transactions of `self` are not in `other` (saturating). Allocation-free.
    pub(crate) fn missing_from(&self, other: &Self) -> u64 {
        let mut missing = 0u64;
        for e in &self.entries {
            let theirs = match other.entries.binary_search_by(|x| x.key.cmp(&e.key)) {
                Ok(i) => other.entries.get(i).map_or(&[][..], |x| &x.intervals[..]),
                Err(_) => &[][..],
            };
            missing = missing.saturating_add(uncovered(&e.intervals, theirs));
        }
        missing
    }

    /// Parses UUID sets separated by `sep`, in time linear in the text plus a sort.
    pub(crate) fn parse_with(text: &str, sep: char) -> Result<Self> {
        let mut parsed = Vec::new();
        for part in text.split(sep) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            parse_uuid_set(part, &mut parsed)?;
        }
        // By key, then by interval start: each key's intervals are contiguous and sorted.
        parsed.sort_unstable();
        let mut set = Self::default();
        let mut parsed = parsed.into_iter().peekable();
        while let Some((key, a, b)) = parsed.next() {
            let mut intervals = vec![(a, b)];
            while let Some((_, a, b)) = parsed.next_if(|(k, _, _)| *k == key) {
                intervals.push((a, b));
            }
            set.entries.push(GtidEntry { key, intervals: normalise_intervals(intervals) });
        }
        Ok(set)
    }

    pub(crate) fn write_with(&self, f: &mut fmt::Formatter<'_>, sep: char) -> fmt::Result {
        let mut last_uuid: Option<[u8; 16]> = None;
        for e in &self.entries {
            if last_uuid != Some(e.key.uuid) {
                if last_uuid.is_some() {
                    write!(f, "{sep}")?;
                }
                write_uuid(f, &e.key.uuid)?;
                last_uuid = Some(e.key.uuid);
            }
            if let Some(tag) = &e.key.tag {
                write!(f, ":{tag}")?;
            }
            for &(a, b) in &e.intervals {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_with(f, ',')
    }
}

impl FromStr for GtidSet {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse_with(s, ',')
    }
}

/// One `uuid[:tag]:interval…` element of a GTID set, its intervals pushed onto `out`.
fn parse_uuid_set(text: &str, out: &mut Vec<(GtidKey, u64, u64)>) -> Result<()> {
    let err = || Error::InvalidGtid { text: snippet(text) };
    let mut parts = text.split(':');
    let uuid = parse_uuid(parts.next().unwrap_or_default()).ok_or_else(err)?;
    let mut tag: Option<Box<str>> = None;
    let mut any = false;
    for p in parts {
        let p = p.trim();
        if p.as_bytes().first().is_some_and(|b| b.is_ascii_digit()) {
            let (a, b) = match p.split_once('-') {
                Some((a, b)) => (a, b),
                None => (p, p),
            };
            let num = |s: &str| {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                s.parse::<u64>().ok()
            };
            let (a, b) = (num(a).ok_or_else(err)?, num(b).ok_or_else(err)?);
            if a == 0 || b < a {
                return Err(err());
            }
            out.push((GtidKey { uuid, tag: tag.clone() }, a, b));
            any = true;
        } else if is_tag(p) {
            tag = Some(p.to_ascii_lowercase().into_boxed_str());
        } else {
            return Err(err());
        }
    }
    if any { Ok(()) } else { Err(err()) }
}

/// MySQL tags: a letter or underscore, then up to 31 letters, digits or underscores.
fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b.first().is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let s = s.trim().as_bytes();
    if s.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0usize;
    let mut hi: Option<u8> = None;
    for (i, &c) in s.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let v = (c as char).to_digit(16)?;
        let v = u8::try_from(v).ok()?;
        match hi.take() {
            None => hi = Some(v),
            Some(h) => {
                *out.get_mut(n)? = (h << 4) | v;
                n += 1;
            }
        }
    }
    (n == 16).then_some(out)
}

fn write_uuid(f: &mut fmt::Formatter<'_>, u: &[u8; 16]) -> fmt::Result {
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            f.write_str("-")?;
        }
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// Intervals in any order, made sorted, disjoint and non-adjacent (a sort and one pass).
fn normalise_intervals(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The numbers in both `a` and `b`; both sorted and disjoint, and so is the result.
fn intersect_intervals(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while let (Some(&(a0, a1)), Some(&(b0, b1))) = (a.get(i), b.get(j)) {
        let (lo, hi) = (a0.max(b0), a1.min(b1));
        if lo <= hi {
            out.push((lo, hi));
        }
        if a1 < b1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// How many numbers of `mine` are not in `theirs`; both sorted and disjoint.
fn uncovered(mine: &[(u64, u64)], theirs: &[(u64, u64)]) -> u64 {
    let mut missing = 0u64;
    let mut j = 0usize;
    for &(a, b) in mine {
        let mut cur = a;
        while cur <= b {
            // Skip their intervals that end before `cur`.
            while theirs.get(j).is_some_and(|&(_, e)| e < cur) {
                j += 1;
            }
            match theirs.get(j) {
                Some(&(s, e)) if s <= cur => {
                    // Covered up to e.
                    if e >= b {
                        break;
                    }
                    cur = e + 1;
                }
                Some(&(s, _)) if s <= b => {
                    missing = missing.saturating_add(s - cur);
                    cur = s;
                }
                _ => {
                    missing = missing.saturating_add(b - cur + 1);
                    break;
                }
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(&[(1, 5)], &[(1, 5)], 0)]
    #[case(&[(1, 5)], &[(1, 4)], 1)]
    #[case(&[(1, 5)], &[], 5)]
    #[case(&[(1, 5), (7, 9)], &[(2, 3), (8, 100)], 4)]
    #[case(&[(3, 3)], &[(1, 2), (4, 9)], 1)]
    #[case(&[(1, u64::MAX)], &[(1, u64::MAX)], 0)]
    #[case(&[(10, 20)], &[(1, 12), (15, 15), (19, 30)], 5)]
    fn uncovered_counts(
        #[case] mine: &[(u64, u64)],
        #[case] theirs: &[(u64, u64)],
        #[case] n: u64,
    ) {
        assert_eq!(uncovered(mine, theirs), n);
    }

    #[rstest]
    #[case(&[(1, 3)], (4, 6), &[(1, 6)])]
    #[case(&[(1, 3)], (5, 6), &[(1, 3), (5, 6)])]
    #[case(&[(5, 6)], (1, 3), &[(1, 3), (5, 6)])]
    #[case(&[(1, 2), (5, 6), (9, 10)], (3, 8), &[(1, 10)])]
    #[case(&[(1, 2), (9, 10)], (4, 5), &[(1, 2), (4, 5), (9, 10)])]
    fn interval_insertion(
        #[case] start: &[(u64, u64)],
        #[case] add: (u64, u64),
        #[case] want: &[(u64, u64)],
    ) {
        let mut v = start.to_vec();
        v.push(add);
        assert_eq!(normalise_intervals(v), want);
    }

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn tagged_sets() {
        let s: GtidSet = format!("{U1}:1-3:Alpha:1-5:7").parse().unwrap_or_default();
        assert_eq!(s.to_string(), format!("{U1}:1-3:alpha:1-5:7"));
        assert_eq!(s.len(), 9);
        let t: GtidSet = format!("{U1}:alpha:7").parse().unwrap_or_default();
        assert!(s.contains(&t));
        let t: GtidSet = format!("{U1}:beta:1").parse().unwrap_or_default();
        assert!(!s.contains(&t));
    }

    #[rstest]
    #[case("")]
    #[case("3e11fa47-71ca-11e1-9e33-c80aa9429562")]
    #[case("3e11fa47-71ca-11e1-9e33-c80aa9429562:0")]
    #[case("3e11fa47-71ca-11e1-9e33-c80aa9429562:5-3")]
    #[case("3e11fa47-71ca-11e1-9e33:1")]
    #[case("zz11fa47-71ca-11e1-9e33-c80aa9429562:1")]
    #[case("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-")]
    #[case("3e11fa47-71ca-11e1-9e33-c80aa9429562:1:bad-tag:2")]
    fn bad_sets(#[case] text: &str) {
        let parsed = text.parse::<GtidSet>();
        if text.is_empty() {
            assert_eq!(parsed, Ok(GtidSet::default()));
        } else {
            assert!(matches!(parsed, Err(Error::InvalidGtid { .. })), "{text}: {parsed:?}");
        }
    }

    #[rstest]
    #[case("0-1")]
    #[case("0-1-2-3")]
    #[case("a-1-2")]
    #[case("0-1-")]
    #[case("4294967296-1-1")]
    #[case("-1-1-1")]
    fn bad_mariadb(#[case] text: &str) {
        assert!(
            matches!(text.parse::<MariaDbPosition>(), Err(Error::InvalidGtid { .. })),
            "{text}"
        );
    }
}
