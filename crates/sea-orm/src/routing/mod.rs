//! Routing: where a statement or a transaction goes, and the live view of the cluster it is
//! decided from.
//!
//! **Owns**: the classifier's cache of statement texts and the shapes learned from replicas'
//! refusals (`classified.rs`), the live view of the cluster (`route.rs`,
//! [`Routing`](route::Routing): the adapter's one owner of the monitor's state — snapshots, a
//! node's standing, fencing, samples and wants, failures reported — and a statement's
//! [`Plan`](route::Plan)), what one call carries (`ctx.rs`: the [`Policy`], the per-call
//! [`Ctx`], the task-locals of scopes and sessions), and the planner (`plan.rs`,
//! [`Planner`](plan::Planner)): a decision and its effects, as data, made without I/O from the
//! statement, the call and the `Routing` it is handed.
//!
//! **Offers**: [`Planner`](plan::Planner) (classify a statement, plan it or a transaction),
//! [`Routing`](route::Routing) (plans from the live topology, on the primary too; what
//! statements and the monitor's callbacks tell it or read of it), a [`Plan`](route::Plan) (its
//! candidates, reason and wait), [`Classified`](classified::Classified), and the call's
//! [`Ctx`] and [`Policy`].
//!
//! **May call**: `nodes/` (the process-wide registry `classified.rs` keeps learned shapes
//! in), `consistency/` (a scope's state, read once per plan), `observe/` (a plan's
//! `Effects`, metric names), `send/`, `product/`, `routing_error`, `rwsplit-core` and
//! `rwsplit-monitor`'s topology state.
//! Never `connection/` or `config/`, which call it: a plan changes nothing and does no I/O;
//! the executor in `connection/` applies what it decides.

pub(crate) mod classified;
pub(crate) mod ctx;
pub(crate) mod plan;
pub(crate) mod route;

pub(crate) use ctx::{Ctx, Policy, SCOPE, SESSION};
