//! Integration tests against real replicated clusters. Run them with `cargo xtask itest`, which
//! starts the shared clusters they expect and tears them down afterwards.

mod axum_session;
#[path = "../../examples/blog/mod.rs"]
mod blog;
mod failover;
mod faults;
mod frozen;
mod metrics;
mod monitor_following;
mod monitor_health;
mod monitor_probes;
mod monitor_sharing;
mod network_faults;
mod own_sessions;
mod patroni;
mod prometheus;
mod sea_orm_consistency;
mod sea_orm_dropin;
mod sea_orm_hardening;
mod sea_orm_hedging;
mod sea_orm_hooks;
mod sea_orm_matrix;
mod sea_orm_patroni;
mod sea_orm_pgbouncer;
mod sea_orm_placement;
mod sea_orm_refusals;
mod sea_orm_setup;
mod spawned;
mod support;
mod testkit_cluster;
mod testkit_containers;
mod testkit_errors;
mod tonic_session;
