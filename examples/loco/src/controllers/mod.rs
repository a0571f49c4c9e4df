//! The HTTP handlers.

pub mod notes;
