//! Integration tests against real replicated clusters. Run them with `cargo xtask itest`, which
//! starts the shared cluster they expect and tears it down afterwards.

mod support;
mod testkit_cluster;
mod testkit_errors;
