//! Issue 14, "writes and locks classified as reads": one table per defect class. Every case
//! marked "was read" was classified as a read before its fix (checked on the code before it);
//! the others guard neighbouring shapes that were already writes.

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
#[case(r#"EXPLAIN ("analyze") DELETE FROM t"#)] // was read
#[case(r#"EXPLAIN ("ANALYZE" true, FORMAT JSON) DELETE FROM t"#)] // was read
#[case(r#"EXPLAIN ("analyse") UPDATE t SET a = 1"#)] // was read
#[case(r#"EXPLAIN (U&"\0061nalyze") DELETE FROM t"#)] // was read
#[case(r#"EXPLAIN (FORMAT JSON, U&"analyze" on) INSERT INTO t VALUES (1)"#)] // was read
#[case(r#"EXPLAIN ("analyze" 'off') DELETE FROM t"#)] // was read; a quoted value never turns it off
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
#[case(r#"SELECT U&"\0070g_advisory_lock"(42)"#)] // was read (took a lock on a hot standby)
#[case(r#"SELECT u&"\0070g_advisory_lock" (42)"#)] // was read
#[case(r#"SELECT pg_catalog.U&"\0070g_advisory_lock"(42)"#)] // was read
#[case(r#"SELECT U&"!0070g_advisory_lock" UESCAPE '!' (42)"#)] // was read
#[case(r#"SELECT * FROM U&"\+000070g_advisory_xact_lock"(1)"#)] // was read
#[case(r#"SELECT "t"."a", U&"\006Eextval"('s') FROM "t""#)] // was read
#[case(r#"SELECT U&"nextval" /* c */ ('s')"#)]
#[case(r#"EXPLAIN ANALYZE SELECT U&"\0070g_advisory_lock"(42)"#)] // was read
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
#[case(My, "SELECT 1 #\r' \n, GET_LOCK('a', 1) -- '", Reason::WriteFunction)] // was read
#[case(My, "SELECT 1 --\x7f'\n, GET_LOCK('a', 1) -- '", Reason::WriteFunction)] // was read
#[case(My, "SELECT 1 # x\0\n", Reason::Opaque)] // was read: NUL's effect on the server's scan is unknown
#[case(Lite, "SELECT 1 -- x\r' \n; DELETE FROM t; --'", Reason::Statement)] // was read
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
/// or a comment depending on the server and its version: read both ways (issue 26 replaced
/// "always opaque"), text that splits differently the two ways stays opaque.
#[rstest]
#[case("SELECT 1 /*!99999 ' */ , GET_LOCK('a', 1) -- '", Reason::Opaque)] // was read
#[case("SELECT 1 /*M!999999 ' */ , GET_LOCK('a', 1) -- '", Reason::Opaque)] // was read
#[case("SELECT 1 /*M! ' */ , GET_LOCK('a', 1) -- '", Reason::Opaque)] // was read
#[case("SELECT 1 /*!50000 FOR UPDATE */", Reason::LockingClause)]
#[case("SELECT 1 /*! /* ' */ , GET_LOCK('a', 1) -- ' */", Reason::Opaque)]
fn versioned_comments_read_both_ways(#[case] sql: &str, #[case] reason: Reason) {
    write(sql, My, reason);
}

/// A backslash before a quote makes a string's end depend on the server's escape mode
/// (PostgreSQL `standard_conforming_strings`, MySQL `NO_BACKSLASH_ESCAPES`), also when the
/// quote starts a doubled quote.
#[rstest]
#[case(Pg, r"SELECT 'a\'' ; DELETE FROM t; --'")] // was read
#[case(Pg, r"SELECT 'x\'', pg_advisory_lock(1), '' -- '")] // was read
#[case(Pg, r"SELECT 'x\\\'' , pg_advisory_lock(1) --'")] // was read
#[case(Pg, r"SELECT N'x\'' , 1 --'")] // was read
#[case(Pg, r"SELECT 'a\'")]
#[case(My, r"SELECT 'a\'' , 1 -- '")]
#[case(My, r#"SELECT "a\"" , 1 -- ""#)]
fn backslash_before_a_quote_is_ambiguous(#[case] d: Dialect, #[case] sql: &str) {
    write(sql, d, Reason::AmbiguousString);
}

/// Built-in PostgreSQL functions that write, take a lock, use session or server-local state,
/// or run query text, found by reviewing `pg_proc` (see `pg_catalog_functions.txt`).
#[rstest]
#[case("SELECT brin_summarize_new_values('i')")] // was read
#[case("SELECT brin_summarize_range('i', 0)")] // was read
#[case("SELECT brin_desummarize_range('i', 0)")] // was read
#[case("SELECT gin_clean_pending_list('i')")] // was read
#[case("SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)")] // was read
#[case("SELECT * FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL)")] // was read
#[case("SELECT pg_replication_origin_create('o')")] // was read
#[case("SELECT pg_replication_origin_session_setup('o')")] // was read
#[case("SELECT pg_import_system_collations('pg_catalog')")] // was read
#[case("SELECT pg_copy_logical_replication_slot('a', 'b')")] // was read
#[case("SELECT query_to_xml('SELECT nextval(''s'')', true, false, '')")] // was read
#[case("SELECT * FROM ts_stat('SELECT v FROM t')")] // was read
#[case("SELECT pg_backup_start('x')")] // was read
#[case("SELECT pg_extension_config_dump('t', '')")] // was read
#[case("SELECT setseed(0.5)")] // was read
#[case("SELECT pg_wal_replay_pause()")] // was read
#[case("SELECT pg_log_backend_memory_contexts(42)")] // was read
#[case("SELECT pg_sequence_last_value('s')")] // was read
#[case("SELECT cursor_to_xml('c', 1, false, false, '')")] // was read
fn catalogue_write_functions(#[case] sql: &str) {
    write(sql, Pg, Reason::WriteFunction);
}

/// MySQL/MariaDB reads of the session's own state answer about the replica's session.
#[rstest]
#[case("SELECT @@session.last_insert_id", Reason::SessionState)] // was read
#[case("SELECT @@local.insert_id", Reason::SessionState)] // was read
#[case("SELECT @@SESSION.sql_mode", Reason::SessionState)] // was read
#[case("SELECT @@warning_count, @@error_count", Reason::SessionState)] // was read
#[case("SELECT @@last_gtid", Reason::SessionState)] // was read
#[case("SELECT @@in_transaction", Reason::SessionState)] // was read
#[case("SELECT @@`last_insert_id`", Reason::SessionState)] // was read
#[case("SHOW WARNINGS", Reason::SessionState)] // was read
#[case("SHOW WARNINGS LIMIT 10", Reason::SessionState)] // was read
#[case("SHOW COUNT(*) WARNINGS", Reason::SessionState)] // was read
#[case("SHOW ERRORS", Reason::SessionState)] // was read
#[case("SHOW SESSION STATUS", Reason::SessionState)] // was read
#[case("SHOW SESSION VARIABLES LIKE 'sql_mode'", Reason::SessionState)] // was read
#[case("SHOW LOCAL STATUS", Reason::SessionState)] // was read
#[case("SHOW STATUS", Reason::SessionState)] // was read: session scope by default
#[case("SHOW VARIABLES", Reason::SessionState)] // was read: session scope by default
#[case("SHOW PROFILES", Reason::SessionState)] // was read
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
#[case(r#"(EXPLAIN ("analyze") DELETE FROM t);"#, Reason::Statement)] // was read
#[case("EXPLAIN ANALYZE; SELECT 1", Reason::ExplainAnalyze)] // was read
#[case("EXPLAIN (ANALYZE) DELETE FROM t); SELECT 1", Reason::ExplainAnalyze)]
#[case("COPY t TO; SELECT 1", Reason::Statement)] // was read
#[case("COPY t; SELECT 1", Reason::Statement)] // was read
#[case("(SHOW x)", Reason::Statement)] // was read
#[case("(EXPLAIN SELECT 1)", Reason::Statement)] // was read
fn statements_cut_short_or_misplaced(#[case] sql: &str, #[case] reason: Reason) {
    for d in [Pg, My, Lite] {
        write(sql, d, reason);
    }
}

/// Neighbours that stay reads: the fixes are exact, not blanket.
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
