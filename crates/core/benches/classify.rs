//! Classification cost: a typical SeaORM statement (~200 bytes) and a 2 KB one.
//!
//! `cargo bench -p rwsplit-core --bench classify` (or `cargo xtask bench core`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rwsplit_core::{Classifier, Dialect, classify, explain};

/// A SeaORM 2 `find().filter().order_by().limit().offset()` on PostgreSQL: 197 bytes.
const PG_SELECT: &str = r#"SELECT "user"."id", "user"."name", "user"."email", "user"."created_at" FROM "user" WHERE "user"."tenant_id" = $1 AND "user"."deleted_at" IS NULL ORDER BY "user"."created_at" DESC LIMIT $2 OFFSET $3"#;
/// The same on MySQL.
const MY_SELECT: &str = "SELECT `user`.`id`, `user`.`name`, `user`.`email`, `user`.`created_at` FROM `user` WHERE `user`.`tenant_id` = ? AND `user`.`deleted_at` IS NULL ORDER BY `user`.`created_at` DESC LIMIT ? OFFSET ?";
const PG_INSERT: &str = r#"INSERT INTO "user" ("name", "email") VALUES ($1, $2) RETURNING "id", "name", "email", "created_at""#;
const PG_HINTED: &str = r#"/* rwsplit:replica, tag=analytics */ SELECT COUNT(*) AS num_items FROM (SELECT "event"."id" FROM "event" WHERE "event"."kind" = $1) AS "sub_query""#;

/// A 2 KB report query: joins, a CTE, an aggregate subquery, comments and literals.
fn big_statement() -> String {
    let mut s = String::from(
        "WITH \"recent\" AS (SELECT \"order\".\"id\", \"order\".\"customer_id\", \"order\".\"total\" FROM \"order\" WHERE \"order\".\"created_at\" > $1) /* report */ SELECT ",
    );
    let mut i = 0;
    while s.len() < 1700 {
        s.push_str(&format!("\"c\".\"attribute_{i}\", COALESCE(\"r\".\"total\", 0) AS \"t{i}\", "));
        i += 1;
    }
    s.push_str("1 FROM \"customer\" AS \"c\" INNER JOIN \"recent\" AS \"r\" ON \"r\".\"customer_id\" = \"c\".\"id\" WHERE \"c\".\"status\" IN ('active', 'trial') AND EXISTS (SELECT 1 FROM \"payment\" WHERE \"payment\".\"customer_id\" = \"c\".\"id\") ORDER BY \"c\".\"id\" LIMIT $2");
    while s.len() < 2048 {
        s.push(' ');
    }
    s
}

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
