//! `RoutedConnection`: a drop-in read/write-splitting replacement for SeaORM's
//! `DatabaseConnection`.
//!
//! The adapter arrives with the adapter issue; until then this crate only fixes its place in the
//! layering: it depends on `rwsplit-core` and `rwsplit-monitor`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
