//! The user guide's Rust samples (`docs/guide/`), compiled as doc tests: each page is the
//! documentation of a private module here, so `cargo test -p rwsplit-examples --doc` compiles
//! every ```` ```rust ```` block of every page (`no_run` for those that need a database, which
//! is nearly all; `ignore` for fragments). CI runs them with every doc test (`cargo test`, this
//! crate being a default member), and `mdbook build` and the link check in its "guide" phase;
//! a tidy test (`guide_pages_are_doc_tested`) fails if a page listed
//! in `SUMMARY.md` is missing here.

#[doc = include_str!("../docs/guide/introduction.md")]
mod introduction {}

#[doc = include_str!("../docs/guide/getting-started.md")]
mod getting_started {}

#[doc = include_str!("../docs/guide/consistency.md")]
mod consistency {}

#[doc = include_str!("../docs/guide/configuration.md")]
mod configuration {}

#[doc = include_str!("../docs/guide/web-apps.md")]
mod web_apps {}

#[doc = include_str!("../docs/guide/high-availability.md")]
mod high_availability {}

#[doc = include_str!("../docs/guide/operations.md")]
mod operations {}

#[doc = include_str!("../docs/guide/testing.md")]
mod testing {}

#[doc = include_str!("../docs/guide/troubleshooting.md")]
mod troubleshooting {}
