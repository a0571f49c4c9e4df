//! Statement classification: is this SQL text provably a read?
//!
//! [`classify`] answers [`Access::Read`] only when it can prove the text reads: every statement
//! starts with `SELECT`, `WITH`, `VALUES`, `TABLE`, `SHOW`, `DESCRIBE`/`DESC`, `EXPLAIN` (not
//! `EXPLAIN ANALYZE` of a write) or is `COPY … TO STDOUT`, and none of them contains a
//! data-modifying CTE, a locking clause, `INTO`, a sequence or session-state construct, or a
//! call to a function on the write list ([`DEFAULT_WRITE_FUNCTIONS`], extensible with
//! [`Classifier::with_write_functions`]). Everything else — including empty text, unknown
//! statements and text with an unterminated string or comment — is a [`Access::Write`].
//!
//! The work is one pass of a byte lexer: no regular expressions, no allocation, no panics.
//!
//! # Hints
//!
//! A comment `/*rwsplit:primary*/` anywhere in the text (before the point where the text is
//! already known to be a write) makes it a write, so it goes to the primary.
//! `/*rwsplit:replica*/` never turns a write into a read: a user hint must never send a write
//! to a replica. It is recorded in [`Classification::hint`] so that the router lets a *read*
//! go to a replica even when the consistency level would have sent it to the primary.
//! A hint comment may also carry a tag for routing rules: `/* rwsplit:replica,tag=analytics */`.
//! Line comments (`-- rwsplit:primary`) work too; directives are separated by commas or spaces.
//!
//! # What is not detected
//!
//! Functions not on the list are assumed read-only: a user-defined function that writes must be
//! added with [`Classifier::with_write_functions`]. Temporary tables are not known to the
//! classifier. A string literal whose end depends on the server's escape mode
//! (`standard_conforming_strings`, `NO_BACKSLASH_ESCAPES`) is treated as a write.

mod functions;
mod lexer;
mod tables;

#[cfg(test)]
mod tests;

use std::fmt;

pub use functions::DEFAULT_WRITE_FUNCTIONS;
pub use tables::{Tables, tables};

use functions::FunctionSet;
use lexer::{CONT, Lexer, Tok, class, find_byte};

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
    /// Session or primary-only state: MySQL user variables, `@@identity`,
    /// `SQL_CALC_FOUND_ROWS`, `SHOW MASTER STATUS`.
    SessionState,
    /// A `/*rwsplit:primary*/` hint.
    Hint,
    /// The text holds no statement.
    Empty,
    /// A string, quoted identifier or comment is not terminated.
    Unterminated,
    /// A string literal whose end depends on the server's escape mode.
    AmbiguousString,
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
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
}

/// A configurable classifier. [`Classifier::default`] uses [`DEFAULT_WRITE_FUNCTIONS`].
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
    /// Whether the query state uses its fused fast path (off only to test it against the
    /// general path).
    fast_path: bool,
}

impl Default for Classifier {
    fn default() -> Self {
        DEFAULT.clone()
    }
}

static DEFAULT: Classifier = Classifier { functions: FunctionSet::new(), fast_path: true };

/// Classifies `sql` with the default [`Classifier`].
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
        let (access, reason) = self.scan(&mut lx);
        // A primary hint turns a read into a write; a write keeps its own reason.
        let (access, reason) = match (access, lx.hint) {
            (Access::Read, Some(Hint::Primary)) => (Access::Write, Reason::Hint),
            _ => (access, reason),
        };
        let tag = lx.tag.and_then(|(s, e)| sql.get(s..e));
        Classification { access, reason, hint: lx.hint, tag }
    }

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

        loop {
            if let State::Query { with, analyze, copy } = state {
                let mut vars = QueryVars { prev, name, prev_dot, depth };
                let fast = self.fast_query(lx, &mut vars, with, analyze, copy);
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
                        && matches!(keyword(w), Kw::Master | Kw::Binary)
                    {
                        return (WRITE, Reason::SessionState);
                    }
                    state = State::Skip;
                }
                State::ExplainOptions { analyze } => match tok {
                    Tok::Word(w) => {
                        let kw = keyword(w);
                        if kw == Kw::Analyze {
                            state = State::ExplainOptions { analyze: true };
                        } else if matches!(kw, Kw::False | Kw::Off) && prev == Kw::Analyze {
                            state = State::ExplainOptions { analyze: false };
                        } else if depth == 0 && prev != Kw::Equals && !is_explain_option(w) {
                            if !analyze {
                                // Planned, not run: a read whatever the statement.
                                state = State::Skip;
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
                State::Skip => {}
            }
        }
        if lx.unterminated {
            return (WRITE, Reason::Unterminated);
        }
        if lx.ambiguous {
            return (WRITE, Reason::AmbiguousString);
        }
        match state {
            // A statement cut short: `EXPLAIN ANALYZE` or `COPY t TO` with nothing after it.
            State::ExplainOptions { analyze: true } => {
                return (WRITE, Reason::ExplainAnalyze);
            }
            State::Copy | State::CopyQuery | State::CopyTo => return (WRITE, Reason::Statement),
            _ => {}
        }
        match read {
            Some(r) => (Access::Read, r),
            None => (WRITE, Reason::Empty),
        }
    }
}

/// The query-state variables of [`Classifier::scan`], shared with its fast path.
struct QueryVars<'a> {
    prev: Kw,
    name: Option<&'a [u8]>,
    prev_dot: bool,
    depth: u32,
}

impl Classifier {
    /// The query state's common case, lexed and classified in one tight loop: whitespace,
    /// quoted identifiers, words, numbers, parameters and plain punctuation. It stops, leaving
    /// the lexer at the byte, at anything else (strings, comments, `;`, variables …), which the
    /// general loop handles with the full lexer; the two apply exactly the same rules.
    #[inline]
    fn fast_query<'a>(
        &self,
        lx: &mut Lexer<'a>,
        v: &mut QueryVars<'a>,
        with: bool,
        analyze: bool,
        copy: bool,
    ) -> Option<Reason> {
        if lx.in_exec_comment() || !self.fast_path {
            return None;
        }
        let src = lx.src();
        let dialect = lx.dialect();
        let quoted_double = dialect != Dialect::MySql;
        let mut rest = src.get(lx.pos()..).unwrap_or_default();
        let at = |rest: &[u8]| src.len() - rest.len();
        let result = loop {
            let Some((&b, mut tail)) = rest.split_first() else { break None };
            let b = if b == b' ' {
                // Single spaces between tokens are the most common byte: skip without dispatch.
                rest = tail;
                match tail.split_first() {
                    Some((&n, t)) => {
                        tail = t;
                        n
                    }
                    None => break None,
                }
            } else {
                b
            };
            match FAST[usize::from(b)] {
                F_SPACE => {
                    let n = tail
                        .iter()
                        .position(|&c| FAST[usize::from(c)] != F_SPACE)
                        .unwrap_or(tail.len());
                    rest = tail.get(n..).unwrap_or_default();
                }
                F_QUOTE if b == b'`' || quoted_double => {
                    let Some(end) = find_byte(tail, b) else { break None };
                    let (Some(name), Some(after)) = (tail.get(..end), tail.get(end + 1..)) else {
                        break None;
                    };
                    if after.first() == Some(&b) {
                        break None; // a doubled quote: the full lexer knows
                    }
                    v.name = Some(name);
                    v.prev = Kw::None;
                    v.prev_dot = false;
                    rest = after;
                    // `"table"."column"`: take the qualified name in one go (saves dispatches).
                    while let [b'.', q, tail @ ..] = rest
                        && *q == b
                    {
                        let Some(end) = find_byte(tail, b) else { break };
                        let (Some(name), Some(after)) = (tail.get(..end), tail.get(end + 1..))
                        else {
                            break;
                        };
                        if after.first() == Some(&b) {
                            break;
                        }
                        v.name = Some(name);
                        rest = after;
                    }
                    // `"column", `: the separator too.
                    if let [b',', tail @ ..] = rest {
                        v.reset(false);
                        rest = match tail {
                            [b' ', t @ ..] => t,
                            t => t,
                        };
                    }
                }
                F_WORD => {
                    let len = tail.iter().position(|&c| class(c) & CONT == 0).unwrap_or(tail.len());
                    if len == 0
                        && (b | 0x20) == b'e'
                        && dialect == Dialect::Postgres
                        && tail.first() == Some(&b'\'')
                    {
                        break None; // an E'' string
                    }
                    let (w, after) = rest.split_at_checked(len + 1).unwrap_or((rest, &[]));
                    if v.prev_dot {
                        v.prev = Kw::None;
                    } else {
                        let kw = keyword(w);
                        if let Some(r) = query_keyword(kw, v.prev, with, analyze) {
                            lx.set_pos(at(after));
                            return Some(r);
                        }
                        v.prev = kw;
                    }
                    v.name = Some(w);
                    v.prev_dot = false;
                    rest = after;
                    // `name(`: the call, without another dispatch.
                    if let [b'(', tail @ ..] = rest {
                        if self.functions.contains(w) {
                            lx.set_pos(at(tail));
                            return Some(Reason::WriteFunction);
                        }
                        v.depth += 1;
                        v.reset(false);
                        rest = tail;
                    }
                }
                F_OPEN => {
                    if v.name.is_some_and(|n| self.functions.contains(n)) {
                        lx.set_pos(at(tail));
                        return Some(Reason::WriteFunction);
                    }
                    v.depth += 1;
                    v.reset(false);
                    rest = tail;
                }
                F_CLOSE if !copy => {
                    v.depth = v.depth.saturating_sub(1);
                    v.reset(false);
                    rest = tail;
                }
                F_DOT => {
                    v.reset(true);
                    rest = tail;
                }
                F_PUNCT => {
                    v.reset(false);
                    rest = tail;
                }
                F_DOLLAR
                    if dialect == Dialect::Postgres
                        && tail.first().is_some_and(u8::is_ascii_digit) =>
                {
                    let len = tail.iter().position(|c| !c.is_ascii_digit()).unwrap_or(tail.len());
                    rest = tail.get(len..).unwrap_or_default();
                    v.reset(false);
                }
                F_DIGIT => {
                    let len = tail
                        .iter()
                        .position(|&c| class(c) & CONT == 0 && c != b'.')
                        .unwrap_or(tail.len());
                    rest = tail.get(len..).unwrap_or_default();
                    v.reset(false);
                }
                _ => break None,
            }
        };
        lx.set_pos(at(rest));
        result
    }
}

const F_OTHER: u8 = 0;
const F_SPACE: u8 = 1;
const F_QUOTE: u8 = 2;
const F_WORD: u8 = 3;
const F_OPEN: u8 = 4;
const F_CLOSE: u8 = 5;
const F_DOT: u8 = 6;
const F_PUNCT: u8 = 7;
const F_DOLLAR: u8 = 8;
const F_DIGIT: u8 = 9;

/// What the fast path does with each byte; `F_OTHER` hands over to the full lexer.
static FAST: [u8; 256] = {
    let mut t = [F_OTHER; 256];
    let mut c = 0u8;
    loop {
        t[c as usize] = match c {
            b' ' | b'\n' | b'\t' | b'\r' => F_SPACE,
            b'"' | b'`' => F_QUOTE,
            b'(' => F_OPEN,
            b')' => F_CLOSE,
            b'.' => F_DOT,
            b',' | b'=' | b'*' | b'<' | b'>' | b'+' | b'%' | b'|' | b'!' | b'?' => F_PUNCT,
            b'$' => F_DOLLAR,
            b'0'..=b'9' => F_DIGIT,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | 0x80..=0xff => F_WORD,
            _ => F_OTHER,
        };
        if c == u8::MAX {
            break t;
        }
        c += 1;
    }
};

impl QueryVars<'_> {
    /// After a token that is neither a word nor a quoted identifier.
    #[inline(always)]
    fn reset(&mut self, dot: bool) {
        self.prev_dot = dot;
        self.prev = Kw::None;
        self.name = None;
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
    /// The statement is a read; only its end matters.
    Skip,
}

impl State {
    const fn query(with: bool) -> Self {
        Self::Query { with, analyze: false, copy: false }
    }
}

/// The write reason, if keyword `kw` after `prev` makes a read query a write.
#[inline]
fn query_keyword(kw: Kw, prev: Kw, with: bool, analyze: bool) -> Option<Reason> {
    let dml = || {
        if analyze {
            Reason::ExplainAnalyze
        } else if with {
            Reason::DataModifyingCte
        } else {
            Reason::Statement
        }
    };
    match kw {
        Kw::None => None,
        Kw::Insert | Kw::Delete | Kw::Merge => Some(dml()),
        Kw::Update if matches!(prev, Kw::For | Kw::Key) => Some(Reason::LockingClause),
        Kw::Update => Some(dml()),
        Kw::Share | Kw::No | Kw::Key if prev == Kw::For => Some(Reason::LockingClause),
        Kw::Share if prev == Kw::Key => Some(Reason::LockingClause),
        Kw::In if prev == Kw::Lock => Some(Reason::LockingClause),
        Kw::Into => Some(Reason::SelectInto),
        Kw::Value if matches!(prev, Kw::Next | Kw::Previous) => Some(Reason::WriteFunction),
        Kw::SqlCalcFoundRows => Some(Reason::SessionState),
        _ => None,
    }
}

/// MySQL system variables that hold per-session results.
fn is_session_sysvar(v: &[u8]) -> bool {
    v.eq_ignore_ascii_case(b"identity")
        || v.eq_ignore_ascii_case(b"last_insert_id")
        || v.eq_ignore_ascii_case(b"insert_id")
}

/// The keywords the classifier cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kw {
    None,
    /// Not a keyword: the `=` of `FORMAT = JSON`.
    Equals,
    Analyze,
    Binary,
    Copy,
    Delete,
    Desc,
    Describe,
    Explain,
    False,
    For,
    From,
    In,
    Insert,
    Into,
    Key,
    Lock,
    Master,
    Merge,
    Next,
    No,
    Off,
    Previous,
    Select,
    Share,
    Show,
    SqlCalcFoundRows,
    Stdout,
    Table,
    To,
    Update,
    Value,
    Values,
    With,
}

/// Bare `EXPLAIN` options (PostgreSQL's legacy syntax and MySQL's) other than `ANALYZE`.
fn is_explain_option(w: &[u8]) -> bool {
    is(w, b"VERBOSE") || is(w, b"FORMAT") || is(w, b"EXTENDED") || is(w, b"PARTITIONS")
}

/// `w` equals the uppercase ASCII keyword `k`, ignoring case.
#[inline(always)]
fn is(w: &[u8], k: &[u8]) -> bool {
    // Clearing bit 5 upper-cases ASCII letters and keeps `_`; `w` has `k`'s length.
    w.len() == k.len() && w.iter().zip(k).all(|(a, b)| a & 0xdf == *b)
}

/// Packs a keyword of at most 8 bytes into a `u64`, little-endian, zero-padded.
const fn pack(k: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < k.len() && i < 8 {
        v |= (k[i] as u64) << (8 * i);
        i += 1;
    }
    v
}

/// The keyword `w` is, if the classifier cares about it.
///
/// Words of up to 8 bytes are packed into a `u64` and upper-cased with one mask (clearing bit 5
/// of every byte maps `a-z` to `A-Z` and cannot map any other identifier byte onto a letter),
/// so the lookup is one integer `match`.
#[inline(always)]
fn keyword(w: &[u8]) -> Kw {
    let len = w.len();
    if len > 8 {
        return if len == 19 && is(w, b"SQL_CALC_FOUND_ROWS") {
            Kw::SqlCalcFoundRows
        } else {
            Kw::None
        };
    }
    // Most words are not keywords: reject by (length, first letter) before packing.
    const fn first_letters() -> [u32; 9] {
        const KWS: [&[u8]; 33] = [
            b"ANALYSE",
            b"ANALYZE",
            b"BINARY",
            b"COPY",
            b"DELETE",
            b"DESC",
            b"DESCRIBE",
            b"EXPLAIN",
            b"FALSE",
            b"FOR",
            b"FROM",
            b"IN",
            b"INSERT",
            b"INTO",
            b"KEY",
            b"LOCK",
            b"MASTER",
            b"MERGE",
            b"NEXT",
            b"NO",
            b"OFF",
            b"PREVIOUS",
            b"SELECT",
            b"SHARE",
            b"SHOW",
            b"STDOUT",
            b"TABLE",
            b"TO",
            b"UPDATE",
            b"VALUE",
            b"VALUES",
            b"WITH",
            b"IN",
        ];
        let mut t = [0u32; 9];
        let mut i = 0;
        while i < KWS.len() {
            let k = KWS[i];
            t[k.len()] |= 1 << (k[0] - b'A');
            i += 1;
        }
        t
    }
    const FIRST: [u32; 9] = first_letters();
    let Some(&first) = w.first() else { return Kw::None };
    let letter = (first & 0xdf).wrapping_sub(b'A');
    if letter >= 26 || FIRST.get(len).is_none_or(|bits| bits & (1 << letter) == 0) {
        return Kw::None;
    }
    let mut word = 0u64;
    for (i, &b) in w.iter().enumerate() {
        word |= u64::from(b & 0xdf) << (8 * i);
    }
    const ANALYSE: u64 = pack(b"ANALYSE");
    const ANALYZE: u64 = pack(b"ANALYZE");
    const BINARY: u64 = pack(b"BINARY");
    const COPY: u64 = pack(b"COPY");
    const DELETE: u64 = pack(b"DELETE");
    const DESC: u64 = pack(b"DESC");
    const DESCRIBE: u64 = pack(b"DESCRIBE");
    const EXPLAIN: u64 = pack(b"EXPLAIN");
    const FALSE: u64 = pack(b"FALSE");
    const FOR: u64 = pack(b"FOR");
    const FROM: u64 = pack(b"FROM");
    const IN: u64 = pack(b"IN");
    const INSERT: u64 = pack(b"INSERT");
    const INTO: u64 = pack(b"INTO");
    const KEY: u64 = pack(b"KEY");
    const LOCK: u64 = pack(b"LOCK");
    const MASTER: u64 = pack(b"MASTER");
    const MERGE: u64 = pack(b"MERGE");
    const NEXT: u64 = pack(b"NEXT");
    const NO: u64 = pack(b"NO");
    const OFF: u64 = pack(b"OFF");
    const PREVIOUS: u64 = pack(b"PREVIOUS");
    const SELECT: u64 = pack(b"SELECT");
    const SHARE: u64 = pack(b"SHARE");
    const SHOW: u64 = pack(b"SHOW");
    const STDOUT: u64 = pack(b"STDOUT");
    const TABLE: u64 = pack(b"TABLE");
    const TO: u64 = pack(b"TO");
    const UPDATE: u64 = pack(b"UPDATE");
    const VALUE: u64 = pack(b"VALUE");
    const VALUES: u64 = pack(b"VALUES");
    const WITH: u64 = pack(b"WITH");
    match word {
        ANALYSE | ANALYZE => Kw::Analyze,
        BINARY => Kw::Binary,
        COPY => Kw::Copy,
        DELETE => Kw::Delete,
        DESC => Kw::Desc,
        DESCRIBE => Kw::Describe,
        EXPLAIN => Kw::Explain,
        FALSE => Kw::False,
        FOR => Kw::For,
        FROM => Kw::From,
        IN => Kw::In,
        INSERT => Kw::Insert,
        INTO => Kw::Into,
        KEY => Kw::Key,
        LOCK => Kw::Lock,
        MASTER => Kw::Master,
        MERGE => Kw::Merge,
        NEXT => Kw::Next,
        NO => Kw::No,
        OFF => Kw::Off,
        PREVIOUS => Kw::Previous,
        SELECT => Kw::Select,
        SHARE => Kw::Share,
        SHOW => Kw::Show,
        STDOUT => Kw::Stdout,
        TABLE => Kw::Table,
        TO => Kw::To,
        UPDATE => Kw::Update,
        VALUE => Kw::Value,
        VALUES => Kw::Values,
        WITH => Kw::With,
        _ => Kw::None,
    }
}
