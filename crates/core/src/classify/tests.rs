//! Truth tables for the classifier.

use rstest::rstest;

use super::*;

use Access::{Read as R, Write as W};
use Dialect::{MySql as My, Postgres as Pg, Sqlite as Lite};

fn check(sql: &str, d: Dialect, access: Access, reason: Reason) {
    let c = explain(sql, d);
    assert_eq!((c.access(), c.reason()), (access, reason), "{d:?}: {sql}");
    assert_eq!(classify(sql, d), access, "{d:?}: {sql}");
}

/// Every statement SeaORM 2.0.4 emitted in `shared/research/seaorm-trace.txt`, plus the
/// sea-query shapes of `seaorm.md` §2.2.
#[rstest]
// PostgreSQL, from the trace.
#[case(Pg, r#"SELECT "user"."id", "user"."name" FROM "user""#, R, Reason::Select)]
#[case(
    Pg,
    r#"SELECT "user"."id", "user"."name" FROM "user" WHERE "user"."id" = $1 LIMIT $2"#,
    R,
    Reason::Select
)]
#[case(Pg, r#"SELECT COUNT(*) AS num_items FROM (SELECT "user"."id", "user"."name" FROM "user") AS "sub_query""#, R, Reason::Select)]
#[case(Pg, r#"SELECT 1 FROM "user""#, R, Reason::Select)]
#[case(
    Pg,
    r#"SELECT "user"."id", "user"."name" FROM "user" ORDER BY "user"."id" ASC LIMIT $1 OFFSET $2"#,
    R,
    Reason::Select
)]
#[case(
    Pg,
    r#"SELECT "user"."id", "user"."name" FROM "user" ORDER BY "user"."id" ASC LIMIT $1"#,
    R,
    Reason::Select
)]
#[case(Pg, "SELECT id, name FROM user", R, Reason::Select)]
#[case(Pg, r#"SELECT "user"."id", "user"."name" FROM "user" FOR UPDATE"#, W, Reason::LockingClause)]
#[case(Pg, r#"SELECT "post"."id", "post"."user_id", "post"."title" FROM "post" WHERE ("post"."user_id") IN (($1)) ORDER BY "post"."id" ASC"#, R, Reason::Select)]
#[case(
    Pg,
    r#"INSERT INTO "user" ("name") VALUES ($1) RETURNING "id", "name""#,
    W,
    Reason::Statement
)]
#[case(Pg, r#"INSERT INTO "user" ("name") VALUES ($1) RETURNING "id""#, W, Reason::Statement)]
#[case(Pg, r#"INSERT INTO "user" ("name") VALUES ($1)"#, W, Reason::Statement)]
#[case(
    Pg,
    r#"UPDATE "user" SET "name" = $1 WHERE "user"."id" = $2 RETURNING "id", "name""#,
    W,
    Reason::Statement
)]
#[case(Pg, r#"UPDATE "user" SET "name" = $1"#, W, Reason::Statement)]
#[case(Pg, r#"UPDATE "user" SET "name" = $1 RETURNING "id", "name""#, W, Reason::Statement)]
#[case(Pg, r#"DELETE FROM "user" WHERE "user"."id" = $1"#, W, Reason::Statement)]
#[case(
    Pg,
    r#"DELETE FROM "user" WHERE "user"."id" = $1 RETURNING "id", "name""#,
    W,
    Reason::Statement
)]
#[case(
    Pg,
    r#"INSERT INTO "user" ("name") VALUES ($1) ON CONFLICT ("id") DO NOTHING RETURNING "id""#,
    W,
    Reason::Statement
)]
#[case(Pg, "UPDATE user SET name='x'", W, Reason::Statement)]
// PostgreSQL, sea-query shapes.
#[case(
    Pg,
    r#"SELECT "id" FROM "t" WHERE "x" = $1 UNION ALL (SELECT "id" FROM "u")"#,
    R,
    Reason::Select
)]
#[case(Pg, r#"SELECT "id" FROM "t" FOR SHARE"#, W, Reason::LockingClause)]
#[case(Pg, r#"SELECT "id" FROM "t" FOR NO KEY UPDATE"#, W, Reason::LockingClause)]
#[case(Pg, r#"SELECT "id" FROM "t" FOR KEY SHARE"#, W, Reason::LockingClause)]
#[case(Pg, r#"SELECT "id" FROM "t" FOR NO KEY UPDATE NOWAIT"#, W, Reason::LockingClause)]
#[case(Pg, r#"SELECT "id" FROM "t" FOR UPDATE SKIP LOCKED"#, W, Reason::LockingClause)]
#[case(Pg, r#"SELECT "id" FROM "t" FOR UPDATE OF "t" NOWAIT"#, W, Reason::LockingClause)]
#[case(
    Pg,
    r#"WITH "gone" AS (DELETE FROM "t" WHERE "x" = $1 RETURNING *) SELECT * FROM "gone""#,
    W,
    Reason::DataModifyingCte
)]
#[case(Pg, r#"SELECT "id" INTO TABLE "newt" FROM "t" WHERE "x" = $1"#, W, Reason::SelectInto)]
#[case(Pg, r#"SELECT EXISTS(SELECT "id" FROM "t" WHERE "x" = $1)"#, R, Reason::Select)]
#[case(Pg, r#"CREATE TABLE IF NOT EXISTS "seaql_migrations" ( "version" varchar NOT NULL PRIMARY KEY, "applied_at" bigint NOT NULL )"#, W, Reason::Statement)]
#[case(Pg, r#"SELECT "seaql_migrations"."version", "seaql_migrations"."applied_at" FROM "seaql_migrations" ORDER BY "seaql_migrations"."version" ASC"#, R, Reason::Select)]
#[case(Pg, r#"INSERT INTO "seaql_migrations" ("version", "applied_at") VALUES ($1, $2) RETURNING "version""#, W, Reason::Statement)]
#[case(
    Pg,
    r#"DELETE FROM "seaql_migrations" WHERE "seaql_migrations"."version" = $1"#,
    W,
    Reason::Statement
)]
#[case(Pg, r#"WITH "cte" AS (SELECT "id" FROM "t") SELECT * FROM "cte""#, R, Reason::Select)]
#[case(Pg, r#"WITH RECURSIVE "r" ("n") AS (SELECT 1 UNION ALL SELECT "n" + 1 FROM "r" WHERE "n" < $1) SELECT "n" FROM "r""#, R, Reason::Select)]
#[case(
    Pg,
    r#"WITH "new" AS (INSERT INTO "t" ("a") VALUES ($1) RETURNING "id") SELECT "id" FROM "new""#,
    W,
    Reason::DataModifyingCte
)]
#[case(
    Pg,
    r#"WITH "u" AS (UPDATE "t" SET "a" = $1 RETURNING *) SELECT count(*) FROM "u""#,
    W,
    Reason::DataModifyingCte
)]
#[case(
    Pg,
    r#"WITH "x" AS (SELECT 1) INSERT INTO "t" SELECT * FROM "x""#,
    W,
    Reason::DataModifyingCte
)]
#[case(
    Pg,
    r#"WITH "x" AS (SELECT 1) DELETE FROM "t" WHERE "id" IN (SELECT * FROM "x")"#,
    W,
    Reason::DataModifyingCte
)]
#[case(Pg, r#"WITH "x" AS MATERIALIZED (SELECT 1) SELECT * FROM "x""#, R, Reason::Select)]
#[case(
    Pg,
    r#"SELECT "a" FROM "t" WHERE "b" IN (SELECT "b" FROM "u" FOR UPDATE)"#,
    W,
    Reason::LockingClause
)]
#[case(Pg, r#"SELECT * FROM (SELECT * FROM "t" FOR SHARE) AS "s""#, W, Reason::LockingClause)]
#[case(
    Pg,
    r#"MERGE INTO "t" USING "s" ON "t"."id" = "s"."id" WHEN MATCHED THEN UPDATE SET "a" = "s"."a""#,
    W,
    Reason::Statement
)]
// MySQL, from the trace.
#[case(My, "SELECT `user`.`id`, `user`.`name` FROM `user`", R, Reason::Select)]
#[case(
    My,
    "SELECT `user`.`id`, `user`.`name` FROM `user` WHERE `user`.`id` = ? LIMIT ?",
    R,
    Reason::Select
)]
#[case(
    My,
    "SELECT COUNT(*) AS num_items FROM (SELECT `user`.`id`, `user`.`name` FROM `user`) AS `sub_query`",
    R,
    Reason::Select
)]
#[case(My, "SELECT 1 FROM `user`", R, Reason::Select)]
#[case(
    My,
    "SELECT `user`.`id`, `user`.`name` FROM `user` ORDER BY `user`.`id` ASC LIMIT ? OFFSET ?",
    R,
    Reason::Select
)]
#[case(
    My,
    "SELECT `user`.`id`, `user`.`name` FROM `user` ORDER BY `user`.`id` ASC LIMIT ?",
    R,
    Reason::Select
)]
#[case(My, "SELECT id, name FROM user", R, Reason::Select)]
#[case(My, "SELECT `user`.`id`, `user`.`name` FROM `user` FOR UPDATE", W, Reason::LockingClause)]
#[case(
    My,
    "SELECT `post`.`id`, `post`.`user_id`, `post`.`title` FROM `post` WHERE `post`.`user_id` IN (?) ORDER BY `post`.`id` ASC",
    R,
    Reason::Select
)]
#[case(My, "INSERT INTO `user` (`name`) VALUES (?)", W, Reason::Statement)]
#[case(My, "UPDATE `user` SET `name` = ? WHERE `user`.`id` = ?", W, Reason::Statement)]
#[case(My, "UPDATE `user` SET `name` = ?", W, Reason::Statement)]
#[case(My, "DELETE FROM `user` WHERE `user`.`id` = ?", W, Reason::Statement)]
#[case(
    My,
    "INSERT INTO `user` (`name`) VALUES (?) ON DUPLICATE KEY UPDATE `id` = `id`",
    W,
    Reason::Statement
)]
#[case(My, "UPDATE user SET name='x'", W, Reason::Statement)]
// MySQL, sea-query shapes.
#[case(My, "SELECT `id` FROM `t` WHERE `x` = ? FOR UPDATE", W, Reason::LockingClause)]
#[case(My, "SELECT `id` FROM `t` WHERE `x` = ? LOCK IN SHARE MODE", W, Reason::LockingClause)]
#[case(My, "SELECT `id` FROM `t` FOR SHARE", W, Reason::LockingClause)]
#[case(My, "SELECT `id` FROM `t` FOR UPDATE NOWAIT", W, Reason::LockingClause)]
#[case(My, "SELECT `id` FROM `t` FOR UPDATE SKIP LOCKED", W, Reason::LockingClause)]
#[case(
    My,
    "SELECT `id` FROM `t` WHERE `x` = ? UNION ALL (SELECT `id` FROM `u`)",
    R,
    Reason::Select
)]
#[case(My, "SELECT EXISTS(SELECT `id` FROM `t` WHERE `x` = ?)", R, Reason::Select)]
#[case(My, "REPLACE INTO `t` (`a`) VALUES (?)", W, Reason::Statement)]
#[case(
    My,
    "CREATE TABLE IF NOT EXISTS `seaql_migrations` ( `version` varchar(255) NOT NULL PRIMARY KEY, `applied_at` bigint NOT NULL )",
    W,
    Reason::Statement
)]
#[case(
    My,
    "SELECT `seaql_migrations`.`version`, `seaql_migrations`.`applied_at` FROM `seaql_migrations`",
    R,
    Reason::Select
)]
// SQLite.
#[case(
    Lite,
    r#"SELECT "user"."id", "user"."name" FROM "user" WHERE "user"."id" = ? LIMIT ?"#,
    R,
    Reason::Select
)]
#[case(
    Lite,
    r#"INSERT INTO "user" ("name") VALUES (?) RETURNING "id", "name""#,
    W,
    Reason::Statement
)]
#[case(
    Lite,
    r#"INSERT INTO "user" ("name") VALUES (?) ON CONFLICT ("id") DO NOTHING RETURNING "id""#,
    W,
    Reason::Statement
)]
#[case(Lite, "SELECT [id] FROM [user] WHERE [name] = :name", R, Reason::Select)]
#[case(Lite, "SELECT `id` FROM `t` WHERE x = @p OR y = $q", R, Reason::Select)]
#[case(Lite, "PRAGMA table_info(t)", W, Reason::Statement)]
fn seaorm_shapes(
    #[case] d: Dialect,
    #[case] sql: &str,
    #[case] access: Access,
    #[case] reason: Reason,
) {
    check(sql, d, access, reason);
}

/// Statement kinds, in every dialect.
#[rstest]
#[case("SELECT 1", R, Reason::Select)]
#[case("select 1", R, Reason::Select)]
#[case("SeLeCt 1", R, Reason::Select)]
#[case("  \n\tSELECT 1", R, Reason::Select)]
#[case("(SELECT 1)", R, Reason::Select)]
#[case("((SELECT 1)) UNION (SELECT 2)", R, Reason::Select)]
#[case("VALUES (1), (2)", R, Reason::Select)]
#[case("TABLE t", R, Reason::Select)]
#[case("SHOW TABLES", R, Reason::Show)]
#[case("SHOW search_path", R, Reason::Show)]
#[case("DESCRIBE t", R, Reason::Show)]
#[case("DESC t", R, Reason::Show)]
#[case("DESCRIBE SELECT 1", R, Reason::Show)]
#[case("DESC ANALYZE DELETE FROM t", W, Reason::ExplainAnalyze)]
#[case("DESCRIBE ANALYZE SELECT * FROM t", R, Reason::Show)]
#[case("EXPLAIN SELECT 1", R, Reason::Explain)]
#[case("EXPLAIN INSERT INTO t VALUES (1)", R, Reason::Explain)]
#[case("EXPLAIN ANALYZE SELECT 1", R, Reason::Explain)]
#[case("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", W, Reason::ExplainAnalyze)]
#[case("EXPLAIN ANALYSE DELETE FROM t", W, Reason::ExplainAnalyze)]
#[case("EXPLAIN ANALYZE UPDATE t SET a = 1", W, Reason::ExplainAnalyze)]
#[case("EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", W, Reason::ExplainAnalyze)]
#[case("EXPLAIN (ANALYZE true, FORMAT JSON) DELETE FROM t", W, Reason::ExplainAnalyze)]
#[case("EXPLAIN (ANALYZE false) DELETE FROM t", R, Reason::Explain)]
#[case("EXPLAIN (ANALYZE off) DELETE FROM t", R, Reason::Explain)]
#[case("EXPLAIN (FORMAT JSON) DELETE FROM t", R, Reason::Explain)]
#[case("EXPLAIN ANALYZE VERBOSE SELECT * FROM t", R, Reason::Explain)]
#[case("EXPLAIN ANALYZE SELECT nextval('s')", W, Reason::WriteFunction)]
#[case("EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", W, Reason::LockingClause)]
#[case(
    "EXPLAIN ANALYZE WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
    W,
    Reason::ExplainAnalyze
)]
#[case("EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", W, Reason::ExplainAnalyze)]
#[case("EXPLAIN ANALYZE", W, Reason::ExplainAnalyze)]
#[case("EXPLAIN VERBOSE SELECT 1", R, Reason::Explain)]
#[case("INSERT INTO t VALUES (1)", W, Reason::Statement)]
#[case("insert into t values (1)", W, Reason::Statement)]
#[case("UPDATE t SET a = 1", W, Reason::Statement)]
#[case("DELETE FROM t", W, Reason::Statement)]
#[case("MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", W, Reason::Statement)]
#[case("CALL p()", W, Reason::Statement)]
#[case("DO 1", W, Reason::Statement)]
#[case("SET x = 1", W, Reason::Statement)]
#[case("RESET ALL", W, Reason::Statement)]
#[case("BEGIN", W, Reason::Statement)]
#[case("BEGIN READ ONLY", W, Reason::Statement)]
#[case("START TRANSACTION", W, Reason::Statement)]
#[case("COMMIT", W, Reason::Statement)]
#[case("ROLLBACK", W, Reason::Statement)]
#[case("SAVEPOINT s1", W, Reason::Statement)]
#[case("RELEASE SAVEPOINT s1", W, Reason::Statement)]
#[case("ROLLBACK TO SAVEPOINT s1", W, Reason::Statement)]
#[case("CREATE TABLE t (a int)", W, Reason::Statement)]
#[case("CREATE INDEX i ON t (a)", W, Reason::Statement)]
#[case("CREATE TABLE t AS SELECT 1", W, Reason::Statement)]
#[case("ALTER TABLE t ADD COLUMN b int", W, Reason::Statement)]
#[case("DROP TABLE t", W, Reason::Statement)]
#[case("TRUNCATE t", W, Reason::Statement)]
#[case("LOCK TABLE t", W, Reason::Statement)]
#[case("GRANT SELECT ON t TO u", W, Reason::Statement)]
#[case("VACUUM", W, Reason::Statement)]
#[case("ANALYZE t", W, Reason::Statement)]
#[case("PREPARE p AS SELECT 1", W, Reason::Statement)]
#[case("EXECUTE p", W, Reason::Statement)]
#[case("DEALLOCATE p", W, Reason::Statement)]
#[case("DECLARE c CURSOR FOR SELECT 1", W, Reason::Statement)]
#[case("FETCH NEXT FROM c", W, Reason::Statement)]
#[case("LISTEN ch", W, Reason::Statement)]
#[case("NOTIFY ch", W, Reason::Statement)]
#[case("USE db", W, Reason::Statement)]
#[case("frobnicate the database", W, Reason::Statement)]
#[case("42", W, Reason::Statement)]
#[case("'SELECT'", W, Reason::Statement)]
#[case(";", W, Reason::Empty)]
#[case("", W, Reason::Empty)]
#[case("   ", W, Reason::Empty)]
#[case("/* only a comment */", W, Reason::Empty)]
#[case("-- only a comment", W, Reason::Empty)]
#[case("COPY t TO STDOUT", R, Reason::CopyTo)]
#[case("COPY t (a, b) TO STDOUT WITH (FORMAT csv)", R, Reason::CopyTo)]
#[case("COPY (SELECT * FROM t) TO STDOUT", R, Reason::CopyTo)]
#[case("COPY (SELECT a FROM t WHERE b IN (SELECT b FROM u)) TO STDOUT", R, Reason::CopyTo)]
#[case("COPY t FROM STDIN", W, Reason::Statement)]
#[case("COPY t (a, b) FROM STDIN", W, Reason::Statement)]
#[case("COPY t TO '/tmp/file'", W, Reason::Statement)]
#[case("COPY t TO PROGRAM 'gzip'", W, Reason::Statement)]
#[case("COPY (DELETE FROM t RETURNING *) TO STDOUT", W, Reason::Statement)]
#[case("COPY (SELECT nextval('s')) TO STDOUT", W, Reason::WriteFunction)]
#[case("COPY t", W, Reason::Statement)]
#[case("SELECT * INTO t2 FROM t", W, Reason::SelectInto)]
#[case("SELECT a FROM t WHERE a > (SELECT max(a) FROM u)", R, Reason::Select)]
#[case("SELECT substring(a FROM 1 FOR 2) FROM t", R, Reason::Select)]
#[case("SELECT * FROM t ORDER BY a FETCH NEXT 5 ROWS ONLY", R, Reason::Select)]
#[case("SELECT t.update, t.delete, t.insert FROM t", R, Reason::Select)]
#[case("SELECT * FROM t FOR SYSTEM_TIME AS OF '2020-01-01'", R, Reason::Select)]
fn statement_kinds(
    #[case] sql: &str,
    #[case] access: Access,
    #[case] reason: Reason,
    #[values(Pg, My, Lite)] d: Dialect,
) {
    check(sql, d, access, reason);
}

/// Side-effect and session-state functions.
#[rstest]
#[case("SELECT nextval('seq')")]
#[case("SELECT NEXTVAL('seq')")]
#[case("SELECT setval('seq', 1)")]
#[case("SELECT currval('seq')")]
#[case("SELECT lastval()")]
#[case("SELECT pg_catalog.nextval('seq')")]
#[case(r#"SELECT "nextval"('seq')"#)]
#[case(r#"SELECT "pg_catalog"."nextval"('seq')"#)]
#[case("SELECT nextval ('seq')")]
#[case("SELECT nextval /* c */ ('seq')")]
#[case("SELECT pg_advisory_lock(1)")]
#[case("SELECT pg_advisory_lock_shared(1)")]
#[case("SELECT pg_advisory_unlock(1)")]
#[case("SELECT pg_advisory_unlock_all()")]
#[case("SELECT pg_advisory_xact_lock(1)")]
#[case("SELECT pg_try_advisory_lock(1)")]
#[case("SELECT pg_try_advisory_xact_lock_shared(1)")]
#[case("SELECT pg_notify('ch', 'x')")]
#[case("SELECT set_config('a.b', 'c', false)")]
#[case("SELECT txid_current()")]
#[case("SELECT txid_current_if_assigned()")]
#[case("SELECT pg_current_xact_id()")]
#[case("SELECT pg_current_wal_lsn()")]
#[case("SELECT pg_current_wal_insert_lsn()")]
#[case("SELECT pg_switch_wal()")]
#[case("SELECT pg_create_restore_point('x')")]
#[case("SELECT pg_create_physical_replication_slot('s')")]
#[case("SELECT pg_terminate_backend(42)")]
#[case("SELECT pg_cancel_backend(42)")]
#[case("SELECT pg_reload_conf()")]
#[case("SELECT pg_promote()")]
#[case("SELECT pg_stat_reset()")]
#[case("SELECT dblink_exec('c', 'DELETE FROM t')")]
#[case("SELECT lo_create(0)")]
#[case("SELECT lo_import('/tmp/x')")]
#[case("SELECT lo_unlink(42)")]
#[case("SELECT GET_LOCK('l', 10)")]
#[case("SELECT RELEASE_LOCK('l')")]
#[case("SELECT RELEASE_ALL_LOCKS()")]
#[case("SELECT IS_USED_LOCK('l')")]
#[case("SELECT IS_FREE_LOCK('l')")]
#[case("SELECT LAST_INSERT_ID()")]
#[case("SELECT FOUND_ROWS()")]
#[case("SELECT ROW_COUNT()")]
#[case("SELECT MASTER_POS_WAIT('f', 4)")]
#[case("SELECT MASTER_GTID_WAIT('0-1-1')")]
#[case("SELECT a, (SELECT nextval('s')) FROM t")]
#[case("SELECT * FROM t WHERE id = currval('s')")]
#[case("WITH x AS (SELECT nextval('s')) SELECT * FROM x")]
#[case("SELECT 1; SELECT nextval('s')")]
fn write_functions(#[case] sql: &str, #[values(Pg, My, Lite)] d: Dialect) {
    check(sql, d, W, Reason::WriteFunction);
}

/// Functions that look like or sit near write functions but are reads.
#[rstest]
#[case("SELECT count(*) FROM t")]
#[case("SELECT COALESCE(a, b), max(c), lower(d) FROM t")]
#[case("SELECT pg_sleep(1)")]
#[case("SELECT sleep(1)")]
#[case("SELECT now(), random()")]
#[case("SELECT lo_get(42)")]
#[case("SELECT pg_last_wal_replay_lsn()")]
#[case("SELECT pg_is_in_recovery()")]
#[case("SELECT current_setting('a.b')")]
#[case("SELECT nextval_like FROM t")]
#[case("SELECT nextval FROM t")]
#[case("SELECT 'nextval(1)'")]
#[case("SELECT a AS \"nextval\" FROM t")]
#[case("SELECT t.nextval FROM t")]
#[case("SELECT replace(a, 'x', 'y') FROM t")]
#[case("SELECT * FROM t WHERE a IN (1, 2) AND EXISTS (SELECT 1)")]
#[case("SELECT * FROM get_locks_report")]
fn read_functions(#[case] sql: &str, #[values(Pg, My, Lite)] d: Dialect) {
    check(sql, d, R, Reason::Select);
}

#[test]
fn user_functions() {
    let c = Classifier::default().with_write_functions(["app.touch", "queue_*", " Bump "]);
    let cases = [
        ("SELECT touch(1)", W),
        ("SELECT app.touch(1)", W),
        ("SELECT queue_pop()", W),
        ("SELECT bump()", W),
        ("SELECT queue FROM t", R),
        ("SELECT nextval('s')", W),
    ];
    for (sql, access) in cases {
        assert_eq!(c.classify(sql, Pg), access, "{sql}");
    }
    let c = Classifier::default().without_default_write_functions();
    assert_eq!(c.classify("SELECT nextval('s')", Pg), R);
}

/// Lexing traps: keywords inside strings, comments and identifiers; escapes; quoting.
#[rstest]
#[case(Pg, "SELECT 'DELETE FROM t'", R, Reason::Select)]
#[case(Pg, "SELECT 'it''s; DELETE FROM t'", R, Reason::Select)]
#[case(Pg, "SELECT E'\\' ; DELETE FROM t; '", R, Reason::Select)]
#[case(Pg, "SELECT e'\\\\'; DELETE FROM t", W, Reason::Statement)]
#[case(Pg, "SELECT E'\\''", R, Reason::Select)]
#[case(Pg, "SELECT 'a\\'", W, Reason::AmbiguousString)]
#[case(Pg, "SELECT 'a\\\\'", R, Reason::Select)]
#[case(Pg, "SELECT $$ DELETE FROM t; $$", R, Reason::Select)]
#[case(Pg, "SELECT $tag$ ; INSERT INTO t $$ nested $$ $tag$", R, Reason::Select)]
#[case(Pg, "SELECT $tag$ x $other$; DELETE FROM t", W, Reason::Unterminated)]
#[case(Pg, "SELECT $1, $2 FROM t WHERE a = $3", R, Reason::Select)]
#[case(Pg, "SELECT a$b FROM t", R, Reason::Select)]
#[case(Pg, "SELECT $1; DELETE FROM t", W, Reason::Statement)]
#[case(Pg, "SELECT \"DELETE\" FROM \"INSERT\"", R, Reason::Select)]
#[case(Pg, "SELECT \"a\"\"; DELETE\" FROM t", R, Reason::Select)]
#[case(Pg, "SELECT 1 /* ; DELETE FROM t */", R, Reason::Select)]
#[case(Pg, "SELECT 1 /* a /* nested */ ; DELETE FROM t */", R, Reason::Select)]
#[case(Pg, "SELECT 1 -- ; DELETE FROM t\n", R, Reason::Select)]
#[case(Pg, "SELECT 1 -- c\n; DELETE FROM t", W, Reason::Statement)]
#[case(Pg, "SELECT 1 # comment? no: operator\n", R, Reason::Select)]
#[case(Pg, "SELECT 'abc", W, Reason::Unterminated)]
#[case(Pg, "SELECT \"abc", W, Reason::Unterminated)]
#[case(Pg, "SELECT 1 /* abc", W, Reason::Unterminated)]
#[case(Pg, "SELECT 1 /* a /* b */", W, Reason::Unterminated)]
#[case(Pg, "SELECT $$abc", W, Reason::Unterminated)]
#[case(Pg, "SELECT arr[1] FROM t", R, Reason::Select)]
#[case(Pg, "SELECT a::text, b @> c FROM t", R, Reason::Select)]
#[case(Pg, "SELECT @ -5", R, Reason::Select)]
#[case(Pg, "SELECT U&\"d\\0061t\" FROM t", R, Reason::Select)]
#[case(Pg, "SELECT 1 FROM t WHERE a = 'x' INTO", W, Reason::SelectInto)]
#[case(My, "SELECT 'a\\'; DELETE FROM t; '", W, Reason::AmbiguousString)]
#[case(My, "SELECT 'a\\\\'; DELETE FROM t", W, Reason::Statement)]
#[case(My, "SELECT 'a\\\\'", R, Reason::Select)]
#[case(My, "SELECT 'it''s'", R, Reason::Select)]
#[case(My, "SELECT \"DELETE FROM t\"", R, Reason::Select)]
#[case(My, "SELECT `DELETE` FROM `INSERT`", R, Reason::Select)]
#[case(My, "SELECT `a``; DELETE` FROM t", R, Reason::Select)]
#[case(My, "SELECT 1 # ; DELETE FROM t\n", R, Reason::Select)]
#[case(My, "SELECT 1 -- ; DELETE FROM t\n", R, Reason::Select)]
#[case(My, "SELECT 1--1; DELETE FROM t", W, Reason::Statement)]
#[case(My, "SELECT 1 --", R, Reason::Select)]
#[case(My, "SELECT 1 /* a /* b */ ; DELETE FROM t", W, Reason::Statement)]
#[case(My, "/*! SET NAMES utf8 */", W, Reason::Statement)]
#[case(My, "SELECT 1 /*! FOR UPDATE */", W, Reason::LockingClause)]
#[case(My, "SELECT /*+ MAX_EXECUTION_TIME(1000) */ a FROM t", R, Reason::Select)]
#[case(My, "SELECT /*!STRAIGHT_JOIN*/ a FROM t", R, Reason::Select)]
#[case(My, "SELECT $1", R, Reason::Select)]
#[case(My, "SELECT 'abc", W, Reason::Unterminated)]
#[case(My, "SELECT `abc", W, Reason::Unterminated)]
#[case(My, "SELECT @x := 1", W, Reason::SessionState)]
#[case(My, "SELECT @x", W, Reason::SessionState)]
#[case(My, "SELECT @`x`", W, Reason::SessionState)]
#[case(My, "SELECT a INTO @x FROM t", W, Reason::SelectInto)]
#[case(My, "SELECT a FROM t INTO OUTFILE '/tmp/x'", W, Reason::SelectInto)]
#[case(My, "SELECT a FROM t INTO DUMPFILE '/tmp/x'", W, Reason::SelectInto)]
#[case(My, "SELECT @@version, @@global.sql_mode", R, Reason::Select)]
#[case(My, "SELECT @@version, @@session.sql_mode", W, Reason::SessionState)]
#[case(My, "SELECT @@identity", W, Reason::SessionState)]
#[case(My, "SELECT @@last_insert_id", W, Reason::SessionState)]
#[case(My, "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1", W, Reason::SessionState)]
#[case(My, "SELECT NEXT VALUE FOR s", W, Reason::WriteFunction)]
#[case(My, "SELECT PREVIOUS VALUE FOR s", W, Reason::WriteFunction)]
#[case(My, "SHOW MASTER STATUS", W, Reason::SessionState)]
#[case(My, "SHOW BINARY LOG STATUS", W, Reason::SessionState)]
#[case(My, "SHOW SLAVE STATUS", R, Reason::Show)]
#[case(My, "SHOW FULL PROCESSLIST", R, Reason::Show)]
#[case(My, "EXPLAIN FORMAT=JSON SELECT 1", R, Reason::Explain)]
#[case(My, "EXPLAIN INSERT INTO t VALUES (1)", R, Reason::Explain)]
#[case(My, "EXPLAIN ANALYZE SELECT * FROM t", R, Reason::Explain)]
#[case(My, "EXPLAIN t", R, Reason::Explain)]
#[case(My, "SELECT _utf8mb4'x', N'y', X'00', b'1'", R, Reason::Select)]
#[case(My, "SELECT a FROM t WHERE b = ? FOR UPDATE", W, Reason::LockingClause)]
#[case(My, "HANDLER t OPEN", W, Reason::Statement)]
#[case(My, "LOAD DATA INFILE 'x' INTO TABLE t", W, Reason::Statement)]
#[case(Lite, "SELECT 'a\\'", R, Reason::Select)]
#[case(Lite, "SELECT 'a\\'; DELETE FROM t", W, Reason::Statement)]
#[case(Lite, "SELECT [a; DELETE] FROM t", R, Reason::Select)]
#[case(Lite, "SELECT 1 /* a /* b */ ; DELETE FROM t", W, Reason::Statement)]
#[case(Lite, "SELECT $$ x $$", R, Reason::Select)]
#[case(Lite, "SELECT 1 # x", R, Reason::Select)]
fn lexing(#[case] d: Dialect, #[case] sql: &str, #[case] access: Access, #[case] reason: Reason) {
    check(sql, d, access, reason);
}

/// Multi-statement text is a write if any statement is.
#[rstest]
#[case("SELECT 1; SELECT 2", R, Reason::Select)]
#[case("SELECT 1; SELECT 2;", R, Reason::Select)]
#[case("SELECT 1;;; SELECT 2", R, Reason::Select)]
#[case("SHOW x; SELECT 2", R, Reason::Show)]
#[case("SELECT 1; INSERT INTO t VALUES (1)", W, Reason::Statement)]
#[case("INSERT INTO t VALUES (1); SELECT 1", W, Reason::Statement)]
#[case("SELECT 1; SELECT * FROM t FOR UPDATE", W, Reason::LockingClause)]
#[case("EXPLAIN DELETE FROM t; DELETE FROM t", W, Reason::Statement)]
#[case("EXPLAIN ANALYZE SELECT 1; DELETE FROM t", W, Reason::Statement)]
#[case("COPY t TO STDOUT; COPY t FROM STDIN", W, Reason::Statement)]
#[case("SELECT 1; BEGIN", W, Reason::Statement)]
#[case("BEGIN; SELECT 1; COMMIT", W, Reason::Statement)]
fn multi_statement(
    #[case] sql: &str,
    #[case] access: Access,
    #[case] reason: Reason,
    #[values(Pg, My, Lite)] d: Dialect,
) {
    check(sql, d, access, reason);
}

/// Hints and tags.
#[rstest]
#[case("/*rwsplit:primary*/ SELECT 1", W, Reason::Hint, Some(Hint::Primary), None)]
#[case("SELECT 1 /*rwsplit:primary*/", W, Reason::Hint, Some(Hint::Primary), None)]
#[case("SELECT /* rwsplit:primary */ 1", W, Reason::Hint, Some(Hint::Primary), None)]
#[case("SELECT 1 -- rwsplit:primary", W, Reason::Hint, Some(Hint::Primary), None)]
#[case("/*RWSPLIT:PRIMARY*/ SELECT 1", W, Reason::Hint, Some(Hint::Primary), None)]
#[case("/*rwsplit:replica*/ SELECT 1", R, Reason::Select, Some(Hint::Replica), None)]
#[case("SELECT 1 /*rwsplit:replica*/", R, Reason::Select, Some(Hint::Replica), None)]
#[case(
    "/*rwsplit:replica*/ INSERT INTO t VALUES (1)",
    W,
    Reason::Statement,
    Some(Hint::Replica),
    None
)]
#[case(
    "/*rwsplit:replica*/ SELECT nextval('s')",
    W,
    Reason::WriteFunction,
    Some(Hint::Replica),
    None
)]
#[case(
    "/*rwsplit:replica*/ SELECT 1 /*rwsplit:primary*/",
    W,
    Reason::Hint,
    Some(Hint::Primary),
    None
)]
#[case("/*rwsplit:primary,replica*/ SELECT 1", W, Reason::Hint, Some(Hint::Primary), None)]
#[case("/*rwsplit:primary*/ INSERT INTO t VALUES (1)", W, Reason::Hint, Some(Hint::Primary), None)]
#[case("/*rwsplit:tag=analytics*/ SELECT 1", R, Reason::Select, None, Some("analytics"))]
#[case(
    "/* rwsplit:replica, tag=olap-1 */ SELECT 1",
    R,
    Reason::Select,
    Some(Hint::Replica),
    Some("olap-1")
)]
#[case(
    "/* rwsplit:replica tag=a.b_c */ SELECT 1",
    R,
    Reason::Select,
    Some(Hint::Replica),
    Some("a.b_c")
)]
#[case("/* rwsplit:tag=bad;value */ SELECT 1", R, Reason::Select, None, None)]
#[case("/* rwsplit:unknown */ SELECT 1", R, Reason::Select, None, None)]
#[case("/* rwsplitprimary */ SELECT 1", R, Reason::Select, None, None)]
#[case("/* not rwsplit:primary */ SELECT 1", R, Reason::Select, None, None)]
#[case("SELECT '/*rwsplit:primary*/'", R, Reason::Select, None, None)]
#[case("SELECT \"/*rwsplit:primary*/\"", R, Reason::Select, None, None)]
fn hints(
    #[case] sql: &str,
    #[case] access: Access,
    #[case] reason: Reason,
    #[case] hint: Option<Hint>,
    #[case] tag: Option<&str>,
    #[values(Pg, My, Lite)] d: Dialect,
) {
    let c = explain(sql, d);
    assert_eq!(
        (c.access(), c.reason(), c.hint(), c.tag()),
        (access, reason, hint, tag),
        "{d:?}: {sql}"
    );
}

#[test]
fn reasons_have_stable_descriptions() {
    let all = [
        Reason::Select,
        Reason::Show,
        Reason::Explain,
        Reason::CopyTo,
        Reason::Statement,
        Reason::DataModifyingCte,
        Reason::LockingClause,
        Reason::SelectInto,
        Reason::ExplainAnalyze,
        Reason::WriteFunction,
        Reason::SessionState,
        Reason::Hint,
        Reason::Empty,
        Reason::Unterminated,
        Reason::AmbiguousString,
        Reason::Opaque,
    ];
    let mut seen = std::collections::HashSet::new();
    for r in all {
        assert!(seen.insert(r.as_str()), "duplicate description {r}");
        assert_eq!(r.to_string(), r.as_str());
        assert_eq!(r.as_str(), r.as_str().to_lowercase());
    }
}

#[test]
fn a_long_statement_is_read() {
    let mut sql = String::from("SELECT ");
    for i in 0..200 {
        sql.push_str(&format!("\"t\".\"column_{i}\", "));
    }
    sql.push_str("1 FROM \"t\" WHERE \"t\".\"id\" = $1");
    assert_eq!(classify(&sql, Pg), R);
}

/// Every construct the fast path treats specially, at every offset up to 140 bytes (after a
/// column list or a run of spaces, so that it straddles any 8-byte step of the fast path):
/// the fast and general paths agree.
#[test]
fn fast_path_agrees_at_every_offset() {
    let fast = Classifier::default().with_write_functions(["my_fn"]);
    let slow = Classifier { engine: Engine::General, ..fast.clone() };
    let constructs = [
        r#""nextval"(1)"#,
        r#""next""val"(1)"#,
        r#""nextval" /* c */ (1)"#,
        r#""a""b" "c""""d" FROM t"#,
        r#""""nextval"(1)"#,
        r#"x."nextval"(1)"#,
        r#""s".nextval(1)"#,
        r#""s". FOR UPDATE"#,
        "t FOR UPDATE",
        "t FOR\n\tSHARE",
        "t FOR KEY SHARE",
        "t LOCK IN SHARE MODE",
        "t FOR , UPDATE",
        "NEXT VALUE FOR s",
        "my_fn (1)",
        "my_fn\n(1)",
        "e'x' FROM t",
        "E'x\\'' FROM t",
        "$1::int, $2 - 1, 1.e5, 2-3/4",
        "a -- c\n FROM t",
        "a; DELETE FROM t",
        r#""unterminated"#,
        r#""unterminated""#,
        "`nextval`(1)",
        "x /*rwsplit:primary*/ FROM t",
        "(SELECT 1) TO STDOUT",
        ") TO STDOUT",
        // Numbers, parameters, long names and odd whitespace next to keywords.
        "1.for update",
        "1. FOR UPDATE",
        "12.nextval(1)",
        "$1abc(1)",
        "$1 FOR UPDATE",
        "xe'a' FOR UPDATE",
        "e'\\'' FOR UPDATE",
        "coalesce_with_a_name_longer_than_any_window_of_sixty_four_bytes_x (1) FOR UPDATE",
        "nextval_is_not_this_name_longer_than_any_window_of_sixty_four_bytes(1)",
        r#""an identifier longer than any window of sixty-four bytes, quoted"(1) FOR UPDATE"#,
        r#""nextval" (1)"#,
        "t.update",
        "t . for update",
        "FOR\x0bUPDATE",
        "a?b FOR SHARE",
        // Write functions whose names start with letters no query keyword starts with.
        "currval (1)",
        "txid_current()",
        "get_lock('a', 1)",
        r#""currval"(1)"#,
    ];
    for prefix in ["SELECT ", "COPY (SELECT ", "WITH x AS (SELECT "] {
        for construct in constructs {
            for pad in 0..140 {
                for filler in [" ", "\"t\".\"c\", ", "\"ab\"\"c\" ", "coalesce_x, ", "x1 = $12, "] {
                    let mut sql = String::from(prefix);
                    while sql.len() < pad {
                        sql.push_str(filler);
                    }
                    sql.push_str(construct);
                    for d in [Pg, My, Lite] {
                        let want = slow.explain(&sql, d);
                        for fast in engines(&fast) {
                            assert_eq!(
                                fast.explain(&sql, d),
                                want,
                                "{:?} {d:?}: {sql}",
                                fast.engine
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The first keyword read straight from the first 8 bytes agrees with the general lexer.
#[test]
fn fast_start_agrees_with_the_general_path() {
    let fast = Classifier::default();
    let slow = Classifier { engine: Engine::General, ..fast.clone() };
    for sql in [
        "SELECT 1",
        "select\t1",
        "SeLeCt(1)",
        "SELECT\"a\" FROM t",
        "SELECT'a'",
        "SELECT$1 FROM t",
        "SELECTED 1",
        "SELECT_1 FROM t",
        "SELECT\u{e9} FROM t",
        "SELECT1 FROM t",
        "SELECT-- c\n1",
        "SELECT/*rwsplit:primary*/ 1",
        "SELECT;DELETE FROM t",
        "SELECT ",
        "SELECT",
        "SELECT*",
        "SELECT * FROM t FOR UPDATE",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "with(x) AS y",
        "WITHOUT 1",
        "WITH_X AS (SELECT 1)",
        "WITH\nx AS (DELETE FROM t) SELECT 1",
        "WITH 1",
        "WITHx AS",
        "SELEC T 1",
        "\u{17f}ELECT 1 FROM t",
    ] {
        for d in [Pg, My, Lite] {
            for fast in engines(&fast) {
                assert_eq!(
                    fast.explain(sql, d),
                    slow.explain(sql, d),
                    "{:?} {d:?}: {sql}",
                    fast.engine
                );
            }
        }
    }
}

/// MySQL/MariaDB executable comments are code (`/*! … */` to both servers), and the
/// version-dependent ones (`/*!NNNNN … */`, MariaDB's `/*M! … */` and `/*M!NNNNNN … */`) are
/// read both as code and as a comment, whatever the version: a read only if it reads both ways.
/// What MariaDB 10.11 does with each shape was checked on the server (`SELECT 1 /*… , 2 */`
/// returns one column or two).
#[rstest]
// Version-dependent content is code: a lock, a write, session state in it makes the statement so.
#[case("SELECT 1 /*M!100000 FOR UPDATE */", W, Reason::LockingClause)]
#[case("SELECT 1 /*M!100000FOR UPDATE*/", W, Reason::LockingClause)]
#[case("SELECT 1 /*M! FOR UPDATE */", W, Reason::LockingClause)]
#[case("SELECT 1 /*M!999999 FOR UPDATE */", W, Reason::LockingClause)]
#[case("SELECT 1 /*!50000 FOR UPDATE */", W, Reason::LockingClause)]
#[case("SELECT 1 /*!50000FOR UPDATE*/", W, Reason::LockingClause)]
#[case("SELECT 1 /*!100000 FOR UPDATE */", W, Reason::LockingClause)]
#[case("SELECT 1 /*!99999 FOR UPDATE */", W, Reason::LockingClause)] // skipped by MariaDB, run by MySQL ≥ 9.99.99
#[case("SELECT a FROM t /*!50000 LOCK IN SHARE MODE */", W, Reason::LockingClause)]
#[case("/*!40101 SET NAMES utf8 */", W, Reason::Statement)]
#[case("/*M!100000 DELETE FROM t */", W, Reason::Statement)]
#[case("SELECT 1; /*!50000 DELETE FROM t */", W, Reason::Statement)]
#[case("SELECT 1 /*!50000 ; DELETE FROM t */", W, Reason::Statement)]
#[case("SELECT 1 /*M!100000 , nextval(s) */", W, Reason::WriteFunction)]
#[case("SELECT 1 /*M!100500 , GET_LOCK('a', 1) */", W, Reason::WriteFunction)]
#[case("SELECT 1 /*!50000 , @x */", W, Reason::SessionState)]
#[case("SELECT 1 /*M!100000 , @@session.sql_mode */", W, Reason::SessionState)]
#[case("SELECT 1 /*!50000 INTO @x */", W, Reason::SelectInto)]
#[case("EXPLAIN /*!50000 ANALYZE */ DELETE FROM t", W, Reason::ExplainAnalyze)]
// Fewer than five digits are no version: code to both servers (a number).
#[case("SELECT 1 /*!1000 FOR UPDATE */", W, Reason::LockingClause)]
#[case("SELECT 1 /*!1000 , 2 */", R, Reason::Select)]
// Skipped as a comment, the rest must read too: content that hides a write as code does not.
#[case("/*!99999 EXPLAIN */ DELETE FROM t", W, Reason::Statement)]
#[case("/*M!100000 EXPLAIN */ DELETE FROM t", W, Reason::Statement)]
#[case("EXPLAIN ANALYZE /*!99999 FALSE */ DELETE FROM t", W, Reason::ExplainAnalyze)]
#[case("SELECT a FROM t LOCK /*M!100000 x */ IN SHARE MODE", W, Reason::LockingClause)]
#[case("SELECT GET_LOCK /*!50000 + */ ('a', 1)", W, Reason::WriteFunction)]
// … in every combination: the first skipped and the second run is a DELETE.
#[case("/*!99999 EXPLAIN */ /*!50000 DELETE FROM t */ ; SELECT 1", W, Reason::Statement)]
// Read both ways: a read.
#[case("SELECT /*!40001 SQL_NO_CACHE */ * FROM t", R, Reason::Select)]
#[case("SELECT /*M!100000 SQL_NO_CACHE */ a FROM t", R, Reason::Select)]
#[case("SELECT /*!50000 a, */ 1", R, Reason::Select)]
#[case("SELECT /*!STRAIGHT_JOIN*/ a FROM t", R, Reason::Select)]
#[case("SELECT 1 /*! , 2 # c\n , 3 */", R, Reason::Select)]
#[case("SELECT 1 /*!50000 , 2 -- c\n , 3 */", R, Reason::Select)]
#[case("SELECT /*!1*/ /*!2*/ /*!3*/ /*!4*/ /*!5*/ 1", R, Reason::Select)]
#[case("SELECT /*!40001 a*/ /*!40001 b*/ /*!40001 c*/ /*!40001 d*/ 1", R, Reason::Select)]
// More than four version-dependent comments: 2ⁿ readings are not tried.
#[case(
    "SELECT /*!40001 a*/ /*!40001 b*/ /*!40001 c*/ /*!40001 d*/ /*!40001 e*/ 1",
    W,
    Reason::Opaque
)]
// Text the two readings split differently is opaque.
#[case("SELECT 1 /*!99999 ' */ , GET_LOCK('a', 1) -- '", W, Reason::Opaque)]
#[case("SELECT 1 /*M! ' */ , 1 -- '", W, Reason::Opaque)]
#[case("SELECT 1 /*! '*/' */", W, Reason::Opaque)] // a string past the first `*/`
#[case("SELECT 1 /*! `*/` */", W, Reason::Opaque)]
#[case("SELECT 1 /*M!100000 , 'x */", W, Reason::Opaque)]
#[case("SELECT 1 /*! , 2 # */\n", W, Reason::Opaque)] // a line comment past it
#[case("SELECT 1 /*!50000 /* c */ , 2 */", W, Reason::Opaque)] // nested comments
#[case("SELECT 1 /*! /*! , 2 */ */", W, Reason::Opaque)]
#[case("SELECT 1 /*M!100000 /*M!100000 , 2 */ */", W, Reason::Opaque)]
#[case("SELECT 1 /*!/*/ , 2 */", W, Reason::Opaque)]
#[case("SELECT 1 /*!1000001 , 2 */", W, Reason::Opaque)] // seven digits: MySQL reads five, MariaDB six
#[case("SELECT 1 /*!100000a , 2 */", W, Reason::Opaque)]
// Unterminated (a syntax error on the server).
#[case("SELECT 1 /*! FOR UPDATE", W, Reason::Unterminated)]
#[case("SELECT 1 /*!50000 , 2", W, Reason::Unterminated)]
#[case("SELECT 1 /*M!", W, Reason::Unterminated)]
#[case("SELECT 1 /*M!100000 , 'x'", W, Reason::Unterminated)]
// Not executable comments: `m` in lower case, a space, `/*+` hints, plain comments.
#[case("SELECT 1 /*m!100000 FOR UPDATE */", R, Reason::Select)]
#[case("SELECT 1 /*m! FOR UPDATE */", R, Reason::Select)]
#[case("SELECT 1 /* M! FOR UPDATE */", R, Reason::Select)]
#[case("SELECT 1 /* ! FOR UPDATE */", R, Reason::Select)]
#[case("SELECT 1 /*M FOR UPDATE */", R, Reason::Select)]
#[case("SELECT /*+ FOR UPDATE */ 1", R, Reason::Select)]
#[case("SELECT /* plain */ 1", R, Reason::Select)]
#[case("SELECT 1 -- !x", R, Reason::Select)]
#[case("SELECT 1 # !x", R, Reason::Select)]
// Markers inside strings and quoted identifiers are text.
#[case("SELECT '/*!50000 FOR UPDATE */'", R, Reason::Select)]
#[case("SELECT \"/*M! FOR UPDATE */\"", R, Reason::Select)]
#[case("SELECT `/*!` FROM t", R, Reason::Select)]
#[case("SELECT '*/' /*! , 1 */", R, Reason::Select)]
#[case("SELECT '/*M!100000' , '*/ FOR UPDATE'", R, Reason::Select)]
// The hint comment of an executable comment's neighbour still counts.
#[case("/* rwsplit:primary */ SELECT /*!40001 SQL_NO_CACHE */ 1", W, Reason::Hint)]
fn mysql_executable_comments(#[case] sql: &str, #[case] access: Access, #[case] reason: Reason) {
    check(sql, My, access, reason);
}

/// PostgreSQL and SQLite have no executable comments: `/*! … */` and `/*M! … */` are ordinary
/// comments, nested in PostgreSQL.
#[rstest]
#[case(Pg, "SELECT 1 /*M!100000 FOR UPDATE */", R, Reason::Select)]
#[case(Pg, "SELECT 1 /*!50000 FOR UPDATE */", R, Reason::Select)]
#[case(Pg, "SELECT 1 /*! ; DELETE FROM t */", R, Reason::Select)]
#[case(Pg, "SELECT 1 /*! /* nested */ FOR UPDATE */", R, Reason::Select)]
#[case(Pg, "SELECT 1 /*! /*M! */ */ FOR UPDATE", W, Reason::LockingClause)]
#[case(Pg, "SELECT 1 /*! '*/' */", W, Reason::Unterminated)] // `' */` is a string after the comment
#[case(Pg, "SELECT 1 /*!50000 a /* b */ ; DELETE FROM t", W, Reason::Unterminated)]
#[case(Pg, "/*!40101 SET NAMES utf8 */ SELECT 1", R, Reason::Select)]
#[case(Lite, "SELECT 1 /*M!100000 FOR UPDATE */", R, Reason::Select)]
#[case(Lite, "SELECT 1 /*! /* a */ FOR UPDATE", W, Reason::LockingClause)]
fn executable_comments_are_comments_elsewhere(
    #[case] d: Dialect,
    #[case] sql: &str,
    #[case] access: Access,
    #[case] reason: Reason,
) {
    check(sql, d, access, reason);
}

/// `INTO` in a query (a session variable, a file, PostgreSQL's new table), and in MySQL's
/// `EXPLAIN … INTO @v` (MySQL ≥ 8.0.32), goes to the primary.
#[rstest]
#[case(My, "EXPLAIN FORMAT=JSON INTO @x SELECT 1", W)] // was read
#[case(My, "EXPLAIN FORMAT = JSON INTO @x SELECT * FROM t", W)] // was read
#[case(My, "explain format=json into @`x` select 1", W)] // was read
#[case(My, "DESCRIBE FORMAT=JSON INTO @x SELECT 1", W)] // was read
#[case(My, "EXPLAIN FORMAT=JSON /*!80032 INTO @x */ SELECT 1", W)]
#[case(My, "EXPLAIN SELECT a FROM t INTO @x", W)] // was read
#[case(My, "EXPLAIN SELECT a INTO @a, @b FROM t", W)] // was read
#[case(My, "EXPLAIN SELECT a FROM t INTO OUTFILE '/tmp/x'", W)] // was read
#[case(My, "EXPLAIN SELECT a FROM t INTO dumpfile '/tmp/x'", W)] // was read
#[case(My, "EXPLAIN ANALYZE SELECT a FROM t INTO @x", W)]
#[case(My, "SELECT 1 INTO @x", W)]
#[case(My, "SELECT a INTO @a, @b FROM t", W)]
#[case(My, "SELECT a, b FROM t INTO @a, @b", W)]
#[case(My, "SELECT a FROM t UNION SELECT b FROM u INTO @v", W)]
#[case(My, "(SELECT a FROM t) INTO @v", W)]
#[case(My, "WITH x AS (SELECT 1) SELECT * FROM x INTO @v", W)]
#[case(My, "TABLE t INTO @v", W)]
#[case(My, "VALUES ROW(1) INTO @v", W)]
#[case(My, "SELECT a FROM t INTO OUTFILE '/tmp/x'", W)]
#[case(My, "SELECT a FROM t INTO DUMPFILE '/tmp/x'", W)]
#[case(Pg, "SELECT * INTO t2 FROM t", W)]
#[case(Pg, "SELECT a INTO TEMP t2 FROM t", W)]
#[case(Pg, "WITH x AS (SELECT 1) SELECT * INTO t2 FROM x", W)]
#[case(Pg, "EXPLAIN ANALYZE SELECT * INTO t2 FROM t", W)]
#[case(Pg, "TABLE t INTO t2", W)]
fn into_goes_to_the_primary(#[case] d: Dialect, #[case] sql: &str, #[case] access: Access) {
    check(sql, d, access, Reason::SelectInto);
}

/// What `INTO` does not touch stays a read: `EXPLAIN` of an `INSERT INTO` (planned only),
/// PostgreSQL's `EXPLAIN` of `SELECT … INTO` (planned, no table created), `INTO` as text.
#[rstest]
#[case(My, "EXPLAIN INSERT INTO t VALUES (1)", Reason::Explain)]
#[case(My, "EXPLAIN REPLACE INTO t SELECT * FROM u", Reason::Explain)]
#[case(My, "EXPLAIN FORMAT=JSON SELECT 1", Reason::Explain)]
#[case(My, "SELECT 'INTO @x'", Reason::Select)]
#[case(My, "SELECT `into` FROM t", Reason::Select)]
#[case(Pg, "EXPLAIN SELECT * INTO t2 FROM t", Reason::Explain)]
#[case(Pg, r#"SELECT 'x' AS "into""#, Reason::Select)]
fn into_as_text_or_planned_reads(#[case] d: Dialect, #[case] sql: &str, #[case] reason: Reason) {
    check(sql, d, R, reason);
}

/// `c` with its fast path on (the general path is `Engine::General`).
fn engines(c: &Classifier) -> [Classifier; 1] {
    [Classifier { engine: Engine::Fast, ..c.clone() }]
}

/// The fuzzer's grammar; it names `Dialect` and `DEFAULT_WRITE_FUNCTIONS` from here.
#[path = "../../tests/support/grammar.rs"]
#[allow(dead_code, reason = "the fuzzer's shape lists are for its own sanity test")]
mod fuzz_grammar;

mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_on_text(sql in any::<String>()) {
            for d in [Pg, My, Lite] {
                let _ = explain(&sql, d);
                let _ = tables(&sql, d).count();
            }
        }

        #[test]
        fn never_panics_on_sql_like_text(sql in r#"([ \n]|SELECT|INSERT|WITH|FOR|UPDATE|EXPLAIN|ANALYZE|COPY|TO|STDOUT|FROM|\(|\)|;|'|"|`|\$|\$\$|\$a\$|E'|\\|--|#|/\*|\*/|/\*!|@|@@|nextval|\.|,|[a-z]{1,4}|[0-9]){0,40}"#) {
            for d in [Pg, My, Lite] {
                let _ = explain(&sql, d);
                let _ = tables(&sql, d).count();
            }
        }

        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let sql = String::from_utf8_lossy(&bytes);
            for d in [Pg, My, Lite] {
                let _ = explain(&sql, d);
            }
        }

        /// The fused fast path and the general path agree on everything.
        #[test]
        fn fast_path_agrees_with_the_general_path(sql in r#"([ \n]|SELECT|select|WITH|FOR|UPDATE|SHARE|NO|KEY|LOCK|IN|INTO|NEXT|VALUE|COPY|TO|STDOUT|EXPLAIN|ANALYZE|\(|\)|;|'|"|`|\$1|\$\$|E'|e|\\|--|#|/\*|\*/|/\*!|@|@@|nextval|NEXTVAL|pg_catalog|\.|,|=|\*|[a-z_]{1,4}|[0-9]{1,2}|"[a-z]{0,3}"|`[a-z]{0,3}`){0,40}"#) {
            let slow = Classifier { engine: Engine::General, ..Classifier::default() };
            for d in [Pg, My, Lite] {
                for fast in engines(&Classifier::default()) {
                    prop_assert_eq!(fast.explain(&sql, d), slow.explain(&sql, d), "{:?} {:?}: {}", fast.engine, d, sql);
                }
            }
        }

        /// The fuzzer's statements (`tests/support/grammar.rs`: writes, locks and session
        /// reads in every dressing) are writes by both paths, with the same reason.
        #[test]
        fn fast_path_agrees_on_the_fuzzer_grammar(draw in fuzz_grammar::draws()) {
            let case = fuzz_grammar::build(&draw);
            let fast = Classifier::default();
            let slow = Classifier { engine: Engine::General, ..fast.clone() };
            let want = slow.explain(&case.sql, case.dialect);
            prop_assert_eq!(fast.explain(&case.sql, case.dialect), want, "{:?}", case);
            prop_assert_eq!(want.access(), Access::Write, "{:?}", case);
        }

        /// Appending a write statement to anything never yields a read.
        #[test]
        fn a_write_suffix_is_never_read(prefix in "(SELECT 1|SELECT 'a'|SELECT \"a\"|VALUES \\(1\\)|SHOW x)") {
            for d in [Pg, My, Lite] {
                let sql = format!("{prefix}; DELETE FROM t");
                prop_assert_eq!(classify(&sql, d), Access::Write);
            }
        }
    }

    proptest! {
        // Fewer cases than above: each text is up to 120 items, parsed by both paths in three
        // dialects, about 30 ms a case in an unoptimised test build (2,000 cases were a minute,
        // the unit tests' longest); the shorter texts above, 2,000 cases, draw on the same items.
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// The same over longer text (up to 120 items after a read's first keyword): quoted
        /// identifiers with doubled quotes, quoted function names, runs of punctuation and
        /// whitespace, keywords in every order, and user-configured functions.
        #[test]
        fn fast_path_agrees_on_long_text(
            start in "(SELECT |select |WITH x AS \\(SELECT |COPY \\(SELECT |EXPLAIN ANALYZE SELECT )",
            sql in r#"( |  {1,9}|\n|\t|\r|\x0b|SELECT|FOR|UPDATE|SHARE|NO|KEY|LOCK|IN|INTO|NEXT|VALUE|TO|STDOUT|\(|\)|;|'x'|"|`|\$1|\$|E'|e|--|#|/\*c\*/|/|-|:|::|@|nextval|currval|my_fn|"nextval"|"my_fn"|`nextval`|pg_catalog|\.|,|=|\*|\||&|~|[a-z_]{1,12}|[0-9]{1,3}|1\.e5|"[a-z]{0,70}"|"[a-z"]{0,9}"|`[a-z`]{0,9}`|"t"\."c",){0,120}"#,
        ) {
            let fast = Classifier::default().with_write_functions(["my_fn"]);
            let slow = Classifier { engine: Engine::General, ..fast.clone() };
            let sql = format!("{start}{sql}");
            for d in [Pg, My, Lite] {
                for fast in engines(&fast) {
                    prop_assert_eq!(fast.explain(&sql, d), slow.explain(&sql, d), "{:?} {:?}: {}", fast.engine, d, sql);
                }
            }
        }
    }
}
