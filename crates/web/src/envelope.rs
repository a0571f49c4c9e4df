//! [`TokenEnvelope`]: how a causal token travels as text — signed, with its age.
//!
//! A signed token is five `.`-separated fields, all URL-, cookie- and header-safe:
//!
//! ```text
//! v2.<key id>.<issued at, Unix seconds>.<token text, base64url>.<HMAC-SHA256 tag, base64url>
//! ```
//!
//! The key id names the key that signed it (a tag of a fixed string under the key, so it
//! tells nothing of the key): a token signed with a key no longer configured is told from a
//! forged one, and starts a fresh session instead of being refused. The earlier form without
//! it, `v1.<issued>.<token>.<tag>`, is still accepted. The tag covers a fixed context string
//! (`rwsplit-axum token\n`, so the key signs nothing else by accident) and the fields before
//! it exactly as sent. Verification recomputes it under
//! each configured key and compares in constant time, then checks the age. The token text inside
//! is the library's own (`pg:1:…`, `mariadb:1:…`): base64 because a MariaDB or MySQL token may
//! hold commas, which a cookie value may not. An unsigned token is that text as is.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rwsplit_sea_orm::advanced::CausalToken;

use crate::{Error, Result, SigningKey};

/// The version prefix of a signed token without a key id (still accepted).
const V1: &str = "v1";
/// The version prefix of a signed token that names its key.
const V2: &str = "v2";
/// Prepended to the signed fields: a tag made here is never valid for another use of the key.
/// (It names the crate these tokens were first signed by; changing it would turn away every
/// token already in clients' cookies.)
const CONTEXT: &[u8] = b"rwsplit-axum token\n";
/// How far in the future an envelope may say it was issued: clocks of application servers
/// behind one load balancer differ.
const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// The longest text looked at: the library's own limit on token text, in base64, plus the
/// envelope's other fields.
const MAX_LEN: usize = CausalToken::MAX_LEN / 3 * 4 + 128;

/// How causal tokens are written for and read from clients: signed with a [`SigningKey`] (with
/// earlier keys still accepted during a rotation) and a maximum age, or — only if asked for
/// explicitly — unsigned.
///
/// Used by [`SessionCarrier`](crate::SessionCarrier) and every middleware built on it; usable
/// alone for other carriers (a job
/// payload, a WebSocket message).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use rwsplit_web::{SigningKey, TokenEnvelope};
/// use rwsplit_sea_orm::advanced::CausalToken;
///
/// let envelope = TokenEnvelope::signed(SigningKey::new([7u8; 32])?)
///     .max_age(Duration::from_secs(600));
/// let token: CausalToken = "pg:1:7:1:0-3000148".parse()?;
/// let now = SystemTime::now();
/// let text = envelope.seal_at(&token, now);
/// assert!(text.starts_with("v2."));
/// assert_eq!(envelope.open_at(&text, now)?, token.to_string());
/// // Eleven minutes later it has expired.
/// let later = now + Duration::from_secs(660);
/// assert!(envelope.open_at(&text, later).unwrap_err().is_expired());
/// // The bare token is refused: this envelope wants signatures.
/// assert!(envelope.open_at("pg:1:7:1:0-3000148", now).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct TokenEnvelope {
    /// The first key signs; all verify. Empty: unsigned.
    keys: Vec<SigningKey>,
    accept_unsigned: bool,
    max_age: Duration,
}

impl TokenEnvelope {
    /// The default [maximum age](Self::max_age): one hour. A token only matters while a replica
    /// may not have replayed its write; an hour is far beyond any lag a healthy replica is
    /// routed to with.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);

    /// Tokens signed with `key`; only signed tokens are accepted.
    #[must_use]
    pub fn signed(key: SigningKey) -> Self {
        Self { keys: vec![key], accept_unsigned: false, max_age: Self::DEFAULT_MAX_AGE }
    }

    /// Unsigned tokens, in and out: the library's token text as is. A client can then send
    /// any position it likes — at worst sending its own reads to the primary, or dropping its
    /// own read-your-writes guarantee. Choose this only if the token never leaves a trusted
    /// network (service to service) or nothing rests on it.
    #[must_use]
    pub fn unsigned() -> Self {
        Self { keys: Vec::new(), accept_unsigned: true, max_age: Self::DEFAULT_MAX_AGE }
    }

    /// Also accept tokens signed with `key`, an earlier key, while clients still hold tokens it
    /// signed. New tokens are signed with the key given to [`signed`](Self::signed). Rotate by
    /// deploying the new key with the old one here, then removing it after the maximum age.
    #[must_use]
    pub fn previous_key(mut self, key: SigningKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Also accept unsigned tokens (say, cookies set before signing was turned on); tokens
    /// sent back are still signed, so clients move to signed tokens as they write. Off by
    /// default; no effect on an [`unsigned`](Self::unsigned) envelope, which accepts only
    /// unsigned tokens.
    #[must_use]
    pub fn accept_unsigned(mut self, accept: bool) -> Self {
        self.accept_unsigned = accept || self.keys.is_empty();
        self
    }

    /// The oldest a signed token may be (from the time it was issued); older ones are
    /// [`Error::Expired`]. Default [`DEFAULT_MAX_AGE`](Self::DEFAULT_MAX_AGE). The layer also
    /// gives its cookie this `Max-Age`, so browsers drop it in time.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The configured maximum age.
    #[must_use]
    pub fn max_age_value(&self) -> Duration {
        self.max_age
    }

    /// Whether tokens are signed.
    #[must_use]
    pub fn is_signed(&self) -> bool {
        !self.keys.is_empty()
    }

    /// `token` as text for a client, issued now.
    #[must_use]
    pub fn seal(&self, token: &impl fmt::Display) -> String {
        self.seal_at(token, SystemTime::now())
    }

    /// `token` as text for a client, issued at `now` (for tests and callers with a clock of
    /// their own).
    #[must_use]
    pub fn seal_at(&self, token: &impl fmt::Display, now: SystemTime) -> String {
        let text = token.to_string();
        let Some(key) = self.keys.first() else { return text };
        let issued = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let signed = format!("{V2}.{}.{issued}.{}", key.id(), URL_SAFE_NO_PAD.encode(text));
        let tag = key.tag(&message(&signed));
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The token text inside `text` from a client, checked now: signature, age, and whether an
    /// unsigned token is acceptable. The token text itself is validated by
    /// [`RoutedConnection::session_from`](rwsplit_sea_orm::RoutedConnection::session_from).
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`], [`Error::BadSignature`], [`Error::RetiredKey`],
    /// [`Error::Expired`], [`Error::IssuedInFuture`] or [`Error::Unsigned`].
    pub fn open(&self, text: &str) -> Result<String> {
        self.open_at(text, SystemTime::now())
    }

    /// [`open`](Self::open) at time `now`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_at(&self, text: &str, now: SystemTime) -> Result<String> {
        self.opened_at(text, now).map(|(text, _)| text)
    }

    /// [`open_at`](Self::open_at), with when a signed token was issued.
    pub(crate) fn opened_at(
        &self,
        text: &str,
        now: SystemTime,
    ) -> Result<(String, Option<SystemTime>)> {
        let text = text.trim();
        if text.len() > MAX_LEN {
            return Err(Error::Malformed { reason: "too long" });
        }
        let version = if text.starts_with("v2.") {
            V2
        } else if text.starts_with("v1.") {
            V1
        } else {
            // Not an envelope. The library's tokens start `<kind>:`; anything else (including
            // an envelope of a later version, `v3.…`) is not a token at all.
            if !text.contains(':') {
                return Err(Error::Malformed { reason: "not a token" });
            }
            return if self.accept_unsigned {
                Ok((text.to_owned(), None))
            } else {
                Err(Error::Unsigned)
            };
        };
        if self.keys.is_empty() {
            return Err(Error::Malformed { reason: "a signed token where unsigned ones are used" });
        }
        const SHAPE: Error =
            Error::Malformed { reason: "expected v2.<key id>.<issued>.<token>.<tag>" };
        let (signed, tag) = text.rsplit_once('.').ok_or(SHAPE)?;
        let rest = signed.strip_prefix(version).and_then(|r| r.strip_prefix('.')).ok_or(SHAPE)?;
        // v2 names its key: a key no longer configured is told from a forgery.
        let (keys, rest): (Vec<&SigningKey>, &str) = if version == V2 {
            let (id, rest) = rest.split_once('.').ok_or(SHAPE)?;
            let keys: Vec<&SigningKey> = self.keys.iter().filter(|k| k.id() == id).collect();
            if keys.is_empty() {
                return Err(Error::RetiredKey);
            }
            (keys, rest)
        } else {
            (self.keys.iter().collect(), rest)
        };
        let (issued, payload) = rest.split_once('.').ok_or(SHAPE)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| Error::Malformed { reason: "the tag is not base64url" })?;
        // Authenticate before interpreting anything else.
        let message = message(signed);
        if !keys.iter().any(|k| k.verifies(&message, &tag)) {
            return Err(Error::BadSignature);
        }
        let issued: u64 = issued
            .parse()
            .map_err(|_| Error::Malformed { reason: "the issue time is not a number" })?;
        let issued = UNIX_EPOCH + Duration::from_secs(issued);
        match now.duration_since(issued) {
            Ok(age) if age > self.max_age => {
                return Err(Error::Expired { age, max_age: self.max_age });
            }
            Ok(_) => {}
            Err(e) if e.duration() > CLOCK_SKEW => {
                return Err(Error::IssuedInFuture { ahead: e.duration() });
            }
            Err(_) => {}
        }
        let token = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Error::Malformed { reason: "the token is not base64url" })?;
        let token = String::from_utf8(token)
            .map_err(|_| Error::Malformed { reason: "the token is not UTF-8" })?;
        Ok((token, Some(issued)))
    }
}

/// What the tag covers.
fn message(signed: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + signed.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(signed.as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::new([byte; 32]).unwrap()
    }

    fn token() -> CausalToken {
        "pg:1:7300000000000000001:1:0-3000148".parse().unwrap()
    }

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn a_sealed_token_opens_to_the_same_token() {
        let e = TokenEnvelope::signed(key(1));
        let text = e.seal_at(&token(), t(0));
        assert!(text.starts_with(&format!("v2.{}.1800000000.", key(1).id())), "{text}");
        assert_eq!(text.split('.').count(), 5);
        assert_eq!(e.open_at(&text, t(5)).unwrap(), token().to_string());
    }

    #[test]
    fn a_mariadb_token_with_commas_is_cookie_safe() {
        let e = TokenEnvelope::signed(key(1));
        let tok: CausalToken = "mariadb:1:0-1-208.1-2-9".parse().unwrap();
        let text = e.seal_at(&tok, t(0));
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "{text}");
        assert_eq!(e.open_at(&text, t(0)).unwrap(), tok.to_string());
    }

    #[test]
    fn every_tampered_byte_is_refused() {
        let e = TokenEnvelope::signed(key(1));
        let text = e.seal_at(&token(), t(0));
        for i in 0..text.len() {
            for replacement in [b'A', b'0', b'_'] {
                let mut bytes = text.clone().into_bytes();
                if bytes[i] == replacement {
                    continue;
                }
                bytes[i] = replacement;
                let tampered = String::from_utf8(bytes).unwrap();
                let result = e.open_at(&tampered, t(0));
                // A change in the last base64 character's unused bits decodes to the same tag;
                // anything else must fail.
                if let Ok(inner) = result {
                    assert_eq!(inner, token().to_string(), "{tampered}");
                    assert_eq!(i, text.len() - 1, "only the tag's padding bits: {tampered}");
                }
            }
        }
    }

    #[test]
    fn a_changed_position_or_issue_time_is_a_bad_signature() {
        let e = TokenEnvelope::signed(key(1));
        let text = e.seal_at(&token(), t(0));
        let parts: Vec<&str> = text.split('.').collect();
        let id = parts[1];
        let forged_token = URL_SAFE_NO_PAD.encode("pg:1:7300000000000000001:1:FF-0");
        let forged = format!("v2.{id}.{}.{forged_token}.{}", parts[2], parts[4]);
        assert!(matches!(e.open_at(&forged, t(0)), Err(Error::BadSignature)));
        let younger = format!("v2.{id}.{}.{}.{}", 1_800_000_100, parts[3], parts[4]);
        assert!(matches!(e.open_at(&younger, t(0)), Err(Error::BadSignature)));
        let untagged = format!("v2.{id}.{}.{}.", parts[2], parts[3]);
        assert!(matches!(e.open_at(&untagged, t(0)), Err(Error::BadSignature)));
        // The same in the earlier form, which names no key.
        let v1 = format!("v1.{}.{forged_token}.{}", parts[2], parts[4]);
        assert!(matches!(e.open_at(&v1, t(0)), Err(Error::BadSignature)));
    }

    #[test]
    fn a_key_no_longer_configured_is_told_from_a_forgery() {
        let text = TokenEnvelope::signed(key(2)).seal_at(&token(), t(0));
        let e = TokenEnvelope::signed(key(1));
        let err = e.open_at(&text, t(0)).unwrap_err();
        assert!(matches!(err, Error::RetiredKey) && err.starts_fresh(), "{err}");
        // Claiming the configured key's id with another key's tag is a forgery.
        let claimed = text.replacen(key(2).id(), key(1).id(), 1);
        assert!(matches!(e.open_at(&claimed, t(0)), Err(Error::BadSignature)));
    }

    /// The earlier form, without a key id, is still accepted.
    #[test]
    fn a_v1_token_still_opens() {
        let k = key(1);
        let signed = format!("v1.1800000000.{}", URL_SAFE_NO_PAD.encode(token().to_string()));
        let tag = URL_SAFE_NO_PAD.encode(k.tag(&message(&signed)));
        let text = format!("{signed}.{tag}");
        let (inner, issued) = TokenEnvelope::signed(k).opened_at(&text, t(5)).unwrap();
        assert_eq!((inner, issued), (token().to_string(), Some(t(0))));
    }

    #[test]
    fn expiry_follows_the_issue_time() {
        let e = TokenEnvelope::signed(key(1)).max_age(Duration::from_secs(600));
        let text = e.seal_at(&token(), t(0));
        assert!(e.open_at(&text, t(600)).is_ok(), "exactly the maximum age is still valid");
        let err = e.open_at(&text, t(601)).unwrap_err();
        assert!(err.is_expired(), "{err}");
        assert_eq!(
            err.to_string(),
            "read-your-writes token expired: issued 601s ago, the maximum age is 600s"
        );
        // Issued a little in the future (another server's clock): fine; far: refused.
        assert!(e.open_at(&text, t(0) - Duration::from_secs(30)).is_ok());
        let err = e.open_at(&text, t(0) - Duration::from_secs(120)).unwrap_err();
        assert!(matches!(err, Error::IssuedInFuture { .. }), "{err}");
    }

    #[test]
    fn unsigned_tokens_only_when_the_app_opts_in() {
        let raw = token().to_string();
        let strict = TokenEnvelope::signed(key(1));
        assert!(matches!(strict.open_at(&raw, t(0)), Err(Error::Unsigned)));
        let migrating = TokenEnvelope::signed(key(1)).accept_unsigned(true);
        assert_eq!(migrating.open_at(&raw, t(0)).unwrap(), raw);
        assert!(migrating.seal_at(&token(), t(0)).starts_with("v2."), "still signs");
        let unsigned = TokenEnvelope::unsigned();
        assert!(!unsigned.is_signed());
        assert_eq!(unsigned.seal_at(&token(), t(0)), raw);
        assert_eq!(unsigned.open_at(&raw, t(0)).unwrap(), raw);
        // accept_unsigned(false) cannot make an unsigned envelope refuse everything.
        assert_eq!(
            TokenEnvelope::unsigned().accept_unsigned(false).open_at(&raw, t(0)).unwrap(),
            raw
        );
    }

    #[test]
    fn a_previous_key_still_verifies_and_the_new_one_signs() {
        let old = TokenEnvelope::signed(key(1));
        let old_text = old.seal_at(&token(), t(0));
        let rotated = TokenEnvelope::signed(key(2)).previous_key(key(1));
        assert_eq!(rotated.open_at(&old_text, t(0)).unwrap(), token().to_string());
        let new_text = rotated.seal_at(&token(), t(0));
        assert!(matches!(old.open_at(&new_text, t(0)), Err(Error::RetiredKey)));
        assert!(TokenEnvelope::signed(key(2)).open_at(&new_text, t(0)).is_ok());
        assert!(matches!(
            TokenEnvelope::signed(key(2)).open_at(&old_text, t(0)),
            Err(Error::RetiredKey)
        ));
    }

    #[test]
    fn malformed_text_is_an_error_not_a_panic() {
        let e = TokenEnvelope::signed(key(1));
        for text in [
            "v1.",
            "v1..",
            "v1...",
            "v1.x.y.z",
            "v1.1.%%%.abc",
            "v1.1",
            "v2.",
            "v2..",
            "v1.1.é.é",
            "v1.18446744073709551616.YQ.YQ",
        ] {
            let err = e.open_at(text, t(0)).unwrap_err();
            assert!(
                matches!(err, Error::Malformed { .. } | Error::BadSignature | Error::RetiredKey),
                "{text}: {err}"
            );
        }
        let long = format!("v1.1.{}.x", "A".repeat(MAX_LEN));
        assert!(matches!(e.open_at(&long, t(0)), Err(Error::Malformed { reason: "too long" })));
        let signed_for_unsigned =
            TokenEnvelope::unsigned().open_at(&e.seal_at(&token(), t(0)), t(0));
        assert!(matches!(signed_for_unsigned, Err(Error::Malformed { .. })));
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let secret = "a secret that must never be printed";
        let e = TokenEnvelope::signed(SigningKey::new(secret).unwrap());
        let debug = format!("{e:?}");
        assert!(!debug.contains(secret) && debug.contains("SigningKey(..)"), "{debug}");
    }
}
