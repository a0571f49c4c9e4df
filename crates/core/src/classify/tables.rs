//! Table names a statement touches, for routing rules.

use super::Dialect;
use super::lexer::{Lexer, Tok};

/// The tables named after `FROM`, `JOIN`, `UPDATE`, `INTO` and `TABLE` in `sql`, in order,
/// possibly repeated, without schema qualifiers and quotes (the last component of
/// `"public"."events"` is `events`). Comma-separated `FROM` lists are followed.
///
/// It is a heuristic for routing rules, not a parser: `EXTRACT(YEAR FROM x)` yields `x`, a
/// function in `FROM` yields its name, a name with doubled quotes keeps them, and a `FROM`
/// list that goes on after a parenthesised subquery is not followed. It never allocates.
///
/// ```
/// use rwsplit_core::{Dialect, tables};
/// let sql = r#"SELECT "e"."id" FROM "public"."events" AS "e" JOIN users u ON u.id = "e"."user_id", audit"#;
/// assert_eq!(tables(sql, Dialect::Postgres).collect::<Vec<_>>(), ["events", "users"]);
/// let sql = "SELECT * FROM a, b AS x, c WHERE a.id = 1";
/// assert_eq!(tables(sql, Dialect::MySql).collect::<Vec<_>>(), ["a", "b", "c"]);
/// ```
#[must_use]
pub fn tables(sql: &str, dialect: Dialect) -> Tables<'_> {
    Tables {
        sql,
        lexer: Lexer::new(sql, dialect),
        expect: false,
        in_from: false,
        from_depth: 0,
        depth: 0,
        pending: None,
        after_dot: false,
        held: None,
    }
}

/// Iterator returned by [`tables`].
#[derive(Debug)]
pub struct Tables<'a> {
    sql: &'a str,
    lexer: Lexer<'a>,
    /// The next name is a table.
    expect: bool,
    /// Inside a `FROM` list at `from_depth`, where a comma introduces another table.
    in_from: bool,
    from_depth: u32,
    depth: u32,
    /// A table name whose qualification may go on.
    pending: Option<&'a [u8]>,
    after_dot: bool,
    /// A token read past the end of `pending`, to process next.
    held: Option<Tok<'a>>,
}

impl<'a> Tables<'a> {
    fn as_str(&self, bytes: &'a [u8]) -> Option<&'a str> {
        // `bytes` is a slice of `sql` cut at ASCII delimiters, so it is valid UTF-8.
        let start = (bytes.as_ptr() as usize).checked_sub(self.sql.as_ptr() as usize)?;
        self.sql.get(start..start.checked_add(bytes.len())?)
    }

    fn take_pending(&mut self) -> Option<&'a str> {
        let name = self.pending.take()?;
        self.after_dot = false;
        self.as_str(name)
    }

    fn step(&mut self, tok: Tok<'a>) {
        match tok {
            Tok::Word(w) => {
                let is = |k: &str| w.eq_ignore_ascii_case(k.as_bytes());
                if is("FROM") {
                    self.expect = true;
                    self.in_from = true;
                    self.from_depth = self.depth;
                } else if is("JOIN") || is("UPDATE") || is("INTO") || is("TABLE") {
                    self.expect = true;
                } else if self.expect && (is("ONLY") || is("LATERAL")) {
                    // `FROM ONLY t`, `JOIN LATERAL …`
                } else if self.expect {
                    self.pending = Some(w);
                    self.expect = false;
                } else if is("WHERE")
                    || is("GROUP")
                    || is("ORDER")
                    || is("LIMIT")
                    || is("HAVING")
                    || is("ON")
                    || is("USING")
                    || is("UNION")
                    || is("WINDOW")
                    || is("SET")
                    || is("RETURNING")
                    || is("FOR")
                    || is("SELECT")
                {
                    self.in_from = false;
                }
            }
            Tok::Quoted(q) | Tok::UQuoted(q) if self.expect => {
                self.pending = Some(q);
                self.expect = false;
            }
            Tok::Punct(b'(') => {
                self.depth += 1;
                self.expect = false;
            }
            Tok::Punct(b')') => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth < self.from_depth {
                    self.in_from = false;
                }
            }
            Tok::Punct(b',') if self.in_from && self.depth == self.from_depth => self.expect = true,
            Tok::Punct(b';') => {
                self.expect = false;
                self.in_from = false;
                self.depth = 0;
            }
            _ => self.expect = false,
        }
    }
}

impl<'a> Iterator for Tables<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let tok = match self.held.take() {
                Some(t) => t,
                None => match self.lexer.next_token() {
                    Some(t) => t,
                    None => return self.take_pending(),
                },
            };
            if self.pending.is_some() {
                match tok {
                    Tok::Punct(b'.') if !self.after_dot => {
                        self.after_dot = true;
                        continue;
                    }
                    Tok::Word(w) | Tok::Quoted(w) | Tok::UQuoted(w) if self.after_dot => {
                        self.pending = Some(w);
                        self.after_dot = false;
                        continue;
                    }
                    _ => {
                        self.held = Some(tok);
                        if let Some(name) = self.take_pending() {
                            return Some(name);
                        }
                        continue;
                    }
                }
            }
            self.step(tok);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sql: &str, d: Dialect) -> Vec<&str> {
        tables(sql, d).collect()
    }

    #[test]
    fn seaorm_shapes() {
        assert_eq!(
            t(r#"SELECT "user"."id" FROM "user" WHERE "user"."id" = $1"#, Dialect::Postgres),
            ["user"]
        );
        assert_eq!(
            t(
                r#"SELECT COUNT(*) AS num_items FROM (SELECT "user"."id" FROM "user") AS "sub_query""#,
                Dialect::Postgres
            ),
            ["user"]
        );
        assert_eq!(t("UPDATE `user` SET `name` = ?", Dialect::MySql), ["user"]);
        assert_eq!(t(r#"INSERT INTO "user" ("name") VALUES ($1)"#, Dialect::Postgres), ["user"]);
        assert_eq!(t("TABLE events", Dialect::Postgres), ["events"]);
        assert_eq!(t("SELECT 1", Dialect::Postgres), Vec::<&str>::new());
        assert_eq!(t("SELECT * FROM s.t", Dialect::Postgres), ["t"]);
        assert_eq!(t("SELECT * FROM [a b]", Dialect::Sqlite), ["a b"]);
    }
}
