//! The crate's error type.

use crate::node_id::NodeId;
use crate::product::TokenKind;
use crate::route::RouteError;

/// Errors of this crate: malformed causal tokens and positions, invalid topologies, and
/// routing failures (see [`RouteError`], which [`crate::Router::route`] returns directly
/// because it is small and `Copy` on the hot path).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text does not start with a known kind (`pg`, `mariadb`).
    #[error("causal token has an unknown kind `{kind}`")]
    UnknownTokenKind {
        /// The kind found (truncated).
        kind: String,
    },
    /// The token text is longer than [`crate::CausalToken::MAX_LEN`]; it was not parsed.
    #[error("causal token is {len} bytes long, more than the {max} accepted")]
    TokenTooLong {
        /// The text's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The token is of another database kind than the one expected
    /// ([`crate::CausalToken::parse_for`]).
    #[error("causal token of kind `{found}` where a `{expected}` token is expected")]
    TokenKindMismatch {
        /// The kind the caller expects (the database it is connected to).
        expected: TokenKind,
        /// The token's kind.
        found: TokenKind,
    },
    /// The token's format version is not one this crate reads.
    #[error("causal token version `{version}` is not supported for kind `{kind}`")]
    UnsupportedTokenVersion {
        /// The token's kind.
        kind: &'static str,
        /// The version found (truncated).
        version: String,
    },
    /// The token does not have the fields its kind needs.
    #[error("malformed `{kind}` causal token `{text}`: expected `{expected}`")]
    MalformedToken {
        /// The token's kind.
        kind: &'static str,
        /// The token (truncated).
        text: String,
        /// The expected shape.
        expected: &'static str,
    },
    /// A PostgreSQL LSN is not two hexadecimal numbers of at most 8 digits.
    #[error("invalid LSN `{text}`")]
    InvalidLsn {
        /// The text found (truncated).
        text: String,
    },
    /// A number field (system identifier, timeline, sequence …) does not parse.
    #[error("invalid {field} `{text}`")]
    InvalidNumber {
        /// Which field.
        field: &'static str,
        /// The text found (truncated).
        text: String,
    },
    /// A MariaDB GTID (`domain-server-sequence`) is malformed.
    #[error("invalid GTID `{text}`")]
    InvalidGtid {
        /// The text found (truncated).
        text: String,
    },
    /// Two nodes of a topology have the same index (the same id, or two generations of one).
    #[error("topology has two nodes with id {id}")]
    DuplicateNodeId {
        /// The repeated id.
        id: NodeId,
    },
    /// A node id is not below [`crate::MAX_NODES`].
    #[error("node id {id} is out of range: ids must be below {max}")]
    NodeIdOutOfRange {
        /// The offending id.
        id: NodeId,
        /// The bound.
        max: usize,
    },
    /// A routing decision failed.
    #[error(transparent)]
    Route(#[from] RouteError),
}

/// `pub type Result<T, E = Error>`: the crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// At most 64 characters of untrusted input, for error messages.
pub(crate) fn snippet(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_bounded_and_char_safe() {
        assert_eq!(snippet("abc"), "abc");
        let long = "é".repeat(100);
        let s = snippet(&long);
        assert_eq!(s.chars().count(), 65);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn messages_are_lowercase_without_period() {
        let errors = [
            Error::UnknownTokenKind { kind: "foo".into() },
            Error::UnsupportedTokenVersion { kind: "pg", version: "9".into() },
            Error::TokenTooLong { len: 20_000, max: 16_384 },
            Error::TokenKindMismatch { expected: TokenKind::Postgres, found: TokenKind::MariaDb },
            Error::MalformedToken { kind: "pg", text: "pg:1".into(), expected: "x" },
            Error::InvalidLsn { text: "xyz".into() },
            Error::InvalidNumber { field: "timeline", text: "x".into() },
            Error::InvalidGtid { text: "x".into() },
            Error::DuplicateNodeId { id: NodeId::new(1) },
            Error::NodeIdOutOfRange { id: NodeId::new(99), max: 32 },
            Error::Route(RouteError::NoPrimary),
        ];
        for e in errors {
            let m = e.to_string();
            assert!(!m.ends_with('.'), "{m}");
            assert!(m.chars().next().is_some_and(|c| !c.is_uppercase()), "{m}");
        }
        assert_eq!(
            Error::UnknownTokenKind { kind: "foo".into() }.to_string(),
            "causal token has an unknown kind `foo`"
        );
    }
}
