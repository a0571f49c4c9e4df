//! Hedged reads, one policy in one folder: a read on a replica that its node leaves
//! unanswered past the node's hedge delay is sent to the plan's next node as well, and the
//! first answer wins.
//!
//! **Owns**, a file each: `pace` (per node, how fast it answers, the hedge delay, stalled:
//! [`Pace`](pace::Pace), held by each node); `budget` (the hedge ration,
//! [`HedgeBudget`](budget::HedgeBudget)); `watchdog` (the one task per connection that wakes
//! the reads waiting on a silent node, [`Watchdog`](watchdog::Watchdog)); `race` (when the
//! second attempt starts, the race, who wins, the loser dropped).
//!
//! **Offers**: those types and functions, for the attempt loop (`connection/attempt/`) and
//! the nodes (`nodes/registry.rs`, a node's pace).
//!
//! **May call**: the floors below it (`observe/`, `send/`, `product/`, the error modules),
//! `rwsplit-core`; never `nodes/`, `routing/` or `connection/`, which use it. What the
//! watchdog needs of the connection comes through the narrow trait
//! [`Watched`](watchdog::Watched).

pub(crate) mod budget;
pub(crate) mod pace;
pub(crate) mod race;
pub(crate) mod watchdog;
