//! The classifier fuzzer's grammar: statements that write, lock or read session state, dressed
//! in comments, hints, strings, quotes, case and whitespace. Shared by the fuzzer
//! (`tests/classify_fuzz.rs`, through the public API) and the crate's unit tests (which also
//! compare the fast path with the general lexer on it). The includer provides `Dialect` and
//! `DEFAULT_WRITE_FUNCTIONS` in its scope.

use proptest::prelude::*;

use super::{DEFAULT_WRITE_FUNCTIONS, Dialect};

pub(crate) const DIALECTS: [Dialect; 3] = [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];

/// A statement and the dialect it is written in.
#[derive(Clone, Debug)]
pub(crate) struct Case {
    pub(crate) dialect: Dialect,
    pub(crate) sql: String,
}

/// Statement shapes that write or lock in every dialect, as tokens (separators go between).
pub(crate) const WRITES: &[&[&str]] = &[
    &["DELETE", "FROM", "t"],
    &["DELETE", "FROM", "t", "WHERE", "id", "=", "1"],
    &["INSERT", "INTO", "t", "(", "a", ")", "VALUES", "(", "1", ")"],
    &["INSERT", "INTO", "t", "SELECT", "*", "FROM", "u"],
    &["UPDATE", "t", "SET", "a", "=", "1"],
    &["REPLACE", "INTO", "t", "VALUES", "(", "1", ")"],
    &[
        "MERGE", "INTO", "t", "USING", "s", "ON", "t", ".", "id", "=", "s", ".", "id", "WHEN",
        "MATCHED", "THEN", "DELETE",
    ],
    &["TRUNCATE", "t"],
    &["CREATE", "TABLE", "x", "(", "a", "int", ")"],
    &["CREATE", "TABLE", "x", "AS", "SELECT", "1"],
    &["DROP", "TABLE", "t"],
    &["ALTER", "TABLE", "t", "ADD", "COLUMN", "b", "int"],
    &["LOCK", "TABLE", "t"],
    &["SET", "x", "=", "1"],
    &["BEGIN"],
    &["START", "TRANSACTION"],
    &["CALL", "p", "(", ")"],
    &["VACUUM", "t"],
    &["ANALYZE", "t"],
    &["LISTEN", "ch"],
    &["NOTIFY", "ch"],
    &["PREPARE", "p", "AS", "SELECT", "1"],
    &["GRANT", "SELECT", "ON", "t", "TO", "u"],
    &["SELECT", "a", "FROM", "t", "FOR", "UPDATE"],
    &["SELECT", "a", "FROM", "t", "FOR", "SHARE"],
    &["SELECT", "a", "FROM", "t", "FOR", "NO", "KEY", "UPDATE"],
    &["SELECT", "a", "FROM", "t", "FOR", "KEY", "SHARE"],
    &[
        "SELECT", "a", "FROM", "t", "WHERE", "b", "IN", "(", "SELECT", "b", "FROM", "u", "FOR",
        "UPDATE", ")",
    ],
    &["SELECT", "*", "FROM", "(", "SELECT", "a", "FROM", "t", "FOR", "UPDATE", ")", "s"],
    &["SELECT", "a", "INTO", "x", "FROM", "t"],
    &["SELECT", "a", "FROM", "t", "INTO", "x"],
    &[
        "WITH",
        "x",
        "AS",
        "(",
        "DELETE",
        "FROM",
        "t",
        "RETURNING",
        "*",
        ")",
        "SELECT",
        "*",
        "FROM",
        "x",
    ],
    &[
        "WITH", "x", "AS", "(", "SELECT", "1", ")", "INSERT", "INTO", "t", "SELECT", "*", "FROM",
        "x",
    ],
    &[
        "WITH",
        "x",
        "AS",
        "(",
        "UPDATE",
        "t",
        "SET",
        "a",
        "=",
        "1",
        "RETURNING",
        "*",
        ")",
        "SELECT",
        "1",
    ],
    &["EXPLAIN", "ANALYZE", "DELETE", "FROM", "t"],
    &["EXPLAIN", "ANALYSE", "UPDATE", "t", "SET", "a", "=", "1"],
    &["EXPLAIN", "(", "ANALYZE", ")", "DELETE", "FROM", "t"],
    &[
        "EXPLAIN", "(", "ANALYZE", ",", "BUFFERS", ")", "INSERT", "INTO", "t", "VALUES", "(", "1",
        ")",
    ],
    &["EXPLAIN", "(", "FORMAT", "JSON", ",", "ANALYZE", "true", ")", "DELETE", "FROM", "t"],
    &[
        "EXPLAIN",
        "ANALYZE",
        "WITH",
        "x",
        "AS",
        "(",
        "DELETE",
        "FROM",
        "t",
        "RETURNING",
        "*",
        ")",
        "SELECT",
        "1",
    ],
    &["EXPLAIN", "ANALYZE", "SELECT", "a", "FROM", "t", "FOR", "UPDATE"],
    &["COPY", "t", "FROM", "STDIN"],
    &["COPY", "t", "TO", "'/tmp/x'"],
    &["COPY", "(", "DELETE", "FROM", "t", "RETURNING", "*", ")", "TO", "STDOUT"],
    &["SELECT", "1", ";", "DELETE", "FROM", "t"],
];

/// PostgreSQL only.
pub(crate) const PG_WRITES: &[&[&str]] = &[
    &["EXPLAIN", "(", "\"analyze\"", ")", "DELETE", "FROM", "t"],
    &["EXPLAIN", "(", "U&\"\\0061nalyze\"", ")", "DELETE", "FROM", "t"],
    &["DO", "$$BEGIN END$$"],
    &["SELECT", "U&\"!0070g_advisory_lock\"", "UESCAPE", "'!'", "(", "1", ")"],
];

/// MySQL and MariaDB only: locking reads and session state.
pub(crate) const MY_WRITES: &[&[&str]] = &[
    &["SELECT", "a", "FROM", "t", "LOCK", "IN", "SHARE", "MODE"],
    &["SELECT", "@@session.last_insert_id"],
    &["SELECT", "@@local.insert_id"],
    &["SELECT", "@@SESSION.sql_mode"],
    &["SELECT", "@@last_insert_id"],
    &["SELECT", "@@identity"],
    &["SELECT", "@@warning_count"],
    &["SELECT", "@x"],
    &["SELECT", "@x", ":=", "1"],
    &["SET", "@x", "=", "1"],
    &["SHOW", "WARNINGS"],
    &["SHOW", "ERRORS"],
    &["SHOW", "COUNT", "(", "*", ")", "WARNINGS"],
    &["SHOW", "SESSION", "STATUS"],
    &["SHOW", "SESSION", "VARIABLES"],
    &["SHOW", "STATUS"],
    &["SHOW", "MASTER", "STATUS"],
    &["SELECT", "SQL_CALC_FOUND_ROWS", "*", "FROM", "t"],
    &["SELECT", "NEXT", "VALUE", "FOR", "s"],
    &["SELECT", "a", "FROM", "t", "INTO", "OUTFILE", "'/tmp/x'"],
    &["SELECT", "a", "FROM", "t", "INTO", "DUMPFILE", "'/tmp/x'"],
    &["SELECT", "a", "FROM", "t", "INTO", "@v"],
    &["SELECT", "a", ",", "b", "INTO", "@a", ",", "@b", "FROM", "t"],
    &["EXPLAIN", "FORMAT", "=", "JSON", "INTO", "@v", "SELECT", "a", "FROM", "t"],
    &["EXPLAIN", "FORMAT", "=", "TREE", "INTO", "@`v`", "SELECT", "1"],
    &["DESCRIBE", "FORMAT", "=", "JSON", "INTO", "@v", "SELECT", "1"],
    &["EXPLAIN", "SELECT", "a", "FROM", "t", "INTO", "@v"],
    &["EXPLAIN", "SELECT", "a", "FROM", "t", "INTO", "OUTFILE", "'/tmp/x'"],
    &["SELECT", "1", "/*M!100000", "FOR", "UPDATE", "*/"],
    &["SELECT", "a", "FROM", "t", "/*!50000", "LOCK", "IN", "SHARE", "MODE", "*/"],
    &["/*M!100000", "DELETE", "FROM", "t", "*/"],
    &["/*!99999", "EXPLAIN", "*/", "DELETE", "FROM", "t"],
    &["HANDLER", "t", "OPEN"],
    &["LOAD", "DATA", "INFILE", "'x'", "INTO", "TABLE", "t"],
];

/// Read queries that an `INTO` makes writes (MySQL/MariaDB: a session variable or a file;
/// PostgreSQL: a new table), see [`with_into`].
pub(crate) const INTO_BASES: &[&[&str]] = &[
    &["SELECT", "a", "FROM", "t"],
    &[
        "SELECT", "a", ",", "b", "FROM", "t", "WHERE", "a", "=", "1", "ORDER", "BY", "b", "LIMIT",
        "1",
    ],
    &["SELECT", "1"],
    &["SELECT", "count", "(", "*", ")", "FROM", "t", "GROUP", "BY", "a"],
    &["WITH", "x", "AS", "(", "SELECT", "1", ")", "SELECT", "*", "FROM", "x"],
    &["SELECT", "a", "FROM", "t", "UNION", "SELECT", "b", "FROM", "u"],
    &["TABLE", "t"],
];

/// `INTO` targets: MySQL/MariaDB's, then PostgreSQL's (also used for SQLite).
const MY_INTO: &[&[&str]] = &[
    &["INTO", "@v"],
    &["INTO", "@a", ",", "@b"],
    &["INTO", "@`v`"],
    &["INTO", "@'v'"],
    &["INTO", "OUTFILE", "'/tmp/x'"],
    &["INTO", "DUMPFILE", "'/tmp/x'"],
];
const PG_INTO: &[&[&str]] = &[&["INTO", "x"], &["INTO", "TEMP", "x"], &["INTO", "UNLOGGED", "x"]];

/// A base of [`INTO_BASES`] with an `INTO` clause, by `k`: which base, target and place — at
/// the end, before the first `FROM`, or (MySQL/MariaDB) `EXPLAIN [FORMAT = JSON] INTO @v`
/// before it or `EXPLAIN` before it with the clause at the end.
pub(crate) fn with_into(k: usize, d: Dialect) -> Vec<String> {
    let base = INTO_BASES[k % INTO_BASES.len()];
    let targets = if d == Dialect::MySql { MY_INTO } else { PG_INTO };
    let into = targets[(k / 7) % targets.len()];
    let owned = |s: &[&str]| s.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
    let mut t = owned(base);
    let places = if d == Dialect::MySql { 5 } else { 2 };
    match (k / 61) % places {
        0 => t.extend(owned(into)),
        1 => {
            let at = t.iter().position(|w| w == "FROM").unwrap_or(t.len());
            t.splice(at..at, owned(into));
        }
        2 => {
            let mut e = owned(&["EXPLAIN", "FORMAT", "=", "JSON", "INTO", "@v"]);
            e.extend(t);
            t = e;
        }
        3 => {
            let mut e = owned(&["DESCRIBE", "INTO", "@v"]);
            e.extend(t);
            t = e;
        }
        _ => {
            t.insert(0, "EXPLAIN".to_owned());
            t.extend(owned(into));
        }
    }
    t
}

/// Openers of MySQL/MariaDB executable comments, run or skipped by version (see [`build`]).
const OPENERS: &[&str] = &[
    "/*!",
    "/*!50000",
    "/*!40001",
    "/*!99999",
    "/*!100000",
    "/*!999999",
    "/*M!",
    "/*M!100000",
    "/*M!100500",
    "/*M!999999",
];

/// Where a write function's call goes in a `SELECT`: `{}` is the call.
const CALL_SHAPES: &[&str] = &[
    "SELECT {}",
    "SELECT a, {} FROM t",
    "SELECT * FROM t WHERE a = {}",
    "SELECT * FROM {}",
    "SELECT (SELECT {})",
    "SELECT count(*) FROM t GROUP BY a HAVING max(a) > {}",
    "WITH x AS (SELECT {}) SELECT * FROM x",
    "EXPLAIN ANALYZE SELECT {}",
    "VALUES ({})",
];

/// Arguments of a write function: string literals with tricky contents included.
const ARGS: &[&str] =
    &["", "1", "'s'", "'a;b'", "'it''s'", "'/*'", "'--'", "'#'", "\"x\"", "1, 2", "'$$'", "'\\\\'"];

/// A function name from the list, as a real call would spell it.
fn write_function(i: usize) -> String {
    let name = DEFAULT_WRITE_FUNCTIONS[i % DEFAULT_WRITE_FUNCTIONS.len()];
    match name.strip_suffix('*') {
        Some("pg_advisory_") => "pg_advisory_lock".to_owned(),
        Some("pg_try_advisory_") => "pg_try_advisory_xact_lock_shared".to_owned(),
        Some("pg_create_") => "pg_create_physical_replication_slot".to_owned(),
        Some("pg_logical_slot_") => "pg_logical_slot_get_changes".to_owned(),
        Some("pg_replication_origin_") => "pg_replication_origin_create".to_owned(),
        Some("binary_upgrade_") => "binary_upgrade_set_next_pg_type_oid".to_owned(),
        Some("dblink") => "dblink_exec".to_owned(),
        Some(prefix) => prefix.to_owned(),
        None => name.to_owned(),
    }
}

/// How a function name is spelt.
fn spell(name: &str, how: u8, d: Dialect) -> Vec<String> {
    let quote = if d == Dialect::MySql { '`' } else { '"' };
    match (how % 6, d) {
        (1, _) => vec![format!("{quote}{name}{quote}")],
        (2, Dialect::Postgres) => vec!["pg_catalog".into(), ".".into(), name.into()],
        (3, Dialect::Postgres) => vec![format!("\"pg_catalog\".\"{name}\"")],
        (4, Dialect::Postgres) => {
            // The first letter as a Unicode escape.
            let mut chars = name.chars();
            let first = chars.next().map_or(0, u32::from);
            vec![format!("U&\"\\{first:04x}{}\"", chars.as_str())]
        }
        (5, Dialect::Postgres) => {
            let mut chars = name.chars();
            let first = chars.next().map_or(0, u32::from);
            vec![format!("U&\"!{first:04X}{}\"", chars.as_str()), "UESCAPE".into(), "'!'".into()]
        }
        _ => vec![name.to_owned()],
    }
}

/// What may go between two tokens without changing the statement.
fn separator(k: u8, d: Dialect) -> &'static str {
    const COMMON: [&str; 10] = [
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        " /* c */ ",
        "/**/",
        "/* ; DELETE FROM t; ' \" */",
        " /* rwsplit:replica */ ",
        "\n\t ",
    ];
    let k = usize::from(k);
    match d {
        _ if k < COMMON.len() => COMMON[k],
        Dialect::Postgres => ["-- c ' \n", " /* a /* b */ c */ ", "--\r", " -- x\n"][k % 4],
        Dialect::MySql => ["-- c ' \n", "# c ' \n", "#\r\n", "-- \t'\n"][k % 4],
        _ => ["-- c ' \n", " /* x */", "--\n", " -- x\n"][k % 4],
    }
}

/// Read statements (and comments) that may come before the write, then `;`.
fn prefix(k: u8, d: Dialect) -> &'static str {
    const COMMON: [&str; 8] = [
        "",
        "SELECT 1; ",
        "SELECT 'a;b', \"c;d\" FROM t;\n",
        "/* c */ ",
        "-- c\n",
        "/*rwsplit:replica*/ ",
        "SELECT 'it''s'; ",
        "VALUES (1);",
    ];
    let k = usize::from(k);
    match d {
        _ if k < COMMON.len() => COMMON[k],
        Dialect::Postgres => ["SELECT $$;$$; ", "SELECT E'\\';'; ", "SHOW x; ", "TABLE t; "][k % 4],
        Dialect::MySql => {
            ["# c\n", "SELECT `a;b` FROM t; ", "SHOW TABLES; ", "/*! SELECT 1 */; "][k % 4]
        }
        _ => ["SELECT [a;b] FROM t; ", "SELECT $x; ", "SELECT 1;;", "TABLE t; "][k % 4],
    }
}

/// Harmless text after the write.
fn suffix(k: u8) -> &'static str {
    ["", ";", "; SELECT 1", " -- c", " /* c */", "\n", ";\n", "; SELECT 'x'"][usize::from(k % 8)]
}

/// Changes the case of a word's letters: as is, lower, upper, or by the bits of `pattern`.
fn recase(token: &str, mode: u8, pattern: u64) -> String {
    // Strings, quotes, variables, escapes and comment markers (`/*M!` is not `/*m!`) keep theirs.
    if token.starts_with(['\'', '"', '`', '$', '@'])
        || token.starts_with("U&")
        || token.starts_with("/*")
    {
        return token.to_owned();
    }
    match mode % 4 {
        0 => token.to_owned(),
        1 => token.to_ascii_lowercase(),
        2 => token.to_ascii_uppercase(),
        _ => token
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if pattern >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
    }
}

/// The raw material of a case: which dialect, shape, function, spelling, argument, separators,
/// case changes, prefix, suffix and wrapper.
pub(crate) type Draw = (usize, usize, usize, u8, usize, Vec<u8>, Vec<u8>, u64, u8, u8, u8, u8);

pub(crate) fn draws() -> impl Strategy<Value = Draw> {
    (
        0..DIALECTS.len(),
        0..5usize,
        any::<usize>(),
        any::<u8>(),
        0..ARGS.len(),
        proptest::collection::vec(0u8..14, 24),
        proptest::collection::vec(any::<u8>(), 24),
        any::<u64>(),
        any::<u8>(),
        any::<u8>(),
        0u8..8,
        any::<u8>(),
    )
}

/// How the table name `t` is spelt: quoted names holding comment, string and statement
/// markers, doubled quotes, schema qualification.
fn table(k: u8, d: Dialect) -> &'static str {
    let k = usize::from(k);
    match d {
        Dialect::Postgres => {
            ["t", "\"t\"", "\"a;--b\"", "\"x\"\"/*y\"", "public.t", "\"s\".\"t\"", "U&\"\\0074\""]
                [k % 7]
        }
        Dialect::MySql => ["t", "`t`", "`a;--b`", "`x``#y`", "db.t", "`d`.`t`", "`'`"][k % 7],
        _ => ["t", "\"t\"", "[a;--b]", "\"x\"\"/*y\"", "main.t", "`t`", "[']"][k % 7],
    }
}

/// Builds the statement a draw describes.
pub(crate) fn build(draw: &Draw) -> Case {
    let (di, kind, pick, how, arg, seps, cases, pattern, pre, post, wrap, name) = draw;
    let d = DIALECTS[*di];
    let mut tokens: Vec<String> = match kind {
        // A call to a function on the write list, somewhere in a read-looking statement.
        0 | 1 => {
            let name = write_function(*pick);
            let mut call = spell(&name, *how, d);
            call.push("(".into());
            if !ARGS[*arg].is_empty() {
                call.push(ARGS[*arg].into());
            }
            call.push(")".into());
            let shape = CALL_SHAPES[(*pick / 7) % CALL_SHAPES.len()];
            let (before, after) = shape.split_once("{}").unwrap_or((shape, ""));
            let words = |s: &str| {
                s.split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect::<Vec<_>>()
            };
            let mut t = words(before.replace('(', " ( ").replace(')', " ) ").as_str());
            t.extend(call);
            t.extend(words(after.replace('(', " ( ").replace(')', " ) ").as_str()));
            t
        }
        // A dialect's own shapes.
        2 => {
            let own = match d {
                Dialect::Postgres => PG_WRITES,
                Dialect::MySql => MY_WRITES,
                _ => WRITES,
            };
            own[*pick % own.len()].iter().map(|t| (*t).to_owned()).collect()
        }
        // A read query made a write by `INTO`.
        4 => with_into(*pick, d),
        _ => WRITES[*pick % WRITES.len()].iter().map(|t| (*t).to_owned()).collect(),
    };
    for (i, t) in tokens.iter_mut().enumerate() {
        let rotated = pattern.rotate_left(u32::try_from(i % 64).unwrap_or(0));
        *t = if t == "t" {
            table(*name, d).to_owned()
        } else {
            recase(t, cases[i % cases.len()], rotated)
        };
    }
    // MySQL/MariaDB: a span of tokens in an executable comment, which the classifier must
    // read as code whatever its version (and, for the whole body, a versioned one).
    let span = match (d, wrap) {
        (Dialect::MySql, 3..) if !tokens.is_empty() => {
            let n = tokens.len();
            let bits = usize::try_from(pattern >> 32).unwrap_or(0);
            let first = bits % n;
            let last = first + (bits / n) % (n - first);
            let opener = OPENERS[(bits / 251) % OPENERS.len()];
            Some((first, last, opener))
        }
        _ => None,
    };
    let mut body = String::new();
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            let sep = separator(seps[i % seps.len()], d);
            // Block comments inside an executable comment make it opaque (a write, but not
            // the classification under test): mostly leave them out there.
            let inside = span.is_some_and(|(first, last, _)| first < i && i <= last)
                || (d == Dialect::MySql && matches!(wrap, 1 | 2));
            // And a `*` token before `/**/` would close it (`*/**/`): not the statement.
            let closes =
                tokens.get(i - 1).is_some_and(|p| p.ends_with('*')) && sep.starts_with('/');
            let plain = inside && ((pattern & 12 != 0 && sep.contains("/*")) || closes);
            body.push_str(if plain { " " } else { sep });
        }
        if let Some((first, _, opener)) = span
            && i == first
        {
            body.push_str(opener);
            // Glued to a number, a version would take its digits.
            if pattern & 1 == 0 || t.starts_with(|c: char| c.is_ascii_digit()) {
                body.push(' ');
            }
        }
        body.push_str(t);
        if let Some((_, last, _)) = span
            && i == last
        {
            body.push_str(if pattern & 2 == 0 { " */" } else { "*/" });
        }
    }
    // MySQL's executable comments are code to every server, versioned ones too (as well as
    // comments to some).
    let body = match (d, wrap) {
        (Dialect::MySql, 1) => format!("/*! {body} */"),
        (Dialect::MySql, 2) => format!("{} {body} */", OPENERS[usize::from(*name) % OPENERS.len()]),
        (Dialect::Postgres, 1) => format!("({body})"),
        _ => body,
    };
    let sql = format!("{}{body}{}", prefix(*pre % 12, d), suffix(*post));
    Case { dialect: d, sql }
}
