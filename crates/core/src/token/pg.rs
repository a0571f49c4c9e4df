//! PostgreSQL positions: LSNs and `(system identifier, timeline, LSN)`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result, snippet};

/// A PostgreSQL write-ahead log location (`pg_lsn`), displayed and parsed as `X/Y` in hex.
///
/// ```
/// use rwsplit_core::Lsn;
/// let lsn: Lsn = "16/B374D848".parse()?;
/// assert_eq!(lsn.get(), 0x16_B374_D848);
/// assert_eq!(lsn.to_string(), "16/B374D848");
/// assert!("16-B374D848".parse::<Lsn>().is_err());
/// # Ok::<(), rwsplit_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(u64);

impl Lsn {
    /// The LSN with this 64-bit value.
    #[must_use]
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The 64-bit value.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    pub(crate) fn parse_with(text: &str, sep: char) -> Result<Self> {
        let err = || Error::InvalidLsn { text: snippet(text) };
        let (hi, lo) = text.split_once(sep).ok_or_else(err)?;
        let half = |s: &str| -> Result<u64> {
            if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            u64::from_str_radix(s, 16).map_err(|_| err())
        };
        Ok(Self((half(hi)? << 32) | half(lo)?))
    }

    pub(crate) fn write_with(self, f: &mut fmt::Formatter<'_>, sep: char) -> fmt::Result {
        write!(f, "{:X}{sep}{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_with(f, '/')
    }
}

impl FromStr for Lsn {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse_with(s.trim(), '/')
    }
}

/// Where a PostgreSQL cluster's history is: its system identifier (from `pg_control_system()`,
/// shared by a primary and the standbys cloned from it), the timeline (incremented by every
/// promotion) and the LSN on that timeline.
///
/// For a primary after a write, use `pg_current_wal_lsn()` (or `pg_current_wal_insert_lsn()`)
/// and `timeline_id` from `pg_control_checkpoint()`; for a standby, `pg_last_wal_replay_lsn()`
/// and the timeline being replayed (`received_tli` of `pg_stat_wal_receiver`).
///
/// ```
/// use rwsplit_core::{Lsn, PgPosition};
/// let p = PgPosition::new(7_311_234_567_890_123_456, 1, Lsn::new(0x16B3748));
/// assert_eq!((p.system_id(), p.timeline(), p.lsn().get()), (7_311_234_567_890_123_456, 1, 0x16B3748));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PgPosition {
    system_id: u64,
    timeline: u32,
    lsn: Lsn,
}

impl PgPosition {
    /// A position on timeline `timeline` of cluster `system_id`.
    #[must_use]
    pub const fn new(system_id: u64, timeline: u32, lsn: Lsn) -> Self {
        Self { system_id, timeline, lsn }
    }

    /// The cluster's system identifier.
    #[must_use]
    pub const fn system_id(&self) -> u64 {
        self.system_id
    }

    /// The timeline.
    #[must_use]
    pub const fn timeline(&self) -> u32 {
        self.timeline
    }

    /// The LSN.
    #[must_use]
    pub const fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// Bytes `self` (a token) is ahead of `replayed`, or `None` on another history.
    #[inline]
    pub(crate) fn shortfall(&self, replayed: &Self) -> Option<u64> {
        if self.system_id != replayed.system_id || self.timeline != replayed.timeline {
            return None;
        }
        Some(self.lsn.0.saturating_sub(replayed.lsn.0))
    }

    /// Whether `replayed` has reached `self` (a token): `shortfall(replayed) == Some(0)`.
    #[inline(always)]
    pub(crate) fn is_reached_by(&self, replayed: &Self) -> bool {
        self.system_id == replayed.system_id
            && self.timeline == replayed.timeline
            && replayed.lsn.0 >= self.lsn.0
    }

    /// `self` (a token) no further ahead than `primary` on the same cluster: a later LSN on the
    /// same timeline, or a later timeline, becomes the primary's position.
    pub(crate) fn clamp_to(&mut self, primary: &Self) {
        if self.system_id != primary.system_id {
            return;
        }
        if self.timeline > primary.timeline
            || (self.timeline == primary.timeline && self.lsn > primary.lsn)
        {
            *self = *primary;
        }
    }

    /// The later of two tokens; see [`crate::CausalToken::merge`].
    pub(crate) fn merge(&mut self, other: &Self) {
        if self.system_id != other.system_id {
            *self = *other;
        } else if other.timeline > self.timeline
            || (other.timeline == self.timeline && other.lsn > self.lsn)
        {
            self.timeline = other.timeline;
            self.lsn = other.lsn;
        }
    }
}
