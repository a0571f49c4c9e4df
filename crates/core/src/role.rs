//! A node's replication role.

/// A node's replication role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts writes.
    Primary,
    /// Replays the primary's changes; reads only.
    Replica,
}
