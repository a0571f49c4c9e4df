//! Hedged reads, one policy in one folder: a read on a replica that its node leaves
//! unanswered past the node's hedge delay is sent to the plan's next node as well, and the
//! first answer wins.
//!
//! **Owns**, a file each: `pace` (per node, how fast it answers, the hedge delay, stalled, and
//! a read's wait for its node to go silent: [`Pace`](pace::Pace)); `hedging` (a connection's
//! hedging state, the part the attempt step, the recorder and retry hold: each node's pace,
//! by node slot, the hedge ration, the counts, the race as the
//! connection runs it, and the one task per connection that wakes the reads waiting on a
//! silent node, its watchdog: [`Hedging`](hedging::Hedging));
//! `race` (who wins, once a hedge is sent).
//!
//! **Offers**: [`Hedging`](hedging::Hedging) for the connection, its attempt step and its
//! recorder (`connection/`) and retry's pass-over (`retry/`), the narrow
//! [`Watched`](hedging::Watched) for the connection to implement.
//!
//! **May call**: the floors below it (`observe/`, `send/`, `product/`, the error modules),
//! `rwsplit-core`; never `nodes/`, `routing/` or `connection/`, which use it. What the
//! watchdog needs of the connection comes through the narrow trait
//! [`Watched`](hedging::Watched).

pub(crate) mod hedging;
pub(crate) mod pace;
pub(crate) mod race;
