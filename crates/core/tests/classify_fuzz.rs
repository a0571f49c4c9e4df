//! A grammar fuzzer for the classifier: it builds statements that write, lock or
//! read session state — DML and DDL, locking reads, `SELECT … INTO`, writable CTEs,
//! `EXPLAIN ANALYZE` of writes, `COPY … FROM`, every built-in write function under every
//! spelling (case, quotes, schema, Unicode escapes), MySQL session variables and `SHOW`s,
//! read queries made writes by `INTO @v`/`OUTFILE`/a new table and MySQL's `EXPLAIN … INTO
//! @v` — dresses them in comments, hints, string literals, case and whitespace,
//! on MySQL/MariaDB wraps the whole or a span of them in executable comments of every kind
//! and version (`/*! */`, `/*!50000 */`, `/*M!100000 */` …: code to some server, so still a
//! write), puts read statements before them and harmless text after them, and asserts that
//! none is classified as a read.
//!
//! `cargo test` runs a bounded number of cases (`PROPTEST_CASES`, default 2,000 per run, well
//! under a second in a debug build); `RWSPLIT_FUZZ_SECONDS=N` keeps drawing fresh batches for
//! N seconds (`cargo xtask ci` runs it for a bounded time). A failure prints the shrunk
//! statement.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use rwsplit_core::{Access, DEFAULT_WRITE_FUNCTIONS, Dialect, explain};

#[path = "support/grammar.rs"]
mod grammar;

use grammar::{Case, DIALECTS, MY_WRITES, PG_WRITES, WRITES, build, draws, with_into};

fn check(case: &Case) -> Result<(), TestCaseError> {
    let c = explain(&case.sql, case.dialect);
    prop_assert_eq!(
        c.access(),
        Access::Write,
        "{:?} classified as a read ({}): {:?}",
        case.dialect,
        c.reason(),
        case.sql
    );
    Ok(())
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// No generated write, lock or session-state statement is classified as a read.
#[test]
fn no_generated_write_is_a_read() {
    let seconds = std::env::var("RWSPLIT_FUZZ_SECONDS").ok().and_then(|v| v.parse::<u64>().ok());
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let started = Instant::now();
    let mut total = 0u64;
    loop {
        // A fresh runner draws from a fresh random seed.
        let mut runner = TestRunner::new(config());
        let result = runner.run(&draws(), |draw| check(&build(&draw)));
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, draw)) => {
                panic!("{why}\nshrunk case: {:?}", build(&draw));
            }
            Err(e) => panic!("{e}"),
        }
        total += u64::from(config().cases);
        if deadline.is_none_or(|d| Instant::now() >= d) {
            break;
        }
    }
    if seconds.is_some() {
        eprintln!("classify_fuzz: {total} statements in {:.1?}, none a read", started.elapsed());
    }
}

/// The shapes the grammar builds are well-formed in the simplest spelling (a sanity check of
/// the fuzzer itself: each one is a write without any dressing).
#[test]
fn every_shape_is_a_write_as_written() {
    for d in DIALECTS {
        let own = match d {
            Dialect::Postgres => PG_WRITES,
            Dialect::MySql => MY_WRITES,
            _ => &[],
        };
        for shape in WRITES.iter().chain(own) {
            let sql = shape.join(" ");
            assert_eq!(explain(&sql, d).access(), Access::Write, "{d:?}: {sql}");
        }
        // Every base, target and place of `INTO` (the draw's `pick` decides them).
        for k in 0..2_000 {
            let sql = with_into(k, d).join(" ");
            assert_eq!(explain(&sql, d).access(), Access::Write, "{d:?}: {sql}");
        }
    }
}
