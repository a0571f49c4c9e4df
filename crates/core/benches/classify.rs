//! Classification cost: a typical SeaORM statement (~200 bytes) and a 2 KB one.
//!
//! `cargo bench -p rwsplit-core --bench classify` (or `cargo xtask bench core`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rwsplit_core::{Classifier, Dialect, classify, explain};

#[path = "shared/cases.rs"]
mod cases;

use cases::{MY_SELECT, MY_VERSIONED, PG_HINTED, PG_INSERT, PG_SELECT, big_statement};

fn bench(c: &mut Criterion) {
    assert_eq!(PG_SELECT.len(), 197);
    let big = big_statement();
    assert_eq!(big.len(), 2048);
    let custom = Classifier::default().with_write_functions(["audit_touch", "queue_*"]);

    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Bytes(PG_SELECT.len() as u64));
    g.bench_function("seaorm_select_pg_197b", |b| {
        b.iter(|| classify(black_box(PG_SELECT), Dialect::Postgres))
    });
    g.bench_function("seaorm_select_mysql_194b", |b| {
        b.iter(|| classify(black_box(MY_SELECT), Dialect::MySql))
    });
    g.bench_function("versioned_comment_mysql", |b| {
        b.iter(|| classify(black_box(MY_VERSIONED), Dialect::MySql))
    });
    g.bench_function("custom_functions_pg_197b", |b| {
        b.iter(|| custom.classify(black_box(PG_SELECT), Dialect::Postgres))
    });
    g.throughput(Throughput::Bytes(PG_INSERT.len() as u64));
    g.bench_function("seaorm_insert_returning_pg", |b| {
        b.iter(|| classify(black_box(PG_INSERT), Dialect::Postgres))
    });
    g.throughput(Throughput::Bytes(PG_HINTED.len() as u64));
    g.bench_function("explain_hinted_count_pg", |b| {
        b.iter(|| explain(black_box(PG_HINTED), Dialect::Postgres))
    });
    g.throughput(Throughput::Bytes(2048));
    g.bench_function("report_select_pg_2kb", |b| {
        b.iter(|| classify(black_box(&big), Dialect::Postgres))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
