//! Writes and locks a classifier can take for reads: one table per class of defect. A case
//! marked "trap" is classified as a read without the rule it checks (each was run against the
//! classifier without that rule); the others guard neighbouring shapes that are writes either
//! way.

use rstest::rstest;

use super::*;

use Dialect::{MySql as My, Postgres as Pg, Sqlite as Lite};

#[track_caller]
fn write(sql: &str, d: Dialect, reason: Reason) {
    let c = explain(sql, d);
    assert_eq!(c.access(), Access::Write, "{d:?}: {sql:?} is a read ({})", c.reason());
    assert_eq!(c.reason(), reason, "{d:?}: {sql:?}");
}

/// `EXPLAIN` options may be quoted or Unicode-escaped identifiers (PostgreSQL accepts
/// `EXPLAIN ("analyze") …`): a quoted `analyze` is `ANALYZE`, an escaped option may be.
#[rstest]
#[case(r#"EXPLAIN ("analyze") DELETE FROM t"#)] // trap
#[case(r#"EXPLAIN ("ANALYZE" true, FORMAT JSON) DELETE FROM t"#)] // trap
#[case(r#"EXPLAIN ("analyse") UPDATE t SET a = 1"#)] // trap
#[case(r#"EXPLAIN (U&"\0061nalyze") DELETE FROM t"#)] // trap
#[case(r#"EXPLAIN (FORMAT JSON, U&"analyze" on) INSERT INTO t VALUES (1)"#)] // trap
#[case(r#"EXPLAIN ("analyze" 'off') DELETE FROM t"#)] // trap; a quoted value never turns it off
#[case(r#"EXPLAIN (ANALYZE "off") DELETE FROM t"#)]
#[case("EXPLAIN (analyze) DELETE FROM t")]
#[case("EXPLAIN (Analyze) MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE")]
#[case("EXPLAIN (analyze, costs off) UPDATE t SET a = 1")]
fn explain_quoted_options(#[case] sql: &str) {
    write(sql, Pg, Reason::ExplainAnalyze);
}

/// `U&"…"` names a function by escapes the classifier does not decode: called (or given a
/// `UESCAPE`), it is not understood, so it is a write.
#[rstest]
#[case(r#"SELECT U&"\0070g_advisory_lock"(42)"#)] // trap (took a lock on a hot standby)
#[case(r#"SELECT u&"\0070g_advisory_lock" (42)"#)] // trap
#[case(r#"SELECT pg_catalog.U&"\0070g_advisory_lock"(42)"#)] // trap
#[case(r#"SELECT U&"!0070g_advisory_lock" UESCAPE '!' (42)"#)] // trap
#[case(r#"SELECT * FROM U&"\+000070g_advisory_xact_lock"(1)"#)] // trap
#[case(r#"SELECT "t"."a", U&"\006Eextval"('s') FROM "t""#)] // trap
#[case(r#"SELECT U&"nextval" /* c */ ('s')"#)]
#[case(r#"EXPLAIN ANALYZE SELECT U&"\0070g_advisory_lock"(42)"#)] // trap
fn unicode_escaped_function_names(#[case] sql: &str) {
    write(sql, Pg, Reason::Opaque);
}

/// Quoted names in function position are compared like bare ones (these were already writes).
#[rstest]
#[case(Pg, r#"SELECT "pg_advisory_lock"(42)"#)]
#[case(Pg, r#"SELECT "pg_catalog"."pg_try_advisory_lock" (42)"#)]
#[case(My, "SELECT `GET_LOCK`('a', 1)")]
fn quoted_function_names(#[case] d: Dialect, #[case] sql: &str) {
    write(sql, d, Reason::WriteFunction);
}

/// MySQL and MariaDB end `#` and `-- ` comments at `\n` only (and `-- ` needs whitespace or a
/// control character, DEL included); SQLite ends `--` at `\n` only; PostgreSQL at `\n` or `\r`.
#[rstest]
#[case(My, "SELECT 1 #\r' \n, GET_LOCK('a', 1) -- '", Reason::WriteFunction)] // trap
#[case(My, "SELECT 1 --\x7f'\n, GET_LOCK('a', 1) -- '", Reason::WriteFunction)] // trap
#[case(My, "SELECT 1 # x\0\n", Reason::Opaque)] // trap: NUL's effect on the server's scan is unknown
#[case(Lite, "SELECT 1 -- x\r' \n; DELETE FROM t; --'", Reason::Statement)] // trap
#[case(Pg, "SELECT 1 -- x\r; DELETE FROM t", Reason::Statement)]
#[case(Pg, "SELECT 1 -- x\r, pg_advisory_lock(1)", Reason::WriteFunction)]
fn line_comments_end_where_the_server_ends_them(
    #[case] d: Dialect,
    #[case] sql: &str,
    #[case] reason: Reason,
) {
    write(sql, d, reason);
}

/// A versioned comment (`/*!50000 … */`, MariaDB's `/*M! … */` and `/*M!100000 … */`) is code
/// or a comment depending on the server and its version: read both ways (not "always opaque",
/// which would send every statement carrying one to the primary), text that splits
/// differently the two ways stays opaque.
#[rstest]
#[case("SELECT 1 /*!99999 ' */ , GET_LOCK('a', 1) -- '", Reason::Opaque)] // trap
#[case("SELECT 1 /*M!999999 ' */ , GET_LOCK('a', 1) -- '", Reason::Opaque)] // trap
#[case("SELECT 1 /*M! ' */ , GET_LOCK('a', 1) -- '", Reason::Opaque)] // trap
#[case("SELECT 1 /*!50000 FOR UPDATE */", Reason::LockingClause)]
#[case("SELECT 1 /*! /* ' */ , GET_LOCK('a', 1) -- ' */", Reason::Opaque)]
fn versioned_comments_read_both_ways(#[case] sql: &str, #[case] reason: Reason) {
    write(sql, My, reason);
}

/// A backslash before a quote makes a string's end depend on the server's escape mode
/// (PostgreSQL `standard_conforming_strings`, MySQL `NO_BACKSLASH_ESCAPES`), also when the
/// quote starts a doubled quote.
#[rstest]
#[case(Pg, r"SELECT 'a\'' ; DELETE FROM t; --'")] // trap
#[case(Pg, r"SELECT 'x\'', pg_advisory_lock(1), '' -- '")] // trap
#[case(Pg, r"SELECT 'x\\\'' , pg_advisory_lock(1) --'")] // trap
#[case(Pg, r"SELECT N'x\'' , 1 --'")] // trap
#[case(Pg, r"SELECT 'a\'")]
#[case(My, r"SELECT 'a\'' , 1 -- '")]
#[case(My, r#"SELECT "a\"" , 1 -- ""#)]
fn backslash_before_a_quote_is_ambiguous(#[case] d: Dialect, #[case] sql: &str) {
    write(sql, d, Reason::AmbiguousString);
}

/// Built-in PostgreSQL functions that write, take a lock, use session or server-local state,
/// or run query text, found by reviewing `pg_proc` (see `pg_catalog_functions.txt`).
#[rstest]
#[case("SELECT brin_summarize_new_values('i')")] // trap
#[case("SELECT brin_summarize_range('i', 0)")] // trap
#[case("SELECT brin_desummarize_range('i', 0)")] // trap
#[case("SELECT gin_clean_pending_list('i')")] // trap
#[case("SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)")] // trap
#[case("SELECT * FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL)")] // trap
#[case("SELECT pg_replication_origin_create('o')")] // trap
#[case("SELECT pg_replication_origin_session_setup('o')")] // trap
#[case("SELECT pg_import_system_collations('pg_catalog')")] // trap
#[case("SELECT pg_copy_logical_replication_slot('a', 'b')")] // trap
#[case("SELECT query_to_xml('SELECT nextval(''s'')', true, false, '')")] // trap
#[case("SELECT * FROM ts_stat('SELECT v FROM t')")] // trap
#[case("SELECT pg_backup_start('x')")] // trap
#[case("SELECT pg_extension_config_dump('t', '')")] // trap
#[case("SELECT setseed(0.5)")] // trap
#[case("SELECT pg_wal_replay_pause()")] // trap
#[case("SELECT pg_log_backend_memory_contexts(42)")] // trap
#[case("SELECT pg_sequence_last_value('s')")] // trap
#[case("SELECT cursor_to_xml('c', 1, false, false, '')")] // trap
fn catalogue_write_functions(#[case] sql: &str) {
    write(sql, Pg, Reason::WriteFunction);
}

/// MySQL/MariaDB reads of the session's own state answer about the replica's session.
#[rstest]
#[case("SELECT @@session.last_insert_id", Reason::SessionState)] // trap
#[case("SELECT @@local.insert_id", Reason::SessionState)] // trap
#[case("SELECT @@SESSION.sql_mode", Reason::SessionState)] // trap
#[case("SELECT @@warning_count, @@error_count", Reason::SessionState)] // trap
#[case("SELECT @@last_gtid", Reason::SessionState)] // trap
#[case("SELECT @@in_transaction", Reason::SessionState)] // trap
#[case("SELECT @@`last_insert_id`", Reason::SessionState)] // trap
#[case("SHOW WARNINGS", Reason::SessionState)] // trap
#[case("SHOW WARNINGS LIMIT 10", Reason::SessionState)] // trap
#[case("SHOW COUNT(*) WARNINGS", Reason::SessionState)] // trap
#[case("SHOW ERRORS", Reason::SessionState)] // trap
#[case("SHOW SESSION STATUS", Reason::SessionState)] // trap
#[case("SHOW SESSION VARIABLES LIKE 'sql_mode'", Reason::SessionState)] // trap
#[case("SHOW LOCAL STATUS", Reason::SessionState)] // trap
#[case("SHOW STATUS", Reason::SessionState)] // trap: session scope by default
#[case("SHOW VARIABLES", Reason::SessionState)] // trap: session scope by default
#[case("SHOW PROFILES", Reason::SessionState)] // trap
#[case("SELECT @@last_insert_id", Reason::SessionState)]
#[case("SELECT @@identity", Reason::SessionState)]
#[case("SELECT LAST_INSERT_ID()", Reason::WriteFunction)]
#[case("SELECT FOUND_ROWS()", Reason::WriteFunction)]
#[case("SELECT ROW_COUNT()", Reason::WriteFunction)]
fn mysql_session_state_reads(#[case] sql: &str, #[case] reason: Reason) {
    write(sql, My, reason);
}

/// Found by the grammar fuzzer (`tests/classify_fuzz.rs`): a statement cut short by `;` was
/// checked only at the end of the text, and a parenthesised non-query was accepted.
#[rstest]
#[case(r#"(EXPLAIN ("analyze") DELETE FROM t);"#, Reason::Statement)] // trap
#[case("EXPLAIN ANALYZE; SELECT 1", Reason::ExplainAnalyze)] // trap
#[case("EXPLAIN (ANALYZE) DELETE FROM t); SELECT 1", Reason::ExplainAnalyze)]
#[case("COPY t TO; SELECT 1", Reason::Statement)] // trap
#[case("COPY t; SELECT 1", Reason::Statement)] // trap
#[case("(SHOW x)", Reason::Statement)] // trap
#[case("(EXPLAIN SELECT 1)", Reason::Statement)] // trap
fn statements_cut_short_or_misplaced(#[case] sql: &str, #[case] reason: Reason) {
    for d in [Pg, My, Lite] {
        write(sql, d, reason);
    }
}

/// Neighbours that stay reads: the rules are exact, not blanket.
#[rstest]
#[case(Pg, r#"SELECT U&"d\0061t" FROM t"#)]
#[case(Pg, r#"SELECT "t".U&"\0061" FROM t"#)]
#[case(Pg, r#"EXPLAIN ("costs" off) DELETE FROM t"#)]
#[case(Pg, r"SELECT 'C:\path', 'a\\'")]
#[case(Pg, r"SELECT E'a\'' , 1")]
#[case(Pg, "SELECT lo_get(1), pg_sleep(0), random(), clock_timestamp(), pg_is_in_recovery()")]
#[case(My, "SELECT /*!STRAIGHT_JOIN*/ a FROM t")]
#[case(My, "SELECT /*+ MAX_EXECUTION_TIME(1000) */ a FROM t")]
#[case(My, "SELECT @@global.read_only, @@version")]
#[case(My, "SHOW GLOBAL STATUS")]
#[case(My, "SHOW GLOBAL VARIABLES LIKE 'read_only'")]
#[case(My, "SELECT 1 # x\r\n")]
#[case(My, "SELECT 1 # x\r, GET_LOCK('a', 1)")]
#[case(My, "SELECT 1 -- x\r, GET_LOCK('a', 1)")]
#[case(Lite, "SELECT 1 -- x\r; DELETE FROM t")]
fn neighbours_stay_reads(#[case] d: Dialect, #[case] sql: &str) {
    assert_eq!(classify(sql, d), Access::Read, "{d:?}: {sql:?}");
}
