//! Sending a statement to a node, and the policies the attempt loop
//! (`crate::connection`'s `attempt`) composes, each in a file of its own.
//!
//! **Owns**: how one attempt reaches a node and how long it may take, and the policies over
//! attempts, a file each:
//!
//! - `sending`: writes in two steps, reads straight on the sqlx pool, how an attempt ended
//!   (`Attempt`, `End`);
//! - `deadline`: the request path's time limits (replica read timeout, caller's deadline,
//!   acquire timeouts) and the monitor's verdict time; `watch`: a read attempt bounded by
//!   them and by the monitor's word on its node;
//! - `failure`: how an attempt failed (which failures are the node's), and the error the
//!   caller gets for it;
//! - `refusal`: a replica's refusal of a read that writes (once on the primary, or fail).
//!
//! Hedging and retry, policies with state of their own, are folders: `crate::hedge`,
//! `crate::retry`.
//!
//! **Offers**: functions and small types with one concern each, for the attempt loop
//! (`connection/attempt.rs` and its layers in `connection/attempt/`) to compose.
//!
//! **May call**: `product/` and `routing_error`, the floors below it; never `consistency/`,
//! `observe/`, `nodes/`, `routing/`, `retry/` or `connection/`, which use its types (the tidy test
//! `adapter_folders_import_downwards`). What a policy needs of the connection comes in as arguments or
//! through a narrow trait: [`watch::Standings`] (implemented by `cluster::Routing`).

pub(crate) mod deadline;
pub(crate) mod failure;
pub(crate) mod refusal;
pub(crate) mod sending;
pub(crate) mod watch;
