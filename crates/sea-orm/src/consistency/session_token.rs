//! [`SessionToken`]: what a [`Session`](crate::Session) carries to another task, request or
//! process — the position its writes need, and the replica its last read was on.

use std::fmt;
use std::str::FromStr;

use rwsplit_core::{CausalToken, TokenKind};

/// A session's read-your-writes token, exported by [`Session::token`](crate::Session::token)
/// and resumed by [`RoutedConnection::session_from`](crate::RoutedConnection::session_from).
///
/// It has up to two parts:
/// - a **position** ([`CausalToken`]): the primary's position at or past every write the
///   session made (and every token it was given). A read of a resumed session goes only to a
///   node that has replayed it;
/// - a **last read node**: the node the session last read from, by name (`host:port/db`),
///   standing for "at most what that node holds by now". Exporting it costs nothing (no wait,
///   no query): a replica's replay and a primary's writes only move forward, so a resumed
///   session reads that replica again (or the primary, at or past every replica), or any
///   replica the monitor has since seen at or past that node's position; a primary named there
///   is read again, or its position read when the session next needs one. Read-only sessions keep the
///   same token request after request while they read the same replica, so a web layer sends
///   it to the client only when it changes.
///
/// Text form: the position's text (`pg:1:<system>:<timeline>:<lsn>`,
/// `mariadb:1:<gtids>`), then `@` and the node's name if there is one; a session that only read
/// has `<kind>:@<name>`. Names are percent-encoded outside `A–Z a–z 0–9 . _ - : / [ ]`.
///
/// ```
/// use rwsplit_sea_orm::SessionToken;
///
/// let t: SessionToken = "pg:1:7:1:0-3000148@10.0.0.2:5432/app".parse()?;
/// assert_eq!(t.position().map(ToString::to_string).as_deref(), Some("pg:1:7:1:0-3000148"));
/// assert_eq!(t.read_on(), Some("10.0.0.2:5432/app"));
/// let read_only: SessionToken = "pg:@10.0.0.2:5432/app".parse()?;
/// assert_eq!(read_only.position(), None);
/// assert_eq!(read_only.to_string(), "pg:@10.0.0.2:5432/app");
/// # Ok::<(), rwsplit_sea_orm::SessionTokenError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionToken {
    kind: TokenKind,
    position: Option<CausalToken>,
    read_on: Option<Box<str>>,
}

/// Why text is not a [`SessionToken`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionTokenError {
    /// The position part is not a causal token (malformed, too long, unknown kind …).
    #[error("{0}")]
    Position(#[from] rwsplit_core::Error),
    /// The last read node's name after `@` is not one.
    #[error("the node name after `@` is {reason}")]
    NodeName {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Neither a position nor a node.
    #[error("the token has neither a position nor a node")]
    Empty,
}

impl SessionToken {
    /// The longest node name a token carries, in bytes once encoded.
    pub const MAX_NAME_LEN: usize = 512;

    /// A token with `position` only (the form [`CausalToken`] text has).
    #[must_use]
    pub fn from_position(position: CausalToken) -> SessionToken {
        SessionToken { kind: position.kind(), position: Some(position), read_on: None }
    }

    /// `self` with `node` as its last read node.
    pub(crate) fn with_read_on(kind: TokenKind, position: Option<CausalToken>, node: &str) -> Self {
        SessionToken { kind, position, read_on: Some(node.into()) }
    }

    /// Which database's history it is on.
    #[must_use]
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The position the session's reads need, if it wrote (or was given a token).
    #[must_use]
    pub fn position(&self) -> Option<&CausalToken> {
        self.position.as_ref()
    }

    /// The name (`host:port/db`) of the node the session last read from, whose current state
    /// bounds what it read; `None` if that bound is in the position already.
    #[must_use]
    pub fn read_on(&self) -> Option<&str> {
        self.read_on.as_deref()
    }

    /// Parses `text`, refusing a token of another kind than `expected` (see
    /// [`CausalToken::parse_for`]).
    ///
    /// # Errors
    ///
    /// [`SessionTokenError`] naming what is wrong.
    pub fn parse_for(text: &str, expected: TokenKind) -> Result<Self, SessionTokenError> {
        if text.len() > CausalToken::MAX_LEN {
            return Err(rwsplit_core::Error::TokenTooLong {
                len: text.len(),
                max: CausalToken::MAX_LEN,
            }
            .into());
        }
        let (head, name) = match text.split_once('@') {
            Some((head, name)) => (head, Some(decode(name)?)),
            None => (text, None),
        };
        let (kind, position) = match head.strip_suffix(':') {
            // `<kind>:@<name>`: a session that only read.
            Some(kind) if !kind.contains(':') => {
                if name.is_none() {
                    return Err(SessionTokenError::Empty);
                }
                let found: TokenKind = kind.parse()?;
                if found != expected {
                    return Err(rwsplit_core::Error::TokenKindMismatch { expected, found }.into());
                }
                (expected, None)
            }
            _ => {
                let position = CausalToken::parse_for(head, expected)?;
                (position.kind(), Some(position))
            }
        };
        Ok(SessionToken { kind, position, read_on: name.map(String::into_boxed_str) })
    }
}

impl From<CausalToken> for SessionToken {
    fn from(position: CausalToken) -> Self {
        SessionToken::from_position(position)
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.position {
            Some(p) => write!(f, "{p}")?,
            None => write!(f, "{}:", self.kind)?,
        }
        if let Some(name) = &self.read_on {
            f.write_str("@")?;
            for b in name.bytes() {
                if plain(b) {
                    write!(f, "{}", char::from(b))?;
                } else {
                    write!(f, "%{b:02X}")?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for SessionToken {
    type Err = SessionTokenError;

    /// Parses the text form, of either kind.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let kind: TokenKind = s.split(':').next().unwrap_or("").parse()?;
        SessionToken::parse_for(s, kind)
    }
}

/// Bytes a name keeps as they are in the text form.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/' | b'[' | b']')
}

/// A percent-encoded node name.
fn decode(text: &str) -> Result<String, SessionTokenError> {
    const BAD: fn(&'static str) -> SessionTokenError =
        |reason| SessionTokenError::NodeName { reason };
    if text.is_empty() {
        return Err(BAD("empty"));
    }
    if text.len() > SessionToken::MAX_NAME_LEN {
        return Err(BAD("too long"));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(BAD("cut short after `%`"))?;
                let hex = std::str::from_utf8(hex).map_err(|_| BAD("not percent-encoded"))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| BAD("not percent-encoded"))?);
                i += 3;
            }
            b if plain(b) => {
                out.push(b);
                i += 1;
            }
            _ => return Err(BAD("not percent-encoded")),
        }
    }
    String::from_utf8(out).map_err(|_| BAD("not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::position_only("pg:1:7:1:0-3000148")]
    #[case::position_and_node("pg:1:7:1:0-3000148@127.0.0.1:5433/app")]
    #[case::node_only("pg:@127.0.0.1:5433/app")]
    #[case::mariadb("mariadb:1:0-1-208@db-2:3306/shop")]
    #[case::mariadb_node_only("mariadb:@db-2:3306/shop")]
    #[case::ipv6("pg:@[::1]:5433/app")]
    #[case::encoded("pg:@db%20one:5432/app%40x")]
    fn the_text_form_round_trips(#[case] text: &str) {
        let t: SessionToken = text.parse().unwrap();
        assert_eq!(t.to_string(), text);
    }

    #[test]
    fn a_name_is_encoded_where_it_needs_to_be() {
        let t = SessionToken::with_read_on("pg".parse().unwrap(), None, "a b@c;d");
        assert_eq!(t.to_string(), "pg:@a%20b%40c%3Bd");
        assert_eq!(t.to_string().parse::<SessionToken>().unwrap().read_on(), Some("a b@c;d"));
    }

    #[rstest::rstest]
    #[case::nothing("pg:", "neither")]
    #[case::empty_name("pg:@", "empty")]
    #[case::raw_space("pg:@a b", "percent")]
    #[case::cut_escape("pg:@a%2", "cut short")]
    #[case::bad_escape("pg:@a%zz", "percent")]
    #[case::bad_position("pg:1:x@a", "")]
    #[case::unknown_kind("xx:@a", "")]
    fn bad_text_is_refused_naming_why(#[case] text: &str, #[case] why: &str) {
        let err = text.parse::<SessionToken>().unwrap_err();
        assert!(err.to_string().contains(why), "{text}: {err}");
    }

    #[test]
    fn another_kind_is_refused() {
        let pg: TokenKind = "pg".parse().unwrap();
        let err = SessionToken::parse_for("mariadb:@db:3306/x", pg).unwrap_err();
        assert!(err.to_string().contains("mariadb"), "{err}");
        let err = SessionToken::parse_for("mariadb:1:0-1-2", pg).unwrap_err();
        assert!(err.to_string().contains("mariadb"), "{err}");
    }

    #[test]
    fn a_long_name_is_refused() {
        let text = format!("pg:@{}", "a".repeat(SessionToken::MAX_NAME_LEN + 1));
        assert!(text.parse::<SessionToken>().unwrap_err().to_string().contains("too long"));
    }
}
