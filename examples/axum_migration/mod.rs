//! One small axum app twice: [`before`] on plain SeaORM, [`after`] moved over to rwsplit as
//! README.md's "Moving an axum app over" says. Used by `examples/tests/axum_migration.rs`.

#![allow(dead_code, unreachable_pub)]

pub mod after;
pub mod before;
pub mod common;
