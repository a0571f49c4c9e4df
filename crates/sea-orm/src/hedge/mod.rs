//! Hedged reads, one policy in one folder: a read on a replica that its node leaves
//! unanswered past the node's hedge delay is sent to the plan's next node as well, and the
//! first answer wins.
//!
//! **Owns**, a file each: `pace` (per node, how fast it answers, the hedge delay, stalled:
//! [`Pace`](pace::Pace), held by each node); `hedging` (a connection's hedging state, the part
//! the attempt step holds: the hedge ration, the counts, and the race as the connection runs
//! it, [`Hedging`](hedging::Hedging)); `watchdog` (the one task per connection that wakes the
//! reads waiting on a silent node, [`Watchdog`](watchdog::Watchdog), a part of the connection
//! beside `Hedging`); `race` (when the second attempt starts, who wins).
//!
//! **Offers**: [`Hedging`](hedging::Hedging) and [`Watchdog`](watchdog::Watchdog) for the
//! connection and its attempt step (`connection/`), [`Pace`](pace::Pace) for the nodes
//! (`nodes/registry.rs`), the narrow [`Watched`](watchdog::Watched) for the connection to
//! implement.
//!
//! **May call**: the floors below it (`observe/`, `send/`, `product/`, the error modules),
//! `rwsplit-core`; never `nodes/`, `routing/` or `connection/`, which use it. What the
//! watchdog needs of the connection comes through the narrow trait
//! [`Watched`](watchdog::Watched).

pub(crate) mod hedging;
pub(crate) mod pace;
pub(crate) mod race;
pub(crate) mod watchdog;
