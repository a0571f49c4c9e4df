//! Not a criterion benchmark: runs one classification case a given number of times, so that
//! `cargo xtask bench instructions` can count its instructions under callgrind (deterministic,
//! unlike time on a shared machine). `instructions --list` names the cases;
//! `instructions <case> <n>` runs one; anything else (`cargo bench` passes `--bench`) does
//! nothing.

use std::hint::black_box;

use rwsplit_core::{Access, Classifier, Dialect, classify, explain};

#[path = "shared/cases.rs"]
mod cases;

use cases::{MY_SELECT, MY_VERSIONED, PG_HINTED, PG_INSERT, PG_SELECT, big_statement};

/// The cases, named as in `classify.rs`.
const CASES: [&str; 8] = [
    "seaorm_select_pg_197b",
    "seaorm_select_mysql_194b",
    "versioned_comment_mysql",
    "custom_functions_pg_197b",
    "seaorm_insert_returning_pg",
    "explain_hinted_count_pg",
    "report_select_pg_2kb",
    "select_1",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [list] if list == "--list" => {
            for case in CASES {
                println!("{case}");
            }
        }
        [case, n] => {
            let Ok(n) = n.parse::<usize>() else {
                eprintln!("instructions: `{n}` is not a number of iterations");
                std::process::exit(2);
            };
            if let Err(e) = run(case, n) {
                eprintln!("instructions: {e}");
                std::process::exit(2);
            }
        }
        _ => {}
    }
}

/// Classifies case `case` `n` times.
fn run(case: &str, n: usize) -> Result<(), String> {
    let big = big_statement();
    let custom = Classifier::default().with_write_functions(["audit_touch", "queue_*"]);
    // Resolve the case once, so that the loop holds nothing but the call.
    let call: Box<dyn Fn() -> bool> = match case {
        "seaorm_select_pg_197b" => {
            Box::new(|| classify(black_box(PG_SELECT), Dialect::Postgres) == Access::Read)
        }
        "seaorm_select_mysql_194b" => {
            Box::new(|| classify(black_box(MY_SELECT), Dialect::MySql) == Access::Read)
        }
        "versioned_comment_mysql" => {
            Box::new(|| classify(black_box(MY_VERSIONED), Dialect::MySql) == Access::Read)
        }
        "custom_functions_pg_197b" => Box::new(move || {
            custom.classify(black_box(PG_SELECT), Dialect::Postgres) == Access::Read
        }),
        "seaorm_insert_returning_pg" => {
            Box::new(|| classify(black_box(PG_INSERT), Dialect::Postgres) == Access::Read)
        }
        "explain_hinted_count_pg" => {
            Box::new(|| explain(black_box(PG_HINTED), Dialect::Postgres).is_read())
        }
        "report_select_pg_2kb" => {
            Box::new(move || classify(black_box(big.as_str()), Dialect::Postgres) == Access::Read)
        }
        "select_1" => {
            Box::new(|| classify(black_box("SELECT 1"), Dialect::Postgres) == Access::Read)
        }
        other => return Err(format!("no case `{other}` (see --list)")),
    };
    let mut reads = 0usize;
    for _ in 0..n {
        reads += usize::from(call());
    }
    black_box(reads);
    Ok(())
}
