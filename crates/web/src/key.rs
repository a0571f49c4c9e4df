//! [`SigningKey`]: the HMAC-SHA256 key tokens are signed with.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{Error, Result};

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The secret key read-your-writes tokens are signed with (HMAC-SHA256).
///
/// Give every instance of the application the same key (from its secret store or
/// environment), at least [`MIN_LEN`](Self::MIN_LEN) random bytes. The key is kept only as
/// HMAC's keyed state; it never appears in `Debug` output or logs.
///
/// ```
/// use rwsplit_web::SigningKey;
///
/// let key = SigningKey::new(b"0123456789abcdef0123456789abcdef")?;
/// assert_eq!(format!("{key:?}"), "SigningKey(..)");
/// assert!(SigningKey::new(b"short").is_err());
/// # Ok::<(), rwsplit_web::Error>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    mac: HmacSha256,
    id: String,
}

impl SigningKey {
    /// The shortest key accepted, in bytes: HMAC-SHA256's output size (RFC 2104 §3).
    pub const MIN_LEN: usize = 32;

    /// A key from secret bytes.
    ///
    /// # Errors
    ///
    /// [`Error::KeyTooShort`] if `secret` has fewer than [`MIN_LEN`](Self::MIN_LEN) bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self> {
        let secret = secret.as_ref();
        if secret.len() < Self::MIN_LEN {
            return Err(Error::KeyTooShort { len: secret.len(), min: Self::MIN_LEN });
        }
        // HMAC takes keys of any length; the check above is ours.
        let mac = HmacSha256::new_from_slice(secret)
            .map_err(|_| Error::KeyTooShort { len: secret.len(), min: Self::MIN_LEN })?;
        let mut key = Self { mac, id: String::new() };
        let tag = key.tag(b"rwsplit-axum key id");
        key.id = URL_SAFE_NO_PAD.encode(&tag[..6]);
        Ok(key)
    }

    /// The key's public name in a token: the first 6 bytes of its tag of a fixed string,
    /// base64url (8 characters). It tells a key apart without telling anything of it.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The tag of `message` under this key.
    pub(crate) fn tag(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `message` under this key, compared in constant time
    /// (`Mac::verify_slice`).
    pub(crate) fn verifies(&self, message: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(message);
        mac.verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}
