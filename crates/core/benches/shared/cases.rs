//! The classification benchmarks' statements, shared by `classify.rs` (criterion, time) and
//! `instructions.rs` (callgrind, instruction counts).

/// A SeaORM 2 `find().filter().order_by().limit().offset()` on PostgreSQL: 197 bytes.
pub(crate) const PG_SELECT: &str = r#"SELECT "user"."id", "user"."name", "user"."email", "user"."created_at" FROM "user" WHERE "user"."tenant_id" = $1 AND "user"."deleted_at" IS NULL ORDER BY "user"."created_at" DESC LIMIT $2 OFFSET $3"#;
/// The same on MySQL.
pub(crate) const MY_SELECT: &str = "SELECT `user`.`id`, `user`.`name`, `user`.`email`, `user`.`created_at` FROM `user` WHERE `user`.`tenant_id` = ? AND `user`.`deleted_at` IS NULL ORDER BY `user`.`created_at` DESC LIMIT ? OFFSET ?";
/// The MySQL one with a version-dependent executable comment (as mysqldump writes them):
/// read as code and again as a comment, two scans.
pub(crate) const MY_VERSIONED: &str = "SELECT /*!40001 SQL_NO_CACHE */ `user`.`id`, `user`.`name`, `user`.`email`, `user`.`created_at` FROM `user` WHERE `user`.`tenant_id` = ? AND `user`.`deleted_at` IS NULL ORDER BY `user`.`created_at` DESC LIMIT ? OFFSET ?";
/// SeaORM's `INSERT … RETURNING` on PostgreSQL.
pub(crate) const PG_INSERT: &str = r#"INSERT INTO "user" ("name", "email") VALUES ($1, $2) RETURNING "id", "name", "email", "created_at""#;
/// A hinted, tagged count over a subquery.
pub(crate) const PG_HINTED: &str = r#"/* rwsplit:replica, tag=analytics */ SELECT COUNT(*) AS num_items FROM (SELECT "event"."id" FROM "event" WHERE "event"."kind" = $1) AS "sub_query""#;

/// A 2 KB report query: joins, a CTE, an aggregate subquery, comments and literals.
pub(crate) fn big_statement() -> String {
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
