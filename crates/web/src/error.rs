//! The crate's [`Error`].

use std::time::Duration;

use rwsplit_core::TokenKind;

/// Why a signing key, a carrier's configuration or a token from a client was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A signing key shorter than [`SigningKey::MIN_LEN`](crate::SigningKey::MIN_LEN).
    #[error("signing key is {len} bytes, at least {min} are needed")]
    KeyTooShort {
        /// The key's length in bytes.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// The text is not a token envelope (nor, where accepted, an unsigned token).
    #[error("read-your-writes token is malformed: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The envelope's signature does not verify under any configured key: forged, tampered
    /// with, or signed with a key no longer configured.
    #[error("read-your-writes token signature does not verify")]
    BadSignature,
    /// The envelope names a signing key this application no longer has (rotated out after
    /// its tokens' maximum age): genuine once, but not verifiable now. The layer starts a
    /// fresh session for it, with a warning, rather than refusing the request.
    #[error("read-your-writes token is signed with a key no longer configured (rotated out)")]
    RetiredKey,
    /// The envelope is older than the maximum age.
    #[error("read-your-writes token expired: issued {age:?} ago, the maximum age is {max_age:?}")]
    Expired {
        /// How long ago it was issued.
        age: Duration,
        /// The configured maximum age.
        max_age: Duration,
    },
    /// The envelope says it was issued further in the future than clocks may differ.
    #[error("read-your-writes token is issued {ahead:?} in the future")]
    IssuedInFuture {
        /// How far ahead of this server's clock.
        ahead: Duration,
    },
    /// An unsigned token where the application requires a signed one.
    #[error("read-your-writes token is unsigned and unsigned tokens are not accepted")]
    Unsigned,
    /// A well-formed token of another database than the connection's (say a MariaDB token
    /// sent to a PostgreSQL application, or any token to one without replicas).
    #[error("read-your-writes token is for `{found}`, the database is {expected}")]
    WrongBackend {
        /// The token's kind.
        found: TokenKind,
        /// The connection's database product
        /// ([`RoutedConnection::product_name`](rwsplit_sea_orm::RoutedConnection::product_name)).
        expected: &'static str,
    },
    /// A cookie name, cookie path or header name that cannot travel in an HTTP header
    /// ([`SessionCarrierBuilder::build`](crate::SessionCarrierBuilder::build)).
    #[error("the {what} `{name}` cannot be used in an HTTP header")]
    InvalidName {
        /// Which setting: `cookie name`, `cookie path` or `header name`.
        what: &'static str,
        /// The value given.
        name: String,
    },
    /// The library refused the token inside the envelope
    /// ([`RoutedConnection::session_from`](rwsplit_sea_orm::RoutedConnection::session_from)).
    #[error("read-your-writes token is invalid")]
    Token(#[source] rwsplit_sea_orm::Error),
}

impl Error {
    /// Whether the token was genuine but too old (the client may simply start over).
    #[must_use]
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired { .. })
    }

    /// Whether the token was genuine but can no longer be honoured (expired, or signed with a
    /// retired key): the client simply starts a fresh session.
    #[must_use]
    pub fn starts_fresh(&self) -> bool {
        matches!(self, Self::Expired { .. } | Self::RetiredKey)
    }

    /// The message and its causes on one line, for a response body or a log field.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
