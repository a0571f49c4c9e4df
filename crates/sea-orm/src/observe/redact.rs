//! [`NodeUrl`]: a node's database URL, parsed once, that owns its redaction. Every node name,
//! log line, error, stat and `Debug` output shows [`NodeUrl::name`] (`host:port/db`) or
//! [`NodeUrl::redacted`] (`scheme://***@host:port/db?…`), never the user's password.
//!
//! Parsing is the `url` crate's (the WHATWG parser sqlx itself uses), so what passes here is
//! what the driver will read. A password holding `@`, `:` or `,` may be written as is; `#`, `/`,
//! `?`, `%` and spaces must be percent-encoded (`%23`, `%2F`, `%3F`, `%25`, `%20`), as in any
//! URL — unencoded, the parser sees them as the start of a fragment, path or query, and the URL
//! is reported as invalid (redacted) instead of being half-read.

use std::fmt;

use sea_orm::{DbBackend, DbErr, RuntimeErr};

use crate::error::Error;

/// A parsed database URL. `Debug` and `Display` print the redacted form.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct NodeUrl {
    backend: DbBackend,
    /// `host:port/db` (the port only if written).
    name: String,
    /// `scheme://***@host:port/db?…`
    redacted: String,
    /// What identifies the server and database: lowercase host, port (or the scheme's
    /// default), database. Two nodes with the same key are the same node.
    key: (String, u16, String),
    /// The password as written and percent-decoded, to scrub from driver errors.
    secrets: Vec<String>,
}

impl NodeUrl {
    /// Parses `url` for `node` (`primary`, `replica 2`, …): only schemes this build can connect
    /// (`postgres`/`postgresql` with the `postgres` feature, `mysql` with `mysql`).
    pub(crate) fn parse(node: &str, url: &str) -> Result<NodeUrl, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            node: node.to_owned(),
            url: redact_unparsed(url),
            reason,
        };
        let parsed = url::Url::parse(url.trim()).map_err(|e| {
            let hint = if url.contains('@') {
                " (a password holding `#`, `/`, `?` or `%` must percent-encode it: `%23`, `%2F`, \
                 `%3F`, `%25`)"
            } else {
                ""
            };
            invalid(format!("{e}{hint}"))
        })?;
        let scheme = parsed.scheme().to_ascii_lowercase();
        let (backend, default_port) = match (crate::product::scheme(&scheme), scheme.as_str()) {
            (Some(known), _) => known,
            (None, "mariadb") => {
                return Err(invalid(
                    "SeaORM has no driver for `mariadb://`: use `mysql://` for MariaDB".to_owned(),
                ));
            }
            (None, other) => {
                return Err(invalid(format!(
                    "`{other}://` is not a scheme this build can connect: expected {}",
                    supported()
                )));
            }
        };
        let host = parsed.host_str().unwrap_or("").to_owned();
        let db = parsed.path().trim_start_matches('/').to_owned();
        let mut name = host.clone();
        if let Some(port) = parsed.port() {
            name = format!("{name}:{port}");
        }
        if !db.is_empty() {
            name = format!("{name}/{db}");
        }
        let creds = !parsed.username().is_empty() || parsed.password().is_some();
        let mut redacted = format!("{scheme}://{}{name}", if creds { "***@" } else { "" });
        if parsed.query().is_some() {
            redacted.push_str("?…");
        }
        let mut secrets = Vec::new();
        if let Some(pw) = parsed.password().filter(|p| !p.is_empty()) {
            secrets.push(pw.to_owned());
            if let Ok(decoded) = percent_decode(pw)
                && decoded != pw
            {
                secrets.push(decoded);
            }
        }
        for (k, v) in parsed.query_pairs() {
            if k.eq_ignore_ascii_case("password") && !v.is_empty() {
                secrets.push(v.into_owned());
            }
        }
        let key = (host.to_ascii_lowercase(), parsed.port().unwrap_or(default_port), db);
        Ok(NodeUrl { backend, name, redacted, key, secrets })
    }

    /// The database the URL's scheme names.
    pub(crate) fn backend(&self) -> DbBackend {
        self.backend
    }

    /// `host:port/db`: the node's name in stats, logs and errors.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `scheme://***@host:port/db?…`: the URL with credentials and parameters hidden.
    pub(crate) fn redacted(&self) -> &str {
        &self.redacted
    }

    /// Whether `other` names the same server and database (users and parameters aside).
    pub(crate) fn same_node(&self, other: &NodeUrl) -> bool {
        self.key == other.key
    }

    /// `text` with every form of this URL's password replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |t, s| t.replace(s.as_str(), "***"))
    }

    /// Whether `text` contains this URL's password in any form.
    fn leaks(&self, text: &str) -> bool {
        self.secrets.iter().any(|s| text.contains(s.as_str()))
    }

    /// SeaORM's connect error, as is when neither its text, its `Debug` nor its source chain
    /// holds the password; otherwise re-wrapped as a `DbErr::Conn` whose text is scrubbed.
    pub(crate) fn scrub_err(&self, err: DbErr) -> DbErr {
        let mut texts = vec![err.to_string(), format!("{err:?}")];
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            texts.push(s.to_string());
            texts.push(format!("{s:?}"));
            source = s.source();
        }
        if texts.iter().any(|t| self.leaks(t)) {
            DbErr::Conn(RuntimeErr::Internal(self.scrub(&err.to_string())))
        } else {
            err
        }
    }
}

impl fmt::Debug for NodeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for NodeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

fn supported() -> &'static str {
    match (cfg!(feature = "postgres"), cfg!(feature = "mysql")) {
        (true, true) => "`postgres://`, `postgresql://` or `mysql://`",
        (true, false) => "`postgres://` or `postgresql://`",
        (false, true) => "`mysql://`",
        (false, false) => "nothing (enable the `postgres` or `mysql` feature)",
    }
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied(), bytes.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// The redacted form of text that is not a URL we could parse: the scheme, then only what
/// follows the *last* `@` anywhere (userinfo may hold `#`, `/`, `?` that a parser would take
/// for the end of the authority), cut at its first `?` or `#`. Over-redacts rather than leak.
pub(crate) fn redact_unparsed(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else { return "<unparsable url>".to_owned() };
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return "<unparsable url>".to_owned();
    }
    let (creds, tail) = match rest.rsplit_once('@') {
        Some((_, tail)) => ("***@", tail),
        None => ("", rest),
    };
    let tail = tail.split(['?', '#']).next().unwrap_or("");
    format!("{scheme}://{creds}{tail}")
}

/// An address that should be `host:port` (a replication address, a node's name), for `Debug`
/// and errors: as it is unless it holds credentials or is a URL, which are redacted (a URL
/// pasted there by mistake may hold a password).
pub(crate) fn address_redacted(text: &str) -> String {
    if text.contains("://") {
        redact_unparsed(text)
    } else if let Some((_, host)) = text.rsplit_once('@') {
        format!("***@{host}")
    } else {
        text.to_owned()
    }
}

/// The redacted form of URL text: [`NodeUrl::redacted`] if it parses, else
/// [`redact_unparsed`].
pub(crate) fn node_name_redacted(url: &str) -> String {
    NodeUrl::parse("node", url).map_or_else(|_| redact_unparsed(url), |u| u.redacted().to_owned())
}

/// A node's name from URL text: [`NodeUrl::name`] if it parses, else the redacted text.
pub(crate) fn node_name(url: &str) -> String {
    NodeUrl::parse("node", url).map_or_else(|_| redact_unparsed(url), |u| u.name().to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Passwords with every character that confuses URL handling.
    /// (Pieces between special characters are distinctive, so a leak of any is found.)
    pub(crate) const NASTY: &[&str] = &[
        "Zqk@Xkw:Wvj,Jmq",
        "Hxq#Qzv",
        "Slq/Bqz",
        "Quz?Zyx",
        "Pcq%40Vtz",
        "Aqz@Bqx:Cqv#Dqw/Eqy?Fqj,Gqk%40Hqm",
    ];

    #[rstest::rstest]
    #[case("postgres://user:secret@db1:5432/app", "db1:5432/app")]
    #[case("postgres://user:p%40ss@word@db1:5432/app?sslmode=require", "db1:5432/app")]
    #[case("mysql://app@127.0.0.1:3306/shop", "127.0.0.1:3306/shop")]
    #[case("postgres://db1", "db1")]
    #[case("postgres://u:pw@db1/", "db1")]
    #[case("postgresql://u:pw@[::1]:5432/app#frag", "[::1]:5432/app")]
    #[case("postgres://app:Hash#x@host/db", "postgres://***@host/db")]
    #[case("postgres://app:sl/ash@host/db", "postgres://***@host/db")]
    #[case("postgres://app:qu?ery@host/db", "postgres://***@host/db")]
    #[case("not a url", "<unparsable url>")]
    #[case("", "<unparsable url>")]
    fn names_never_contain_credentials(#[case] url: &str, #[case] expected: &str) {
        let name = node_name(url);
        assert_eq!(name, expected);
        for secret in ["secret", "pw", "ss@", "Hash", "sl", "qu"] {
            assert!(!name.contains(secret), "{name}");
        }
    }

    #[rstest::rstest]
    fn nasty_passwords_never_show(
        #[values("postgres", "mysql")] scheme: &str,
        #[values(0, 1, 2, 3, 4, 5)] which: usize,
        #[values(false, true)] encoded: bool,
    ) {
        let raw = NASTY[which];
        let pw = if encoded { encode(raw) } else { raw.to_owned() };
        let url = format!("{scheme}://app:{pw}@db1:5432/app?sslmode=disable");
        let shown = match NodeUrl::parse("replica 1", &url) {
            Ok(u) => {
                assert_eq!(u.name(), "db1:5432/app", "{url}");
                format!("{u} {u:?} {} {}", u.name(), u.redacted())
            }
            Err(e) => {
                // Only raw `#`, `/`, `?` make a URL unparsable.
                assert!(!encoded && raw.contains(['#', '/', '?']), "{url}: {e}");
                format!("{e} {e:?}")
            }
        };
        assert_no_secret(&shown, raw);
    }

    pub(crate) fn encode(raw: &str) -> String {
        raw.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// `shown` contains no piece of `password` longer than two characters.
    pub(crate) fn assert_no_secret(shown: &str, password: &str) {
        for piece in password.split(['@', ':', ',', '#', '/', '?', '%']) {
            if piece.len() > 2 {
                assert!(!shown.contains(piece), "`{piece}` of the password shown: {shown}");
            }
        }
        assert!(!shown.contains(password), "{shown}");
    }

    #[rstest::rstest]
    #[case("mariadb://u:pw@h/db", "no driver for `mariadb://`")]
    #[case("postgres://u:pw@h:99999/db", "invalid port")]
    #[case("postgres://u:pw@h:port/db", "invalid port")]
    #[case("sqlite::memory:", "not a scheme this build can connect")]
    #[case("oracle://u:pw@h/db", "not a scheme this build can connect")]
    fn unusable_urls_say_why(#[case] url: &str, #[case] reason: &str) {
        let err = NodeUrl::parse("primary", url).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{text}");
        assert!(text.contains(reason) && text.contains("primary"), "{text}");
        assert!(!text.contains("pw"), "{text}");
    }

    #[rstest::rstest]
    #[case("postgres://a:x@db1/app", "postgresql://b@DB1:5432/app?sslmode=require", true)]
    #[case("postgres://db1:5433/app", "postgres://db1:5432/app", false)]
    #[case("postgres://db1/app", "postgres://db1/other", false)]
    #[case("mysql://db1/app", "mysql://db1:3306/app", true)]
    fn same_node_means_same_server_and_database(
        #[case] a: &str,
        #[case] b: &str,
        #[case] same: bool,
    ) {
        let a = NodeUrl::parse("a", a).unwrap();
        let b = NodeUrl::parse("b", b).unwrap();
        assert_eq!(a.same_node(&b), same);
    }

    #[test]
    fn driver_errors_holding_the_password_are_rewrapped() {
        let url = NodeUrl::parse("primary", "postgres://u:per%40cent@h/db").unwrap();
        let leaky = DbErr::Conn(RuntimeErr::Internal("bad url postgres://u:per@cent@h/db".into()));
        let clean = url.scrub_err(leaky);
        assert!(!format!("{clean} {clean:?}").contains("per@cent"), "{clean:?}");
        let fine = url.scrub_err(DbErr::RecordNotFound("x".into()));
        assert!(matches!(fine, DbErr::RecordNotFound(_)));
    }
}
