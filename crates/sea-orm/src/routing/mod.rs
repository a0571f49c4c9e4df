//! Routing: where a statement or a transaction goes, decided without I/O.
//!
//! **Owns**: the classifier's cache of statement texts and the shapes learned from replicas'
//! refusals (`classified.rs`), what one call carries (`ctx.rs`: the [`Policy`], the per-call
//! [`Ctx`], the task-locals of scopes and sessions), and the planner (`plan.rs`,
//! [`Planner`](plan::Planner)): a decision and its effects, as data, made from the statement,
//! the call, a scope's state read once and the live view of the cluster it is handed
//! (`crate::cluster`'s `Routing`, whose snapshot a plan reads once).
//!
//! **Offers**: [`Planner`](plan::Planner) (plan a statement or a transaction),
//! [`Classified`](classified::Classified) (classify a statement, learn a refused shape), and
//! the call's [`Ctx`] and [`Policy`].
//!
//! **May call**: `cluster/` (the live view it plans from), `nodes/` (the process-wide registry
//! `classified.rs` keeps learned shapes in), `consistency/` (a scope's state, read once per
//! plan), `observe/` (a plan's `Effects`, metric names), `send/`, `product/`, `routing_error`,
//! `rwsplit-core`. Never `retry/`, `connection/` or `config/`, which call it: a plan does no
//! I/O and applies none of its effects; the executor in `connection/` applies what it decides.

pub(crate) mod classified;
pub(crate) mod ctx;
pub(crate) mod plan;

pub(crate) use ctx::{Ctx, Policy, SCOPE, SESSION};
