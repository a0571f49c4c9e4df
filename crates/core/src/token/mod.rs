//! Replication positions and causal tokens.

mod gtid;
mod pg;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use gtid::{MariaDbGtid, MariaDbPosition};
pub use pg::{Lsn, PgPosition};

use crate::error::{Error, Result, snippet};
use crate::product::TokenKind;

/// How far a server's history goes (written or replayed).
///
/// For a primary, what it has written; for a replica, what it has replayed. A [`CausalToken`] wraps the position a client
/// wrote up to, so that later reads go only to replicas whose position satisfies it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplayPosition {
    /// PostgreSQL: system identifier, timeline and LSN.
    Postgres(PgPosition),
    /// MariaDB: a GTID per domain.
    MariaDb(MariaDbPosition),
}

impl ReplayPosition {
    fn kind(&self) -> &'static str {
        self.token_kind().as_str()
    }

    /// Which database's history this position is on.
    #[must_use]
    pub const fn token_kind(&self) -> TokenKind {
        match self {
            Self::Postgres(_) => TokenKind::Postgres,
            Self::MariaDb(_) => TokenKind::MariaDb,
        }
    }
}

impl FromStr for TokenKind {
    type Err = Error;

    /// The kind named `s` (`pg`, `mariadb`), as in a token's text form.
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s).ok_or_else(|| Error::UnknownTokenKind { kind: snippet(s) })
    }
}

impl From<PgPosition> for ReplayPosition {
    fn from(p: PgPosition) -> Self {
        Self::Postgres(p)
    }
}

impl From<MariaDbPosition> for ReplayPosition {
    fn from(p: MariaDbPosition) -> Self {
        Self::MariaDb(p)
    }
}

/// The kind of token text `s` and the rest after `<kind>:`, once its length is checked.
fn split_kind(s: &str) -> Result<(TokenKind, &str)> {
    if s.len() > CausalToken::MAX_LEN {
        return Err(Error::TokenTooLong { len: s.len(), max: CausalToken::MAX_LEN });
    }
    let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
    match TokenKind::from_name(kind) {
        Some(k) => Ok((k, rest)),
        None => Err(Error::UnknownTokenKind { kind: snippet(kind) }),
    }
}

const PG_SHAPE: &str = "pg:1:<system id>:<timeline>:<lsn hi>-<lsn lo>";

impl fmt::Display for ReplayPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:1:", self.kind())?;
        match self {
            Self::Postgres(p) => {
                write!(f, "{}:{}:", p.system_id(), p.timeline())?;
                p.lsn().write_with(f, '-')
            }
            Self::MariaDb(p) => p.write_with(f, '.'),
        }
    }
}

impl FromStr for ReplayPosition {
    type Err = Error;

    /// Parses the text form (see [`CausalToken`]), at most [`CausalToken::MAX_LEN`] bytes, in
    /// time linear in its length (plus a sort of its GTIDs).
    fn from_str(s: &str) -> Result<Self> {
        let (kind, rest) = split_kind(s)?;
        let kind: &'static str = kind.as_str();
        let Some((version, payload)) = rest.split_once(':') else {
            if rest.is_empty() || rest == "1" {
                let expected = match kind {
                    "pg" => PG_SHAPE,
                    _ => "mariadb:1:<domain-server-seq>[.…]",
                };
                return Err(Error::MalformedToken { kind, text: snippet(s), expected });
            }
            return Err(Error::UnsupportedTokenVersion { kind, version: snippet(rest) });
        };
        if version != "1" {
            return Err(Error::UnsupportedTokenVersion { kind, version: snippet(version) });
        }
        match kind {
            "pg" => {
                let malformed =
                    || Error::MalformedToken { kind, text: snippet(s), expected: PG_SHAPE };
                let mut parts = payload.split(':');
                let (Some(sys), Some(tli), Some(lsn), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(malformed());
                };
                let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
                let system_id =
                    sys.parse::<u64>().ok().filter(|_| digits(sys)).ok_or_else(|| {
                        Error::InvalidNumber { field: "system identifier", text: snippet(sys) }
                    })?;
                let timeline =
                    tli.parse::<u32>().ok().filter(|_| digits(tli)).ok_or_else(|| {
                        Error::InvalidNumber { field: "timeline", text: snippet(tli) }
                    })?;
                let lsn = Lsn::parse_with(lsn, '-')?;
                Ok(Self::Postgres(PgPosition::new(system_id, timeline, lsn)))
            }
            _ => Ok(Self::MariaDb(MariaDbPosition::parse_with(payload, '.')?)),
        }
    }
}

/// "I wrote up to here": an opaque replication position a later read must see.
///
/// Capture it after a write commits (PostgreSQL `pg_current_wal_lsn()` with the system id and
/// timeline; MariaDB `last_gtid`/`@@gtid_binlog_pos`), carry it as text, and route reads with
/// [`Consistency::ReadYourWrites`](crate::Consistency::ReadYourWrites). The text form and the
/// behaviour across failovers are described below.
///
/// # Text form
///
/// Tokens travel in headers, cookies and job payloads, so their text uses only ASCII letters,
/// digits, `:`, `-` and `.` (no space, comma, semicolon, quote or slash): it is a valid cookie
/// value, URL path segment and HTTP header value as is. The form is `<kind>:<version>:<payload>`:
///
/// | kind | example | payload |
/// | --- | --- | --- |
/// | PostgreSQL | `pg:1:7311234567890123456:1:16-B374D848` | system id, timeline (decimal), LSN `X-Y` (hex) |
/// | MariaDB | `mariadb:1:0-1-208.1-2-5` | GTIDs `domain-server-seq` separated by `.` |
///
/// Parsing is strict, and errors name what was wrong.
///
/// # Histories and failover
///
/// A token is satisfied only by a position on the *same history*; anything else is answered
/// "not satisfied", so the router sends the read to the primary. Precisely:
///
/// - **PostgreSQL**: the system identifier and the timeline must be equal and the replayed LSN
///   at least the token's. A replica on a later timeline may well have the data (if the token's
///   LSN precedes the fork point), but the fork point is not known here, so it is refused; a
///   token from another cluster (different system identifier) is refused.
/// - **MariaDB**: for every domain of the token, the replica's last GTID in that domain must come
///   from the same `server_id` with a sequence at least the token's; a domain the replica has
///   never seen counts as behind. After a failover the new primary writes with its own
///   `server_id`, so tokens minted before it are refused by replicas that applied anything
///   after it (safe, if pessimistic). *Not detected*: a failback to the same `server_id` after
///   a lossy failover that reused sequence numbers (MariaDB without `gtid_strict_mode`); drop
///   outstanding tokens when you rebuild a cluster.
///
/// # Merging
///
/// [`CausalToken::merge`] keeps the maximum: the later LSN, the later GTID per domain. For PostgreSQL, a token on a later timeline of the same cluster replaces
/// one on an earlier timeline: whatever of the earlier write survived the promotion precedes
/// the new timeline's writes, and whatever did not survive is gone everywhere. Tokens of
/// unrelated histories (another cluster, another database kind) cannot be combined: the
/// argument replaces `self`, so merging the newest token into a session keeps the session
/// usable after a cluster is rebuilt. Merging never fails and never panics.
///
/// # Example
///
/// ```
/// use rwsplit_core::{CausalToken, Lsn, PgPosition, ReplayPosition};
///
/// let token: CausalToken = "pg:1:7311234567890123456:1:0-16B3748".parse()?;
/// let replica = ReplayPosition::from(PgPosition::new(7311234567890123456, 1, "0/16B3750".parse()?));
/// assert!(token.is_satisfied_by(&replica));
///
/// // After a promotion, the replica is on timeline 2: another history, so not satisfied.
/// let promoted = ReplayPosition::from(PgPosition::new(7311234567890123456, 2, Lsn::new(u64::MAX)));
/// assert!(!token.is_satisfied_by(&promoted));
///
/// // Tokens merge by taking the maximum, and round-trip through text.
/// let mut session = token.clone();
/// session.merge(&"pg:1:7311234567890123456:1:0-16B4000".parse()?);
/// assert_eq!(session.to_string(), "pg:1:7311234567890123456:1:0-16B4000");
/// assert_eq!(session.to_string().parse::<CausalToken>()?, session);
///
/// // Malformed text gets a clear error.
/// let err = "pg:1:7311234567890123456:1:xyz".parse::<CausalToken>().unwrap_err();
/// assert_eq!(err.to_string(), "invalid LSN `xyz`");
/// # Ok::<(), rwsplit_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CausalToken(ReplayPosition);

impl CausalToken {
    /// The longest token text [`str::parse`] and [`CausalToken::parse_for`] accept, in bytes
    /// (16 KiB): longer text is refused with [`Error::TokenTooLong`] before any parsing.
    /// Tokens arrive in cookies and headers, so their parsing must be bounded; PostgreSQL
    /// tokens are under 50 bytes, and 16 KiB holds a MariaDB position of several hundred
    /// domains.
    pub const MAX_LEN: usize = 16 * 1024;

    /// Parses token text that must be of kind `expected` (the database the caller is
    /// connected to): a token of another kind is [`Error::TokenKindMismatch`], found before
    /// its payload is parsed. Otherwise the same as [`str::parse`].
    ///
    /// # Errors
    ///
    /// [`Error::TokenTooLong`], [`Error::UnknownTokenKind`], [`Error::TokenKindMismatch`], or
    /// any error of [`str::parse`] for a malformed token.
    pub fn parse_for(text: &str, expected: TokenKind) -> Result<Self> {
        let (found, _) = split_kind(text)?;
        if found != expected {
            return Err(Error::TokenKindMismatch { expected, found });
        }
        text.parse()
    }

    /// Which database's history the token is on.
    #[must_use]
    pub const fn kind(&self) -> TokenKind {
        self.0.token_kind()
    }

    /// A token requiring `position`.
    #[must_use]
    pub fn new(position: impl Into<ReplayPosition>) -> Self {
        Self(position.into())
    }

    /// The position the token requires.
    #[must_use]
    pub fn position(&self) -> &ReplayPosition {
        &self.0
    }

    /// Unwraps the position.
    #[must_use]
    pub fn into_position(self) -> ReplayPosition {
        self.0
    }

    /// Whether a server that has replayed up to `replayed` has everything the token requires,
    /// on the same history. Conservative: any doubt answers `false`. Allocation-free.
    #[must_use]
    #[inline]
    pub fn is_satisfied_by(&self, replayed: &ReplayPosition) -> bool {
        self.shortfall(replayed) == Some(0)
    }

    /// How far `replayed` is behind the token, in the history's own unit (bytes of WAL for
    /// PostgreSQL, transactions for GTIDs): `Some(0)` when satisfied, `None` when the two are
    /// on different histories and cannot be compared. Allocation-free.
    ///
    /// ```
    /// use rwsplit_core::{CausalToken, ReplayPosition};
    /// let token: CausalToken = "mariadb:1:0-1-208".parse()?;
    /// let at = |s: &str| s.parse::<ReplayPosition>();
    /// assert_eq!(token.shortfall(&at("mariadb:1:0-1-200")?), Some(8));
    /// assert_eq!(token.shortfall(&at("mariadb:1:0-1-300.1-1-5")?), Some(0));
    /// assert_eq!(token.shortfall(&at("mariadb:1:0-2-300")?), None); // written by another primary
    /// # Ok::<(), rwsplit_core::Error>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn shortfall(&self, replayed: &ReplayPosition) -> Option<u64> {
        match (&self.0, replayed) {
            (ReplayPosition::Postgres(t), ReplayPosition::Postgres(r)) => t.shortfall(r),
            (ReplayPosition::MariaDb(t), ReplayPosition::MariaDb(r)) => t.shortfall(r),
            _ => None,
        }
    }

    /// Folds `other` into `self`, keeping the maximum (see *Merging* in the type's docs for
    /// tokens of different histories: `other` wins).
    pub fn merge(&mut self, other: &Self) {
        match (&mut self.0, &other.0) {
            (ReplayPosition::Postgres(a), ReplayPosition::Postgres(b)) => a.merge(b),
            (ReplayPosition::MariaDb(a), ReplayPosition::MariaDb(b)) => a.merge(b),
            (a, b) => *a = b.clone(),
        }
    }

    /// Lowers the token to no further ahead than `primary`, the primary's current position,
    /// so that a token from the future (forged, or minted before a primary was restored from a
    /// backup) is treated as "now" instead of sending every read to the primary after a full
    /// catch-up wait. On the same history: PostgreSQL, a later LSN or timeline becomes the
    /// primary's position; MariaDB, domains the primary has not written are dropped and
    /// sequences of the primary's server are lowered to its own. A token of another history or kind is left alone (it is
    /// never satisfied, see *Histories and failover*). Linear in the sizes of both.
    ///
    /// ```
    /// use rwsplit_core::{CausalToken, ReplayPosition};
    /// let primary: ReplayPosition = "pg:1:7311234567890123456:1:0-3000".parse()?;
    /// let mut forged: CausalToken = "pg:1:7311234567890123456:1:FFFFFFFF-0".parse()?;
    /// forged.clamp_to(&primary);
    /// assert_eq!(forged.to_string(), "pg:1:7311234567890123456:1:0-3000");
    /// # Ok::<(), rwsplit_core::Error>(())
    /// ```
    pub fn clamp_to(&mut self, primary: &ReplayPosition) {
        match (&mut self.0, primary) {
            (ReplayPosition::Postgres(t), ReplayPosition::Postgres(p)) => t.clamp_to(p),
            (ReplayPosition::MariaDb(t), ReplayPosition::MariaDb(p)) => t.clamp_to(p),
            _ => {}
        }
    }

    /// [`CausalToken::merge`] by value.
    #[must_use]
    pub fn merged(mut self, other: &Self) -> Self {
        self.merge(other);
        self
    }
}

impl From<ReplayPosition> for CausalToken {
    fn from(p: ReplayPosition) -> Self {
        Self(p)
    }
}

impl fmt::Display for CausalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for CausalToken {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        s.parse().map(Self)
    }
}
