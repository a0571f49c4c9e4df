//! Asynchronous lag and health probes for rwsplit.
//!
//! The probes and the monitor task arrive with the monitor issue; until then this crate only
//! fixes its place in the layering: it depends on `rwsplit-core` and never on SeaORM.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
