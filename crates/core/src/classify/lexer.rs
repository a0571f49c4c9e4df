//! A single-pass SQL lexer over bytes.
//!
//! It knows just enough of each dialect to never mistake code for a string or a comment and
//! vice versa: comments (`--`, `/* */` nested in PostgreSQL, `#` in MySQL, whose executable
//! comments `/*! */`, `/*!NNNNN */`, `/*M! */` and `/*M!NNNNNN */` are lexed as code),
//! strings (`''` doubling, `E''`, MySQL backslash escapes, dollar quoting) and quoted
//! identifiers (`"…"`, `` `…` ``, SQLite `[…]`). It never allocates and never panics: every
//! index is checked, and an unterminated token ends the scan with [`Lexer::unterminated`] set.

use super::{Dialect, Hint};

/// One token. Comments produce no token; their hints are collected on the lexer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// A bare word: keyword or unquoted identifier.
    Word(&'a [u8]),
    /// A quoted identifier's content, without the quotes (doubled quotes are left as is).
    Quoted(&'a [u8]),
    /// A PostgreSQL Unicode-escaped identifier `U&"…"`, undecoded: the name it denotes is not
    /// what its bytes say (`U&"\0070g_advisory_lock"` is `pg_advisory_lock`).
    UQuoted(&'a [u8]),
    /// A string literal of any kind (content is irrelevant to routing).
    Str,
    /// A numeric literal.
    Num,
    /// A bind parameter: `$1`, `?`, SQLite `:name`/`@name`/`$name`.
    Param,
    /// A MySQL user variable `@name` (session state).
    UserVar,
    /// A MySQL system variable `@@name`; the slice is the first name component.
    SysVar(&'a [u8]),
    /// Any other single byte: punctuation or operator.
    Punct(u8),
}

pub(crate) const WS: u8 = 1;
pub(crate) const START: u8 = 2;
pub(crate) const CONT: u8 = 4;
pub(crate) const DIGIT: u8 = 8;

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0u8;
    loop {
        let i = b as usize;
        let mut c = 0u8;
        if b == b' ' || b == b'\t' || b == b'\n' || b == b'\r' || b == 0x0b || b == 0x0c {
            c |= WS;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            c |= START | CONT;
        }
        if b.is_ascii_digit() {
            c |= CONT | DIGIT;
        }
        if b == b'$' {
            c |= CONT;
        }
        t[i] = c;
        if b == u8::MAX {
            return t;
        }
        b += 1;
    }
}

static CLASS: [u8; 256] = classes();

#[inline(always)]
pub(crate) fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

/// The lexer. Iterate with [`Lexer::next_token`]; a clone looks ahead.
#[derive(Clone, Debug)]
pub(crate) struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    dialect: Dialect,
    /// Inside a MySQL executable comment `/*! … */`, whose `*/` must be skipped.
    in_exec_comment: bool,
    /// Where the open executable comment's `*/` is: the first `*/` after its opening, where a
    /// server that skips it as a comment ends it. Lexed as code, it must end there too.
    exec_end: usize,
    /// Which version-dependent comments (by their order in the text, see
    /// [`Lexer::versioned`]) this scan skips as comments instead of lexing them as code.
    skip: u32,
    /// How many version-dependent executable comments were opened: `/*!NNNNN … */` and
    /// `/*M! … */`, which a server runs or skips by its product and version.
    pub(crate) versioned: u32,
    /// An unterminated string, identifier or comment was met; the scan stopped there.
    pub(crate) unterminated: bool,
    /// A string literal whose end depends on the server's escape mode was met.
    pub(crate) ambiguous: bool,
    /// Text the lexer cannot tell code from comment in (a MySQL versioned comment, which
    /// servers run or skip by version): the scan stopped there.
    pub(crate) opaque: bool,
    /// The strongest routing hint seen in a comment so far.
    pub(crate) hint: Option<Hint>,
    /// Byte range of the first `tag=` value seen in a hint comment.
    pub(crate) tag: Option<(usize, usize)>,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str, dialect: Dialect) -> Self {
        Self {
            src: src.as_bytes(),
            pos: 0,
            dialect,
            in_exec_comment: false,
            exec_end: 0,
            skip: 0,
            versioned: 0,
            unterminated: false,
            ambiguous: false,
            opaque: false,
            hint: None,
            tag: None,
        }
    }

    /// A lexer that skips, as comments, the version-dependent executable comments whose bits
    /// are set in `skip` (bit `i`: the `i`-th in the text) and lexes the others as code: one of
    /// the ways a server may read the text.
    pub(crate) fn skipping(src: &'a str, dialect: Dialect, skip: u32) -> Self {
        Self { skip, ..Self::new(src, dialect) }
    }

    /// The whole input.
    #[inline(always)]
    pub(crate) fn src(&self) -> &'a [u8] {
        self.src
    }

    /// The offset of the next byte to lex.
    #[inline(always)]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves past bytes a caller lexed itself (see the classifier's fast path).
    #[inline(always)]
    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// The dialect.
    #[inline(always)]
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether a MySQL executable comment is open (its `*/` must be lexed here).
    #[inline(always)]
    pub(crate) fn in_exec_comment(&self) -> bool {
        self.in_exec_comment
    }

    #[inline(always)]
    fn peek(&self, off: usize) -> u8 {
        // Out of range reads as NUL, which no rule below treats as meaningful.
        match self.src.get(self.pos + off) {
            Some(b) => *b,
            None => 0,
        }
    }

    /// The next token, or `None` at the end of input (or at an unterminated token).
    #[inline]
    pub(crate) fn next_token(&mut self) -> Option<Tok<'a>> {
        loop {
            let mut b = *self.src.get(self.pos)?;
            let mut c = class(b);
            while c & WS != 0 {
                self.pos += 1;
                b = *self.src.get(self.pos)?;
                c = class(b);
            }
            if b == b'"' && self.dialect != Dialect::MySql {
                return self.quoted(b'"');
            }
            if c & START != 0 {
                // `E'…'`: an escape string (PostgreSQL).
                if (b == b'e' || b == b'E')
                    && self.peek(1) == b'\''
                    && self.dialect == Dialect::Postgres
                {
                    self.pos += 1;
                    return self.string(b'\'', Escapes::Backslash);
                }
                return Some(Tok::Word(self.word()));
            }
            if c & DIGIT != 0 {
                self.pos += 1;
                while let Some(&n) = self.src.get(self.pos) {
                    if class(n) & CONT != 0 || n == b'.' {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                return Some(Tok::Num);
            }
            match b {
                b'\'' => {
                    let esc = match self.dialect {
                        Dialect::MySql => Escapes::MySql,
                        Dialect::Postgres => Escapes::Standard,
                        Dialect::Sqlite => Escapes::None,
                    };
                    return self.string(b'\'', esc);
                }
                b'"' => {
                    return match self.dialect {
                        // A string by default in MySQL, an identifier with ANSI_QUOTES.
                        Dialect::MySql => {
                            let start = self.pos + 1;
                            self.string(b'"', Escapes::MySql)?;
                            let end = self.pos.saturating_sub(1);
                            Some(Tok::Quoted(self.src.get(start..end).unwrap_or_default()))
                        }
                        _ => self.quoted(b'"'),
                    };
                }
                b'`' => return self.quoted(b'`'),
                b'[' if self.dialect == Dialect::Sqlite => return self.quoted(b']'),
                b'-' if self.peek(1) == b'-' => {
                    // MySQL needs whitespace or a control character after `--`.
                    let after = self.peek(2);
                    if self.dialect != Dialect::MySql
                        || after <= b' '
                        || after == 0x7f
                        || self.pos + 2 >= self.src.len()
                    {
                        self.pos += 2;
                        self.line_comment();
                        continue;
                    }
                    self.pos += 1;
                    return Some(Tok::Punct(b'-'));
                }
                b'#' if self.dialect == Dialect::MySql => {
                    self.pos += 1;
                    self.line_comment();
                    continue;
                }
                b'/' if self.peek(1) == b'*' => {
                    if self.in_exec_comment {
                        // A comment inside `/*! … */`: where each ends depends on the server.
                        self.stop_opaque();
                        return None;
                    }
                    if self.block_comment() {
                        continue;
                    }
                    return None;
                }
                b'*' if self.in_exec_comment && self.peek(1) == b'/' => {
                    if self.pos != self.exec_end {
                        // A string, identifier or comment lexed as code ran past the first
                        // `*/`, where a server skipping the comment ends it.
                        self.stop_opaque();
                        return None;
                    }
                    self.in_exec_comment = false;
                    self.pos += 2;
                    continue;
                }
                b'$' if self.dialect == Dialect::Postgres && self.peek(1).is_ascii_digit() => {
                    // `$1`: a positional parameter.
                    let rest = self.src.get(self.pos + 1..).unwrap_or_default();
                    self.pos +=
                        1 + rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
                    return Some(Tok::Param);
                }
                b'$' => {
                    if let Some(t) = self.dollar() {
                        return t;
                    }
                    continue;
                }
                b'?' => {
                    self.pos += 1;
                    return Some(Tok::Param);
                }
                b'@' => return Some(self.at()),
                // `U&"…"`: a Unicode-escaped identifier (PostgreSQL). Its `U` was lexed as a
                // word already (here or by the classifier's fast path): the `&` right after a
                // word `U` and right before `"` makes the rest one token.
                b'&' if self.dialect == Dialect::Postgres
                    && self.peek(1) == b'"'
                    && self.follows_word_u() =>
                {
                    self.pos += 1;
                    return match self.quoted(b'"')? {
                        Tok::Quoted(q) => Some(Tok::UQuoted(q)),
                        other => Some(other),
                    };
                }
                b':' if self.dialect == Dialect::Sqlite && class(self.peek(1)) & START != 0 => {
                    self.pos += 1;
                    let _ = self.word();
                    return Some(Tok::Param);
                }
                _ => {
                    self.pos += 1;
                    return Some(Tok::Punct(b));
                }
            }
        }
    }

    /// Whether the bytes before `pos` are a word `U` (or `u`) on its own: `U&"…"`'s prefix.
    fn follows_word_u(&self) -> bool {
        let before = |k: usize| self.pos.checked_sub(k).and_then(|i| self.src.get(i)).copied();
        matches!(before(1), Some(b'u' | b'U')) && before(2).is_none_or(|b| class(b) & CONT == 0)
    }

    #[inline(always)]
    fn word(&mut self) -> &'a [u8] {
        let start = self.pos;
        let rest = self.src.get(start + 1..).unwrap_or_default();
        let len = rest.iter().position(|&b| class(b) & CONT == 0).unwrap_or(rest.len());
        self.pos = start + 1 + len;
        self.src.get(start..self.pos).unwrap_or_default()
    }

    /// A quoted identifier opened at `pos`, closed by `close`, doubled to escape (not `]`).
    #[inline]
    fn quoted(&mut self, close: u8) -> Option<Tok<'a>> {
        let start = self.pos + 1;
        let mut i = start;
        loop {
            let rest = self.src.get(i..)?;
            match find_byte(rest, close) {
                None => {
                    self.unterminated = true;
                    self.pos = self.src.len();
                    return None;
                }
                Some(off) => {
                    let end = i + off;
                    if close != b']' && self.src.get(end + 1) == Some(&close) {
                        i = end + 2;
                        continue;
                    }
                    self.pos = end + 1;
                    return Some(Tok::Quoted(self.src.get(start..end).unwrap_or_default()));
                }
            }
        }
    }

    /// A string literal whose opening quote is at `pos`.
    #[inline(never)]
    fn string(&mut self, quote: u8, esc: Escapes) -> Option<Tok<'a>> {
        let start = self.pos + 1;
        let mut i = start;
        loop {
            let Some(&b) = self.src.get(i) else {
                self.unterminated = true;
                self.pos = self.src.len();
                return None;
            };
            if b == b'\\' && matches!(esc, Escapes::Backslash | Escapes::MySql) {
                if esc == Escapes::MySql && self.src.get(i + 1) == Some(&quote) {
                    // Under NO_BACKSLASH_ESCAPES this quote would end the string.
                    self.ambiguous = true;
                }
                i += 2;
                continue;
            }
            if b == quote {
                if esc == Escapes::Standard {
                    // With standard_conforming_strings off, an odd run of backslashes before
                    // this quote would escape it, whether it closes the string or starts a
                    // doubled quote: the string would end elsewhere.
                    let run = self.src.get(start..i).unwrap_or_default();
                    let n = run.iter().rev().take_while(|&&c| c == b'\\').count();
                    if n % 2 == 1 {
                        self.ambiguous = true;
                    }
                }
                if self.src.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                self.pos = i + 1;
                return Some(Tok::Str);
            }
            i += 1;
        }
    }

    /// A line comment whose content starts at `pos`. It ends at `\n` in every dialect and also
    /// at `\r` in PostgreSQL only (its lexer's `newline` is `[\n\r]`; MySQL, MariaDB and
    /// SQLite end line comments at `\n` alone). In MySQL a NUL byte may end the server's scan
    /// of the comment early: such text is opaque.
    #[inline(never)]
    fn line_comment(&mut self) {
        let start = self.pos;
        let rest = self.src.get(start..).unwrap_or_default();
        let off = match self.dialect {
            Dialect::Postgres => rest.iter().position(|&b| b == b'\n' || b == b'\r'),
            Dialect::MySql => rest.iter().position(|&b| b == b'\n' || b == 0),
            Dialect::Sqlite => find_byte(rest, b'\n'),
        };
        let end = match off {
            Some(off) => start + off,
            None => self.src.len(),
        };
        if self.src.get(end) == Some(&0) {
            self.stop_opaque();
            return;
        }
        self.pos = end;
        self.hint_comment(start, end);
    }

    /// Gives up on text the lexer cannot read the way every server would: the scan ends here
    /// and the statement is a write.
    #[cold]
    fn stop_opaque(&mut self) {
        self.opaque = true;
        self.pos = self.src.len();
    }

    /// A block comment opened at `pos`. Returns false if it is unterminated.
    #[inline(never)]
    fn block_comment(&mut self) -> bool {
        let open = self.pos;
        let body = open + 2;
        if self.dialect == Dialect::MySql {
            let third = self.peek(2);
            // MariaDB's marker is an upper-case `M` only: `/*m! … */` is a comment to both.
            let mariadb = third == b'M' && self.peek(3) == b'!';
            if third == b'!' || mariadb {
                return self.exec_comment(body + 1 + usize::from(mariadb), mariadb);
            }
        }
        let nested = self.dialect == Dialect::Postgres;
        let mut depth = 1u32;
        let mut i = body;
        loop {
            let Some(&b) = self.src.get(i) else {
                self.unterminated = true;
                self.pos = self.src.len();
                return false;
            };
            if b == b'*' && self.src.get(i + 1) == Some(&b'/') {
                depth -= 1;
                if depth == 0 {
                    self.pos = i + 2;
                    self.hint_comment(body, i);
                    return true;
                }
                i += 2;
            } else if nested && b == b'/' && self.src.get(i + 1) == Some(&b'*') {
                depth += 1;
                i += 2;
            } else {
                i += 1;
            }
        }
    }

    /// A MySQL/MariaDB executable comment whose text after `/*!` (or `/*M!`) starts at `code`.
    ///
    /// The servers (MySQL's and MariaDB's `sql_lex.cc`; checked on MariaDB 10.11): `/*!` then
    /// five digits is a version (MariaDB reads a sixth digit too; MySQL only five, the sixth
    /// being code), and the content runs as code if the server is at least that version (on
    /// MariaDB, not for MySQL versions 5.7.0–9.99.99 without `M`); otherwise the comment is
    /// skipped, up to its first `*/` (one nested `/* */` allowed). `/*M!` is MariaDB's: code to
    /// MariaDB with the same version rule, a comment to MySQL. `/*!` without a version (fewer
    /// than five digits are code) runs on both. An unterminated one is a syntax error.
    ///
    /// Here the content is lexed as code, unless this scan skips it (see [`Lexer::skipping`]):
    /// the classifier reads every version-dependent comment both ways. Text read differently
    /// by the two readings — a `/*` before the first `*/` (a nested comment, or the start of
    /// one), a string or comment lexed as code that runs past the first `*/`, a sixth digit of
    /// `/*!` followed by a word or number byte (MySQL and MariaDB tokenise it differently) —
    /// is opaque; one without `*/` is unterminated.
    #[inline(never)]
    fn exec_comment(&mut self, mut code: usize, mariadb: bool) -> bool {
        let rest = self.src.get(code..).unwrap_or_default();
        let digits = rest.iter().take(6).take_while(|b| b.is_ascii_digit()).count();
        if digits >= 5 {
            code += 5;
            if digits == 6 {
                // MySQL takes the sixth digit as code: glued to a word, its token differs.
                if !mariadb && class(self.src.get(code + 1).copied().unwrap_or(b' ')) & CONT != 0 {
                    self.stop_opaque();
                    return false;
                }
                code += 1;
            }
        }
        let rest = self.src.get(code..).unwrap_or_default();
        let Some(len) = find(rest, b"*/") else {
            self.unterminated = true;
            self.pos = self.src.len();
            return false;
        };
        // `/*` up to the first `*/`, overlapping it included (`/*!/*/`).
        if find(rest.get(..=len).unwrap_or_default(), b"/*").is_some() {
            self.stop_opaque();
            return false;
        }
        let end = code + len;
        if mariadb || digits >= 5 {
            let nth = self.versioned;
            self.versioned = nth.saturating_add(1);
            if nth < u32::BITS && (self.skip >> nth) & 1 == 1 {
                // This reading skips it, as a server of another product or version would.
                self.pos = end + 2;
                return true;
            }
        }
        self.pos = code;
        self.in_exec_comment = true;
        self.exec_end = end;
        true
    }

    /// `$`: a PostgreSQL positional parameter or dollar-quoted string; elsewhere a parameter
    /// (SQLite) or the start of an identifier (MySQL). `None` means: go on lexing.
    #[inline(never)]
    fn dollar(&mut self) -> Option<Option<Tok<'a>>> {
        match self.dialect {
            Dialect::MySql => return Some(Some(Tok::Word(self.word()))),
            Dialect::Sqlite => {
                self.pos += 1;
                let _ = self.word_tail();
                return Some(Some(Tok::Param));
            }
            Dialect::Postgres => {}
        }
        let next = self.peek(1);
        if next.is_ascii_digit() {
            self.pos += 1;
            while self.src.get(self.pos).is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1;
            }
            return Some(Some(Tok::Param));
        }
        // A tag: letters, digits, underscores, not starting with a digit, then `$`.
        let tag_start = self.pos + 1;
        let mut i = tag_start;
        while let Some(&b) = self.src.get(i) {
            if b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80 {
                i += 1;
            } else {
                break;
            }
        }
        if self.src.get(i) != Some(&b'$') {
            self.pos += 1;
            return Some(Some(Tok::Punct(b'$')));
        }
        let delim = self.src.get(self.pos..=i).unwrap_or_default();
        let body = i + 1;
        let rest = self.src.get(body..).unwrap_or_default();
        match find(rest, delim) {
            Some(off) => {
                self.pos = body + off + delim.len();
                Some(Some(Tok::Str))
            }
            None => {
                self.unterminated = true;
                self.pos = self.src.len();
                Some(None)
            }
        }
    }

    fn word_tail(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.src.get(self.pos).is_some_and(|&b| class(b) & CONT != 0) {
            self.pos += 1;
        }
        self.src.get(start..self.pos).unwrap_or_default()
    }

    /// `@`: MySQL user (`@x`) or system (`@@x`) variable; SQLite parameter; otherwise an operator.
    #[inline(never)]
    fn at(&mut self) -> Tok<'a> {
        self.pos += 1;
        match self.dialect {
            Dialect::MySql => {
                if self.peek(0) == b'@' {
                    self.pos += 1;
                    return Tok::SysVar(self.word_tail());
                }
                match self.peek(0) {
                    q @ (b'\'' | b'"' | b'`') => {
                        let _ =
                            if q == b'`' { self.quoted(q) } else { self.string(q, Escapes::MySql) };
                    }
                    _ => {
                        let _ = self.word_tail();
                    }
                }
                Tok::UserVar
            }
            Dialect::Sqlite => {
                let _ = self.word_tail();
                Tok::Param
            }
            Dialect::Postgres => Tok::Punct(b'@'),
        }
    }

    /// Looks for `rwsplit:` directives in a comment's content `src[start..end]`.
    #[inline(never)]
    fn hint_comment(&mut self, start: usize, end: usize) {
        let Some(text) = self.src.get(start..end) else { return };
        let lead = text.iter().take_while(|&&b| class(b) & WS != 0).count();
        let Some(body) = text.get(lead..) else { return };
        const PREFIX: &[u8] = b"rwsplit:";
        if body.len() < PREFIX.len() || !body[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
            return;
        }
        let mut i = start + lead + PREFIX.len();
        while i < end {
            // Skip separators.
            while i < end && self.src.get(i).is_some_and(|&b| b == b',' || class(b) & WS != 0) {
                i += 1;
            }
            let item_start = i;
            while i < end && self.src.get(i).is_some_and(|&b| b != b',' && class(b) & WS == 0) {
                i += 1;
            }
            let item = self.src.get(item_start..i).unwrap_or_default();
            if item.eq_ignore_ascii_case(b"primary") {
                self.hint = Some(Hint::Primary);
            } else if item.eq_ignore_ascii_case(b"replica") {
                if self.hint.is_none() {
                    self.hint = Some(Hint::Replica);
                }
            } else if item.len() > 4
                && item[..4].eq_ignore_ascii_case(b"tag=")
                && self.tag.is_none()
            {
                let value = item.get(4..).unwrap_or_default();
                if value
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
                {
                    self.tag = Some((item_start + 4, i));
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escapes {
    /// SQL standard: only `''`; a backslash before the closing quote is ambiguous (PostgreSQL
    /// with `standard_conforming_strings = off` would treat it as an escape).
    Standard,
    /// Backslash escapes, unambiguously (`E''`).
    Backslash,
    /// MySQL default: backslash escapes, ambiguous under `NO_BACKSLASH_ESCAPES`.
    MySql,
    /// No escapes at all (SQLite).
    None,
}

/// First occurrence of byte `needle` in `hay`, eight bytes at a time (SWAR: a byte of
/// `x ^ needle×8` is zero exactly where `needle` is, and `(v - 0x01…) & !v & 0x80…` has its
/// lowest set bit in the first zero byte of `v`).
#[inline(always)]
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let rep = u64::from(needle) * LO;
    let mut base = 0usize;
    let mut rest = hay;
    while let Some((chunk, tail)) = rest.split_first_chunk::<8>() {
        let v = u64::from_le_bytes(*chunk) ^ rep;
        let hit = v.wrapping_sub(LO) & !v & HI;
        if hit != 0 {
            return Some(base + (hit.trailing_zeros() / 8) as usize);
        }
        base += 8;
        rest = tail;
    }
    rest.iter().position(|&b| b == needle).map(|p| base + p)
}

/// First occurrence of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0usize;
    while let Some(off) = hay.get(from..)?.iter().position(|&b| b == first) {
        let at = from + off;
        if hay.get(at + 1..at + 1 + rest.len()) == Some(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(sql: &str, d: Dialect) -> Vec<Tok<'_>> {
        let mut lx = Lexer::new(sql, d);
        let mut v = Vec::new();
        while let Some(t) = lx.next_token() {
            v.push(t);
        }
        v
    }

    #[test]
    fn find_byte_matches_position() {
        let hay = b"abc\"def\"ghijklmnopq\"rstuvwxyz";
        for start in 0..hay.len() {
            let h = &hay[start..];
            for n in [b'"', b'z', b'a', b'!'] {
                assert_eq!(find_byte(h, n), h.iter().position(|&b| b == n), "{start} {n}");
            }
        }
    }

    #[test]
    fn words_strings_and_quotes() {
        let t = toks(r#"SELECT "a""b", 'x''y' FROM t"#, Dialect::Postgres);
        assert_eq!(
            t,
            vec![
                Tok::Word(b"SELECT"),
                Tok::Quoted(br#"a""b"#),
                Tok::Punct(b','),
                Tok::Str,
                Tok::Word(b"FROM"),
                Tok::Word(b"t"),
            ]
        );
    }

    #[test]
    fn dollar_quotes_and_params() {
        let t = toks("SELECT $1, $$a;b$$, $q$ $$ $q$, a$b", Dialect::Postgres);
        assert_eq!(
            t,
            vec![
                Tok::Word(b"SELECT"),
                Tok::Param,
                Tok::Punct(b','),
                Tok::Str,
                Tok::Punct(b','),
                Tok::Str,
                Tok::Punct(b','),
                Tok::Word(b"a$b"),
            ]
        );
    }

    #[test]
    fn nested_comments_only_in_postgres() {
        let sql = "/* a /* b */ c */ x";
        assert_eq!(toks(sql, Dialect::Postgres), vec![Tok::Word(b"x")]);
        assert_eq!(
            toks(sql, Dialect::MySql),
            vec![Tok::Word(b"c"), Tok::Punct(b'*'), Tok::Punct(b'/'), Tok::Word(b"x")]
        );
    }

    #[test]
    fn mysql_comment_rules() {
        assert_eq!(toks("a -- b\nc", Dialect::MySql), vec![Tok::Word(b"a"), Tok::Word(b"c")]);
        assert_eq!(
            toks("a --b", Dialect::MySql),
            vec![Tok::Word(b"a"), Tok::Punct(b'-'), Tok::Punct(b'-'), Tok::Word(b"b")]
        );
        assert_eq!(toks("a # b\nc", Dialect::MySql), vec![Tok::Word(b"a"), Tok::Word(b"c")]);
        assert_eq!(
            toks("/*! SET x */ y", Dialect::MySql),
            vec![Tok::Word(b"SET"), Tok::Word(b"x"), Tok::Word(b"y")]
        );
    }

    #[test]
    fn versioned_comments_lex_as_code_or_skipped() {
        let sql = "SELECT /*!50000 a */ /*M! b */ /*! c */ d";
        let read = |skip| {
            let mut lx = Lexer::skipping(sql, Dialect::MySql, skip);
            let mut v = Vec::new();
            while let Some(t) = lx.next_token() {
                v.push(t);
            }
            (v, lx.versioned)
        };
        let w = |s: &'static [u8]| Tok::Word(s);
        // `/*! c */` has no version: code to every server, never skipped.
        assert_eq!(read(0), (vec![w(b"SELECT"), w(b"a"), w(b"b"), w(b"c"), w(b"d")], 2));
        assert_eq!(read(0b01), (vec![w(b"SELECT"), w(b"b"), w(b"c"), w(b"d")], 2));
        assert_eq!(read(0b10), (vec![w(b"SELECT"), w(b"a"), w(b"c"), w(b"d")], 2));
        assert_eq!(read(0b11), (vec![w(b"SELECT"), w(b"c"), w(b"d")], 2));
    }

    #[test]
    fn unterminated_and_ambiguous() {
        let mut lx = Lexer::new("SELECT 'abc", Dialect::Postgres);
        while lx.next_token().is_some() {}
        assert!(lx.unterminated);
        let mut lx = Lexer::new(r"SELECT 'a\'", Dialect::Postgres);
        while lx.next_token().is_some() {}
        assert!(lx.ambiguous && !lx.unterminated);
        let mut lx = Lexer::new(r"SELECT E'a\'b'", Dialect::Postgres);
        while lx.next_token().is_some() {}
        assert!(!lx.ambiguous && !lx.unterminated);
    }

    #[test]
    fn hints_and_tags() {
        let mut lx = Lexer::new("/* rwsplit:replica, tag=analytics */ SELECT 1", Dialect::Postgres);
        while lx.next_token().is_some() {}
        assert_eq!(lx.hint, Some(Hint::Replica));
        assert_eq!(lx.tag, Some((24, 33)));
    }
}
