//! Read-your-writes and monotonic reads: the scopes a write's position is kept in until a read
//! needs it (a task's, or a [`Session`](crate::Session)'s), the position reads after writes
//! shared among the writes each covers, the replay positions catch-up waits proved, and the
//! token a session exports.
//!
//! It calls only what sits below it (`rwsplit-core`, `rwsplit-monitor`); never `connection/`,
//! which sits above it, nor `route.rs`, which reads its scopes' marks.

mod causal;
mod coalesce;
mod learned;
mod session_token;

pub(crate) use causal::{Scope, ScopeStore, Seen, Settled, Shared, Slot};
pub(crate) use learned::Learned;
pub use session_token::{SessionToken, SessionTokenError};
