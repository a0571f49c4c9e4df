//! The live view of the cluster: what the monitor's state says now, and what statements tell it.
//!
//! **Owns**: the adapter's one wrapper of the monitor's `TopologyState` for routing (`view.rs`,
//! [`Routing`]: snapshots and the core router over them, a node's standing and health,
//! fencing, the monitor's samples and the positions wanted from it, the notifications a read
//! waiting on its node is woken by, failures and answers reported, positions catch-up waits
//! proved); a statement's plan (`plan.rs`, [`Plan`]: the route chosen on one snapshot, its
//! reason [`Why`], its catch-up wait). Which nodes there are (ids, membership) is the
//! registry's, `crate::nodes::Nodes`, over the same state: the two wrap different operations.
//!
//! **Offers**: [`Routing`] (plans from the live topology, on the primary too; what statements,
//! the watchdog and the monitor's callbacks tell it or read of it), [`Plan`] and [`Why`]; it
//! implements the narrow `crate::send::watch::Standings` a read's watch asks.
//!
//! **May call**: `consistency/` (a scope's marks, proved positions), `observe/` (a plan's
//! `Effects`, sent to the monitor), `send/`, `routing_error`, `rwsplit-core` and
//! `rwsplit-monitor`'s state. Never `routing/` (the planner, which reads it), `retry/` or
//! `connection/`.

pub(crate) mod plan;
pub(crate) mod view;

pub(crate) use plan::{Plan, Why};
pub(crate) use view::Routing;
