//! Pure routing logic for rwsplit.
//!
//! # Architecture invariant
//!
//! This crate does no I/O and names neither SeaORM nor any database driver. Everything in it is
//! deterministic given its inputs, which keeps it fast to test and reusable by other adapters.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod classify;

pub use classify::{
    Access, Classification, Classifier, DEFAULT_WRITE_FUNCTIONS, Dialect, Hint, Reason, Tables,
    classify, explain, tables,
};
