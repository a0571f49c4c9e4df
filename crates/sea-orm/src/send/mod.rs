//! Sending a statement to a node, and the policies the attempt loop
//! (`crate::connection`'s `attempt`) composes, each in a file of its own.
//!
//! **Owns**: how one attempt reaches a node and how long it may take — writes in two steps
//! and reads straight on the sqlx pool (`sending`), the request path's time limits
//! (`deadline`), which failures are the node's and which let a read move on (`failure`), a
//! node's pace and the hedge ration (`pace`), the task that wakes reads waiting on a silent
//! node (`watchdog`).
//!
//! **Offers**: functions and small types with one concern each, for the attempt loop to call.
//!
//! **May call**: `hooks`, `product`, `routing_error`, `telemetry`, and what is below them;
//! never `connection` (which calls it), `route` or `consistency` (which use its types). What a
//! policy needs of the connection comes in as arguments or through a narrow trait
//! ([`watchdog::Watched`]).

pub(crate) mod deadline;
pub(crate) mod failure;
pub(crate) mod hedge;
pub(crate) mod pace;
pub(crate) mod refusal;
pub(crate) mod retry;
pub(crate) mod sending;
pub(crate) mod watchdog;
