//! Routing: where a statement or a transaction goes, decided without I/O.
//!
//! **Owns**: the classifier's cache of statement texts and the shapes learned from replicas'
//! refusals (`classified.rs`), the adapter's side of the monitor's topology and a statement's
//! [`Plan`](route::Plan) (`route.rs`, [`Routing`](route::Routing)), what one call carries
//! (`ctx.rs`: the [`Policy`], the per-call [`Ctx`], the task-locals of scopes and sessions),
//! and the planner (`plan.rs`, [`Planner`](plan::Planner)): a decision and its effects, as data.
//!
//! **Offers**: [`Planner`](plan::Planner) (classify a statement, plan it or a transaction,
//! or plan on the primary), a [`Plan`](route::Plan) (its candidates, reason and wait),
//! [`Routing`](route::Routing) (the topology snapshots, a node's standing, failures reported
//! to the monitor), [`Classified`](classified::Classified), and the call's [`Ctx`] and
//! [`Policy`].
//!
//! **May call**: `nodes/` (the process-wide registry `classified.rs` keeps learned shapes
//! in), `consistency/` (a scope's state, read once per plan), `observe/` (a plan's
//! `Effects`, metric names), `send/`, `product/`, `routing_error`, `rwsplit-core` and
//! `rwsplit-monitor`'s topology state.
//! Never `connection/` or `config/`, which call it: the planner changes nothing and does no
//! I/O; the executor in `connection/` applies what it decides.

pub(crate) mod classified;
pub(crate) mod ctx;
pub(crate) mod plan;
pub(crate) mod route;

pub(crate) use ctx::{Ctx, Policy, SCOPE, SESSION};
