//! Statement classification: is this SQL text provably a read?

mod functions;
mod keywords;
mod lexer;
mod scalar;
mod shape;
mod tables;

pub use shape::{MAX_SHAPE, shape};

#[cfg(test)]
mod sound_tests;
#[cfg(test)]
mod tests;

use std::fmt;

pub use functions::DEFAULT_WRITE_FUNCTIONS;
pub use tables::{Tables, tables};

use functions::FunctionSet;
use keywords::{Kw, is_explain_option, is_session_show, is_session_sysvar, keyword, query_keyword};
use lexer::{Lexer, Tok};
use scalar::QueryVars;

/// The SQL dialect of a statement, which decides how it is lexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL: nested block comments, dollar quoting, `E''` strings, `$1` parameters.
    Postgres,
    /// MySQL and MariaDB: `#` comments, `/*! */` executable comments, backslash escapes,
    /// backtick identifiers, `@` variables.
    MySql,
    /// SQLite: standard strings, `"…"`, `` `…` `` and `[…]` identifiers.
    Sqlite,
}

/// Whether a statement only reads, as far as routing is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Provably read-only: may run on a replica.
    Read,
    /// Writes, locks, touches session state, or could not be proven to read: primary only.
    Write,
}

/// A routing hint found in a comment of the statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hint {
    /// `/*rwsplit:primary*/`: run on the primary.
    Primary,
    /// `/*rwsplit:replica*/`: a read may run on a replica even if consistency asks otherwise.
    Replica,
}

/// Why a statement was classified the way it was, for tracing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A read-only query: `SELECT`, `WITH … SELECT`, `VALUES`, `TABLE`.
    Select,
    /// `SHOW`, `DESCRIBE` or `DESC`.
    Show,
    /// `EXPLAIN` without `ANALYZE`, which plans but does not run the statement.
    Explain,
    /// `COPY … TO STDOUT`.
    CopyTo,
    /// The statement kind is not a read (`INSERT`, `CREATE`, `SET`, `BEGIN`, unknown …).
    Statement,
    /// A `WITH` query with `INSERT`, `UPDATE`, `DELETE` or `MERGE` in it.
    DataModifyingCte,
    /// A locking read: `FOR UPDATE`, `FOR SHARE`, `FOR NO KEY UPDATE`, `FOR KEY SHARE`,
    /// `LOCK IN SHARE MODE`.
    LockingClause,
    /// `SELECT … INTO` (a new table, variables or a file).
    SelectInto,
    /// `EXPLAIN ANALYZE` of a statement that writes.
    ExplainAnalyze,
    /// A call to a function on the write list, or `NEXT VALUE FOR`.
    WriteFunction,
    /// Session or primary-only state: MySQL user variables, session system variables
    /// (`@@session.x`, `@@local.x`, `@@last_insert_id` …), `SQL_CALC_FOUND_ROWS`, `SHOW
    /// WARNINGS`/`ERRORS`/`STATUS`/`VARIABLES` (session scope), `SHOW MASTER STATUS`.
    SessionState,
    /// A `/*rwsplit:primary*/` hint.
    Hint,
    /// The text holds no statement.
    Empty,
    /// A string, quoted identifier or comment is not terminated.
    Unterminated,
    /// A string literal whose end depends on the server's escape mode.
    AmbiguousString,
    /// A construct the classifier does not fully understand, so it cannot prove the statement
    /// reads: a Unicode-escaped name (`U&"…"`) called as a function; a MySQL/MariaDB
    /// executable comment that reads differently as code and as a comment (a string in it
    /// running past its `*/`, a comment inside it) or more than four version-dependent ones
    /// (`/*!50000 … */`, `/*M! … */`).
    Opaque,
    /// A replica refused a statement of the same shape ([`shape`]) as a write: a user function
    /// or view that writes, which the text cannot show ([`Detached::refused`]).
    Refused,
}

impl Reason {
    /// A stable, lowercase description, suitable for logs and metrics labels.
    ///
    /// ```
    /// use rwsplit_core::{Dialect, explain};
    /// let c = explain("SELECT * FROM t FOR UPDATE", Dialect::Postgres);
    /// assert_eq!(c.reason().as_str(), "locking clause");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Select => "read-only query",
            Self::Show => "show or describe",
            Self::Explain => "explain without analyze",
            Self::CopyTo => "copy to stdout",
            Self::Statement => "statement is not read-only",
            Self::DataModifyingCte => "data-modifying cte",
            Self::LockingClause => "locking clause",
            Self::SelectInto => "select into",
            Self::ExplainAnalyze => "explain analyze of a write",
            Self::WriteFunction => "write function",
            Self::SessionState => "session state",
            Self::Hint => "primary hint",
            Self::Empty => "empty statement",
            Self::Unterminated => "unterminated token",
            Self::AmbiguousString => "escape-mode-dependent string",
            Self::Opaque => "not fully understood",
            Self::Refused => "refused by a replica",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most version-dependent executable comments (`/*!NNNNN … */`, `/*M! … */`, which a
/// MySQL or MariaDB server runs or skips by its product and version) a statement may hold and
/// still be a read: each one is read both as code and as a comment, in every combination
/// (2ⁿ scans), and the statement is a read only if every reading is. Above this, it is
/// [`Reason::Opaque`].
const MAX_VERSIONED_COMMENTS: u32 = 4;

/// The result of [`explain`]: the access, why, and any hint or tag found in comments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification<'a> {
    access: Access,
    reason: Reason,
    hint: Option<Hint>,
    tag: Option<&'a str>,
}

impl<'a> Classification<'a> {
    /// A classification with no hint and no tag, e.g. for a statement the caller already knows.
    ///
    /// ```
    /// use rwsplit_core::{Access, Classification, Reason};
    /// let c = Classification::new(Access::Read, Reason::Select);
    /// assert_eq!(c.access(), Access::Read);
    /// ```
    #[must_use]
    pub const fn new(access: Access, reason: Reason) -> Self {
        Self { access, reason, hint: None, tag: None }
    }

    /// Read or write.
    #[must_use]
    pub const fn access(&self) -> Access {
        self.access
    }

    /// Why.
    #[must_use]
    pub const fn reason(&self) -> Reason {
        self.reason
    }

    /// The `rwsplit:` hint found in a comment, if any.
    #[must_use]
    pub const fn hint(&self) -> Option<Hint> {
        self.hint
    }

    /// The `tag=` value of a hint comment, if any (for routing rules).
    #[must_use]
    pub const fn tag(&self) -> Option<&'a str> {
        self.tag
    }

    /// Whether the statement is a read.
    #[must_use]
    pub const fn is_read(&self) -> bool {
        matches!(self.access, Access::Read)
    }

    /// This classification of `sql` without the borrow of `sql`, for a cache keyed by the
    /// statement text: [`Detached::attach`] to the same text gives it back. A tag that does not
    /// lie inside `sql` (a classification of other text) is dropped.
    ///
    /// ```
    /// use rwsplit_core::{Dialect, explain};
    /// let sql = "SELECT 1 /* rwsplit:replica, tag=reports */";
    /// let c = explain(sql, Dialect::Postgres);
    /// let kept = c.detach(sql);
    /// assert_eq!(kept.attach(sql), c);
    /// assert_eq!(kept.attach(sql).tag(), Some("reports"));
    /// ```
    #[must_use]
    pub fn detach(&self, sql: &str) -> Detached {
        let tag = self.tag.and_then(|t| {
            let start = (t.as_ptr() as usize).checked_sub(sql.as_ptr() as usize)?;
            let end = start.checked_add(t.len())?;
            (sql.get(start..end) == Some(t)).then_some((start, end))
        });
        Detached { access: self.access, reason: self.reason, hint: self.hint, tag }
    }
}

/// A [`Classification`] without its borrow of the statement text ([`Classification::detach`]):
/// what a cache keyed by the text keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detached {
    access: Access,
    reason: Reason,
    hint: Option<Hint>,
    /// The tag's byte range in the text.
    tag: Option<(usize, usize)>,
}

impl Detached {
    /// The classification of `sql`, which must be the text it was detached from (other text
    /// keeps the access, reason and hint, and loses a tag that does not fit it).
    #[must_use]
    pub fn attach<'a>(&self, sql: &'a str) -> Classification<'a> {
        let tag = self.tag.and_then(|(start, end)| sql.get(start..end));
        Classification { access: self.access, reason: self.reason, hint: self.hint, tag }
    }

    /// Read or write.
    #[must_use]
    pub const fn access(&self) -> Access {
        self.access
    }

    /// The same statement as a write because a replica refused it ([`Reason::Refused`]),
    /// keeping its hint and tag: what a router learns from the refusal.
    ///
    /// ```
    /// use rwsplit_core::{Access, Dialect, Reason, explain};
    /// let sql = "SELECT bump_counter(1)";
    /// let learned = explain(sql, Dialect::Postgres).detach(sql).refused();
    /// assert_eq!(learned.access(), Access::Write);
    /// assert_eq!(learned.attach(sql).reason(), Reason::Refused);
    /// ```
    #[must_use]
    pub const fn refused(self) -> Detached {
        Detached { access: Access::Write, reason: Reason::Refused, ..self }
    }
}

/// A configurable classifier. [`Classifier::default`] uses [`DEFAULT_WRITE_FUNCTIONS`].
///
/// [`classify`] answers [`Access::Read`] only when it can prove the text reads: every statement
/// starts with `SELECT`, `WITH`, `VALUES`, `TABLE`, `SHOW`, `DESCRIBE`/`DESC`, `EXPLAIN` (not
/// `EXPLAIN ANALYZE` of a write) or is `COPY … TO STDOUT`, and none of them contains a
/// data-modifying CTE, a locking clause, `INTO`, a sequence or session-state construct, or a
/// call to a function on the write list ([`DEFAULT_WRITE_FUNCTIONS`], extensible with
/// [`Classifier::with_write_functions`]). Everything else — including empty text, unknown
/// statements and text with an unterminated string or comment — is a [`Access::Write`].
///
/// The work is one pass of a byte lexer: no regular expressions, no allocation, no panics.
///
/// # Hints
///
/// A comment `/*rwsplit:primary*/` anywhere in the text (before the point where the text is
/// already known to be a write) makes it a write, so it goes to the primary.
/// `/*rwsplit:replica*/` never turns a write into a read: a user hint must never send a write
/// to a replica. It is recorded in [`Classification::hint`] so that the router lets a *read*
/// go to a replica even when the consistency level would have sent it to the primary.
/// A hint comment may also carry a tag for routing rules: `/* rwsplit:replica,tag=analytics */`.
/// Line comments (`-- rwsplit:primary`) work too; directives are separated by commas or spaces.
///
/// # What is not understood is a write
///
/// A string literal whose end depends on the server's escape mode
/// (`standard_conforming_strings`, `NO_BACKSLASH_ESCAPES`), a Unicode-escaped name (`U&"…"`)
/// called as a function, a statement cut short (`EXPLAIN ANALYZE;`) and unterminated text all
/// make the statement a write.
///
/// # MySQL and MariaDB executable comments
///
/// On [`Dialect::MySql`], the content of `/*! … */` is code; so is that of the
/// version-dependent `/*!NNNNN … */` and MariaDB's `/*M! … */`, `/*M!NNNNNN … */` — and since
/// a server may also skip those as comments (by its product and version), the statement is a
/// read only if it reads both ways, each such comment as code and as a comment in every
/// combination. A comment that reads differently the two ways (a string running past its
/// `*/`, a nested comment) or is unterminated makes the statement a write; so do more than four
/// of them. `/*m! … */` (lower case) is a comment to both servers,
/// and on PostgreSQL and SQLite all of these are ordinary comments.
///
/// ```
/// use rwsplit_core::{Access, Dialect, classify};
/// assert_eq!(classify("SELECT 1 /*M!100000 FOR UPDATE */", Dialect::MySql), Access::Write);
/// assert_eq!(classify("SELECT /*!40001 SQL_NO_CACHE */ * FROM t", Dialect::MySql), Access::Read);
/// assert_eq!(classify("SELECT 1 /*M!100000 FOR UPDATE */", Dialect::Postgres), Access::Read);
/// ```
///
/// `INTO` anywhere in a query (`SELECT … INTO @v`, `INTO OUTFILE`, PostgreSQL's `SELECT …
/// INTO t`) and in MySQL's `EXPLAIN [FORMAT = JSON] INTO @v …` makes it a write.
///
/// # What is not detected
///
/// Functions not on the list are assumed read-only: a user-defined or extension function that
/// writes must be added with [`Classifier::with_write_functions`]. Temporary tables are not
/// known to the classifier.
///
/// ```
/// use rwsplit_core::{Access, Classifier, Dialect};
/// let c = Classifier::default().with_write_functions(["audit_touch", "queue_*"]);
/// assert_eq!(c.classify("SELECT audit_touch(1)", Dialect::Postgres), Access::Write);
/// assert_eq!(c.classify("SELECT public.queue_pop()", Dialect::Postgres), Access::Write);
/// assert_eq!(c.classify("SELECT count(*) FROM t", Dialect::Postgres), Access::Read);
/// ```
#[derive(Clone, Debug)]
pub struct Classifier {
    functions: FunctionSet,
    /// How the query state's fast path runs ([`Engine::General`]: not at all, to test the
    /// others against the general path).
    engine: Engine,
}

impl Default for Classifier {
    fn default() -> Self {
        DEFAULT.clone()
    }
}

static DEFAULT: Classifier = Classifier { functions: FunctionSet::new(), engine: Engine::Fast };

/// Whether the query state takes its fast path. [`Engine::Fast`] in normal use; tests compare it
/// with [`Engine::General`] on every input they try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code, reason = "tests construct the general engine"))]
enum Engine {
    /// No fast path: the general lexer for everything.
    General,
    /// The fused scalar loop of `scalar.rs` for the common tokens of a read query.
    Fast,
}

/// Classifies `sql` with the default [`Classifier`]: [`Access::Read`] only if the text is
/// provably a read (see [`Classifier`] for the rules, hints and limits).
///
/// ```
/// use rwsplit_core::{Access, Dialect, classify};
/// assert_eq!(classify(r#"SELECT "user"."id" FROM "user" WHERE "user"."id" = $1"#, Dialect::Postgres), Access::Read);
/// assert_eq!(classify(r#"INSERT INTO "user" ("name") VALUES ($1) RETURNING "id""#, Dialect::Postgres), Access::Write);
/// assert_eq!(classify("SELECT `id` FROM `t` LOCK IN SHARE MODE", Dialect::MySql), Access::Write);
/// ```
#[must_use]
pub fn classify(sql: &str, dialect: Dialect) -> Access {
    DEFAULT.explain(sql, dialect).access
}

/// Classifies `sql` with the default [`Classifier`] and says why.
///
/// ```
/// use rwsplit_core::{Access, Dialect, Hint, Reason, explain};
/// let c = explain(r#"WITH "gone" AS (DELETE FROM "t" RETURNING *) SELECT * FROM "gone""#, Dialect::Postgres);
/// assert_eq!((c.access(), c.reason()), (Access::Write, Reason::DataModifyingCte));
/// let c = explain("/*rwsplit:replica*/ SELECT 1", Dialect::Postgres);
/// assert_eq!((c.access(), c.hint()), (Access::Read, Some(Hint::Replica)));
/// ```
#[must_use]
pub fn explain(sql: &str, dialect: Dialect) -> Classification<'_> {
    DEFAULT.explain(sql, dialect)
}

impl Classifier {
    /// Adds functions whose calls make a statement a write. A trailing `*` makes a prefix
    /// (`"audit_*"`). Names are compared ASCII-case-insensitively with the last component of
    /// the called name.
    #[must_use]
    pub fn with_write_functions<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for n in names {
            self.functions.add(n.as_ref());
        }
        self
    }

    /// Drops the built-in [`DEFAULT_WRITE_FUNCTIONS`], keeping only names added with
    /// [`Classifier::with_write_functions`].
    #[must_use]
    pub fn without_default_write_functions(mut self) -> Self {
        self.functions.clear_defaults();
        self
    }

    /// Read or write.
    #[must_use]
    pub fn classify(&self, sql: &str, dialect: Dialect) -> Access {
        self.explain(sql, dialect).access
    }

    /// Read or write, why, and any hint or tag.
    #[must_use]
    pub fn explain<'a>(&self, sql: &'a str, dialect: Dialect) -> Classification<'a> {
        let mut lx = Lexer::new(sql, dialect);
        let (mut access, mut reason) = self.scan(&mut lx);
        if access == Access::Read && lx.versioned > 0 {
            (access, reason) = self.other_readings(sql, dialect, lx.versioned, reason);
        }
        // A primary hint turns a read into a write; a write keeps its own reason.
        let (access, reason) = match (access, lx.hint) {
            (Access::Read, Some(Hint::Primary)) => (Access::Write, Reason::Hint),
            _ => (access, reason),
        };
        let tag = lx.tag.and_then(|(s, e)| sql.get(s..e));
        Classification { access, reason, hint: lx.hint, tag }
    }

    /// A statement read with its `n` version-dependent executable comments all lexed as code
    /// was a read (for `reason`): reads it with every other combination of them skipped as
    /// comments, and answers the first write if any.
    ///
    /// `scan` and the fast path are inlined into both `explain` and [`Classifier::scan_cold`]:
    /// with two call sites the compiler kept them out of line, which cost `explain` ≈ 45
    /// instructions on a 197-byte SELECT (callgrind).
    #[cold]
    #[inline(never)]
    fn other_readings(
        &self,
        sql: &str,
        dialect: Dialect,
        n: u32,
        reason: Reason,
    ) -> (Access, Reason) {
        if n > MAX_VERSIONED_COMMENTS {
            return (Access::Write, Reason::Opaque);
        }
        for skip in 1..(1u32 << n) {
            let mut lx = Lexer::skipping(sql, dialect, skip);
            let (access, why) = self.scan_cold(&mut lx);
            if access == Access::Write {
                return (access, why);
            }
        }
        (Access::Read, reason)
    }

    /// [`Classifier::scan`] for the rare second readings, a copy of its own.
    #[cold]
    #[inline(never)]
    fn scan_cold(&self, lx: &mut Lexer<'_>) -> (Access, Reason) {
        self.scan(lx)
    }

    /// One reading of the statement: the state machine over the lexer's tokens.
    #[inline(always)]
    fn scan(&self, lx: &mut Lexer<'_>) -> (Access, Reason) {
        const WRITE: Access = Access::Write;
        let mut state = State::Start;
        // The reason of the first read statement; `None` while no statement was seen.
        let mut read: Option<Reason> = None;
        // The keyword of the previous token (`Kw::None` for anything else).
        let mut prev = Kw::None;
        // The previous token if it could name a called function.
        let mut name: Option<&[u8]> = None;
        let mut prev_dot = false;
        let mut depth = 0u32;

        // The most common starts, `SELECT` or `WITH` and a byte that ends the word, without
        // the general lexer: the same state as the `Tok::Word` of the `Start` state below (no
        // comment was lexed, so no hint). Off with the fast path, to test one against the other.
        if self.engine != Engine::General && lx.pos() == 0 {
            match first_keyword(lx.src()) {
                Some(Kw::Select) => {
                    lx.set_pos(6);
                    state = State::query(false);
                    read = Some(Reason::Select);
                    prev = Kw::Select;
                }
                Some(Kw::With) => {
                    lx.set_pos(4);
                    state = State::query(true);
                    read = Some(Reason::Select);
                    prev = Kw::With;
                }
                _ => {}
            }
        }

        loop {
            // The query state's common case takes the fast path, unless the engine is
            // `Engine::General` or a MySQL executable comment is open (its `*/` is the general
            // lexer's).
            if let State::Query { with, analyze, copy } = state
                && self.engine != Engine::General
                && !lx.in_exec_comment()
            {
                let mut vars = QueryVars { prev, name, prev_dot, depth };
                let fast = scalar::scan_query(lx, &mut vars, &self.functions, with, analyze, copy);
                QueryVars { prev, name, prev_dot, depth } = vars;
                if let Some(r) = fast {
                    return (WRITE, r);
                }
            }
            let Some(tok) = lx.next_token() else { break };
            if lx.hint == Some(Hint::Primary) {
                return (WRITE, Reason::Hint);
            }
            if tok == Tok::Punct(b';') {
                if let Some(r) = state.cut_short() {
                    return (WRITE, r);
                }
                state = State::Start;
                prev = Kw::None;
                name = None;
                prev_dot = false;
                depth = 0;
                continue;
            }
            match state {
                State::Start => {
                    let kw = match tok {
                        Tok::Punct(b'(') => {
                            depth += 1;
                            continue;
                        }
                        Tok::Word(w) => keyword(w),
                        _ => return (WRITE, Reason::Statement),
                    };
                    let (next, r) = match kw {
                        Kw::Select | Kw::Values | Kw::Table => {
                            (State::query(false), Reason::Select)
                        }
                        Kw::With => (State::query(true), Reason::Select),
                        // Only a query can be parenthesised: `(EXPLAIN …)` is not understood.
                        _ if depth > 0 => return (WRITE, Reason::Statement),
                        Kw::Show => (State::Show, Reason::Show),
                        // MySQL's DESCRIBE is a synonym of EXPLAIN (`DESC ANALYZE …` runs it).
                        Kw::Describe | Kw::Desc => {
                            (State::ExplainOptions { analyze: false }, Reason::Show)
                        }
                        Kw::Explain => (State::ExplainOptions { analyze: false }, Reason::Explain),
                        Kw::Copy => (State::Copy, Reason::CopyTo),
                        _ => return (WRITE, Reason::Statement),
                    };
                    state = next;
                    if read.is_none() {
                        read = Some(r);
                    }
                    prev = kw;
                    name = None;
                }
                State::Query { with, analyze, copy } => {
                    match tok {
                        Tok::Word(w) => {
                            if prev_dot {
                                // A qualified name's component is never a keyword.
                                prev = Kw::None;
                            } else {
                                let kw = keyword(w);
                                if let Some(r) = query_keyword(kw, prev, with, analyze) {
                                    return (WRITE, r);
                                }
                                prev = kw;
                            }
                            name = Some(w);
                            prev_dot = false;
                            continue;
                        }
                        Tok::Quoted(q) => {
                            name = Some(q);
                            prev = Kw::None;
                            prev_dot = false;
                            continue;
                        }
                        Tok::UQuoted(_) => {
                            // Its escapes may spell any name: called (possibly after a
                            // `UESCAPE 'c'`), it is not understood.
                            if unicode_name_is_called(lx) {
                                return (WRITE, Reason::Opaque);
                            }
                            name = None;
                            prev = Kw::None;
                            prev_dot = false;
                            continue;
                        }
                        Tok::Punct(b'(') => {
                            if name.is_some_and(|n| self.functions.contains(n)) {
                                return (WRITE, Reason::WriteFunction);
                            }
                            depth += 1;
                        }
                        Tok::Punct(b')') => {
                            depth = depth.saturating_sub(1);
                            if copy && depth == 0 {
                                state = State::Copy;
                            }
                        }
                        Tok::UserVar => return (WRITE, Reason::SessionState),
                        Tok::SysVar(v) if is_session_sysvar(v) => {
                            return (WRITE, Reason::SessionState);
                        }
                        _ => {}
                    }
                    prev_dot = tok == Tok::Punct(b'.');
                    prev = Kw::None;
                    name = None;
                }
                State::Show => {
                    if let Tok::Word(w) = tok
                        && (matches!(keyword(w), Kw::Master | Kw::Binary) || is_session_show(w))
                    {
                        return (WRITE, Reason::SessionState);
                    }
                    state = State::Skip;
                }
                State::ExplainOptions { analyze } => match tok {
                    Tok::Word(w) => {
                        let kw = keyword(w);
                        if kw == Kw::Into {
                            // MySQL's `EXPLAIN FORMAT = JSON INTO @v …` sets the variable.
                            return (WRITE, Reason::SelectInto);
                        }
                        if kw == Kw::Analyze {
                            state = State::ExplainOptions { analyze: true };
                        } else if matches!(kw, Kw::False | Kw::Off) && prev == Kw::Analyze {
                            state = State::ExplainOptions { analyze: false };
                        } else if depth == 0 && prev != Kw::Equals && !is_explain_option(w) {
                            if !analyze {
                                // Planned, not run: a read whatever the statement (but see
                                // `State::Explained`).
                                state = State::Explained;
                                prev = kw;
                                continue;
                            }
                            // Classify the explained statement as if it stood alone.
                            state = match kw {
                                Kw::Select | Kw::Values | Kw::Table => {
                                    State::Query { with: false, analyze: true, copy: false }
                                }
                                Kw::With => State::Query { with: true, analyze: true, copy: false },
                                _ => return (WRITE, Reason::ExplainAnalyze),
                            };
                        }
                        prev = kw;
                    }
                    Tok::Punct(b'(') => {
                        depth += 1;
                        prev = Kw::None;
                    }
                    Tok::Punct(b')') => {
                        depth = depth.saturating_sub(1);
                        prev = Kw::None;
                    }
                    // A quoted option name is compared like a bare one (PostgreSQL accepts
                    // `EXPLAIN ("analyze") …`); a quoted value never turns `ANALYZE` off.
                    Tok::Quoted(q) if depth > 0 => {
                        prev = keyword(q);
                        if prev == Kw::Analyze {
                            state = State::ExplainOptions { analyze: true };
                        }
                    }
                    // An escaped option may be `ANALYZE`; where a statement should start, a
                    // quoted name is no read either.
                    Tok::UQuoted(_) | Tok::Quoted(_) => {
                        if depth == 0 && analyze {
                            return (WRITE, Reason::ExplainAnalyze);
                        }
                        state = State::ExplainOptions { analyze: true };
                        prev = Kw::None;
                    }
                    Tok::Punct(b'=') => prev = Kw::Equals,
                    // `ANALYZE 0` in an option list is taken as on: the safe side.
                    Tok::Num if prev == Kw::Analyze => prev = Kw::None,
                    _ => prev = Kw::None,
                },
                State::Copy => match tok {
                    Tok::Punct(b'(') if prev == Kw::Copy => {
                        // `COPY (query) TO …`: the query is classified like any other.
                        depth += 1;
                        state = State::CopyQuery;
                    }
                    Tok::Punct(b'(') => depth += 1,
                    Tok::Punct(b')') => depth = depth.saturating_sub(1),
                    Tok::Word(w) if depth == 0 => match keyword(w) {
                        Kw::From => return (WRITE, Reason::Statement),
                        Kw::To => state = State::CopyTo,
                        _ => prev = Kw::None,
                    },
                    _ => prev = Kw::None,
                },
                State::CopyQuery => match tok {
                    Tok::Word(w) => match keyword(w) {
                        Kw::Select | Kw::Values | Kw::Table => {
                            state = State::Query { with: false, analyze: false, copy: true };
                        }
                        Kw::With => state = State::Query { with: true, analyze: false, copy: true },
                        _ => return (WRITE, Reason::Statement),
                    },
                    Tok::Punct(b'(') => depth += 1,
                    _ => return (WRITE, Reason::Statement),
                },
                State::CopyTo => match tok {
                    Tok::Word(w) if keyword(w) == Kw::Stdout => state = State::Skip,
                    _ => return (WRITE, Reason::Statement),
                },
                State::Explained if lx.dialect() == Dialect::MySql => {
                    // `INTO @v`, `INTO OUTFILE`, `INTO DUMPFILE` (not the table of
                    // `INSERT INTO t`, which `EXPLAIN` only plans).
                    let Tok::Word(w) = tok else {
                        if prev == Kw::Into && tok == Tok::UserVar {
                            return (WRITE, Reason::SelectInto);
                        }
                        prev = Kw::None;
                        continue;
                    };
                    if prev == Kw::Into
                        && (w.eq_ignore_ascii_case(b"OUTFILE")
                            || w.eq_ignore_ascii_case(b"DUMPFILE"))
                    {
                        return (WRITE, Reason::SelectInto);
                    }
                    prev = keyword(w);
                }
                State::Explained => {}
                State::Skip => {}
            }
        }
        // Still inside an executable comment: a string or identifier lexed as its code ran
        // past its `*/` (an unterminated one stopped the scan as such).
        if lx.opaque || lx.in_exec_comment() {
            return (WRITE, Reason::Opaque);
        }
        if lx.unterminated {
            return (WRITE, Reason::Unterminated);
        }
        if lx.ambiguous {
            return (WRITE, Reason::AmbiguousString);
        }
        if let Some(r) = state.cut_short() {
            return (WRITE, r);
        }
        match read {
            Some(r) => (Access::Read, r),
            None => (WRITE, Reason::Empty),
        }
    }
}

/// Whether the token after a `U&"…"` identifier makes it a called name: `(`, or the `UESCAPE`
/// that may come between the name and its `(`. Looks ahead on a copy of the lexer.
#[cold]
fn unicode_name_is_called(lx: &Lexer<'_>) -> bool {
    let mut ahead = lx.clone();
    match ahead.next_token() {
        Some(Tok::Punct(b'(')) => true,
        Some(Tok::Word(w)) => w.eq_ignore_ascii_case(b"UESCAPE"),
        _ => false,
    }
}

/// `SELECT` or `WITH` (any case) if `src` starts with one of them and a byte that cannot
/// continue a word (texts shorter than 8 bytes are left to the general lexer).
#[inline(always)]
fn first_keyword(src: &[u8]) -> Option<Kw> {
    let head = src.first_chunk::<8>()?;
    let v = u64::from_le_bytes(*head);
    // Clearing bit 5 upper-cases a letter; only `s` and `S` map to `S`, and so on.
    const SELECT: u64 = u64::from_le_bytes(*b"SELECT\0\0");
    const WITH: u64 = u64::from_le_bytes(*b"WITH\0\0\0\0");
    let ends = |at: usize| head.get(at).is_some_and(|&b| lexer::class(b) & lexer::CONT == 0);
    if v & 0x0000_dfdf_dfdf_dfdf == SELECT && ends(6) {
        Some(Kw::Select)
    } else if v & 0xdfdf_dfdf == WITH && ends(4) {
        Some(Kw::With)
    } else {
        None
    }
}

/// What the scanner expects next in the current statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The first keyword of a statement.
    Start,
    /// Inside a read query.
    Query {
        /// The query started with `WITH`.
        with: bool,
        /// The query runs under `EXPLAIN ANALYZE`.
        analyze: bool,
        /// The query is the `( … )` of `COPY ( … ) TO`.
        copy: bool,
    },
    /// After `SHOW`.
    Show,
    /// `EXPLAIN` options, up to the explained statement.
    ExplainOptions {
        /// `ANALYZE` was seen (and not turned off).
        analyze: bool,
    },
    /// After `COPY`, up to `TO` or `FROM`.
    Copy,
    /// After `COPY (`.
    CopyQuery,
    /// After `COPY … TO`: only `STDOUT` is a read.
    CopyTo,
    /// The statement an `EXPLAIN` (or `DESCRIBE`) without `ANALYZE` plans: a read, but on
    /// MySQL/MariaDB `INTO @v`, `INTO OUTFILE` or `INTO DUMPFILE` anywhere in it is a write
    /// (the planned statement's own `INTO` is taken like that of `EXPLAIN FORMAT = JSON INTO
    /// @v …`, which sets the variable: the safe side).
    Explained,
    /// The statement is a read; only its end matters.
    Skip,
}

impl State {
    const fn query(with: bool) -> Self {
        Self::Query { with, analyze: false, copy: false }
    }

    /// The write reason if a statement ends (`;` or the end of the text) in this state: cut
    /// short, like `EXPLAIN ANALYZE` or `COPY t TO` with nothing after it, it is not understood.
    const fn cut_short(self) -> Option<Reason> {
        match self {
            Self::ExplainOptions { analyze: true } => Some(Reason::ExplainAnalyze),
            Self::Copy | Self::CopyQuery | Self::CopyTo => Some(Reason::Statement),
            _ => None,
        }
    }
}
