//! Read-your-writes and monotonic reads. It owns the scopes a write's position is kept in
//! until a read needs it (a task's, or a [`Session`](crate::Session)'s; `causal.rs`), the
//! position reads after writes, shared among the writes each covers (`coalesce.rs`), the
//! replay positions catch-up waits proved (`learned.rs`, held by `Routing`), and the token a
//! session exports (`session_token.rs`).
//!
//! It offers [`Causality`], the connection's component: a scope's state, what a statement
//! that ran means for it ([`Causality::saw`], [`Causality::after_write`],
//! [`Causality::after_transaction`], [`Causality::mark_unseen_writes`]), the position reads
//! and waits a plan's I/O steps need, and what a scope exports ([`Export`]).
//!
//! It may call what sits below it: `rwsplit-core`, `rwsplit-monitor`'s topology state, and
//! the crate's `send/` (`sending`, `deadline`), `product/` and `routing_error`; never
//! `cluster/` or `routing/` (above it: `cluster/view.rs` reads its scopes' marks), `nodes/`,
//! `observe/` or `connection/`: what it needs of them comes through views their owners
//! implement, passed to each operation that needs them — the monitor's samples ([`Samples`],
//! implemented by `Routing`), the nodes' names and position reads ([`Writers`], implemented
//! over the node registry) — and, where a write's position read is decided, two closures
//! the connection makes (whether a replica is within reach; a task to read it in).
//!
//! Stays elsewhere: the call's choice of scope and the ambient session's task-local in
//! `routing/ctx.rs` (the call's context); the read-your-writes counts a plan asks for in
//! `observe/counters.rs` (`Effects`, every plan's); how a plan reads a scope in
//! `routing/plan.rs` and a last read's floor in `cluster/view.rs` (routing decisions); wire
//! positions in `nodes/position.rs` (the product seam's SQL); resolving a session's token in
//! `connection/session.rs` (the public handle's, with the connection it exports from).

mod causal;
mod causality;
mod coalesce;
mod learned;
mod session_token;

pub(crate) use causal::{Scope, Seen, Settled, Shared, Slot};
pub(crate) use causality::{Capture, Causality, Export, Outcome, Purpose, Ran, Samples, Writers};
pub(crate) use learned::Learned;
pub use session_token::{SessionToken, SessionTokenError};
