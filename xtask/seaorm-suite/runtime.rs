// Written by `cargo xtask seaorm-suite` (rwsplit) in place of SeaORM's `tests/common/runtime.rs`:
// `block_on!` runs the test on a fresh tokio runtime, as SeaORM's does, and records its outcome
// and its connections' counts.

#[macro_export]
macro_rules! block_on {
    ($($expr:tt)*) => {
        ::sea_orm::suite::run(module_path!(), $($expr)*)
    };
}
