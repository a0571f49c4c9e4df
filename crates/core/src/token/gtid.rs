//! MariaDB GTID positions.

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

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

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
