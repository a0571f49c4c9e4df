//! Which database a causal token or replay position comes from.

use std::fmt;

/// The database a causal token or position belongs to: the `<kind>` of its text form.
///
/// An adapter connected to one kind of database passes it to [`CausalToken::parse_for`](crate::CausalToken::parse_for), so that
/// a token of another kind (say `mariadb:` text sent to a PostgreSQL application) is refused
/// with an error instead of being accepted and never satisfied.
///
/// ```
/// use rwsplit_core::{CausalToken, TokenKind};
/// let t = CausalToken::parse_for("mariadb:1:0-1-208", TokenKind::MariaDb)?;
/// assert_eq!(t.kind(), TokenKind::MariaDb);
/// let err = CausalToken::parse_for("mariadb:1:0-1-208", TokenKind::Postgres).unwrap_err();
/// assert_eq!(err.to_string(), "causal token of kind `mariadb` where a `pg` token is expected");
/// # Ok::<(), rwsplit_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// PostgreSQL (`pg:`).
    Postgres,
    /// MariaDB (`mariadb:`).
    MariaDb,
}

impl TokenKind {
    /// The kind's name in the text form: `pg` or `mariadb`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "pg",
            Self::MariaDb => "mariadb",
        }
    }

    /// The kind named `name` in the text form, if any.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "pg" => Some(Self::Postgres),
            "mariadb" => Some(Self::MariaDb),
            _ => None,
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
