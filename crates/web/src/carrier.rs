//! [`SessionCarrier`]: a client's token in, the request's [`Session`] around the handler, the
//! session's token out — the part of every web integration that knows no framework.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use rwsplit_sea_orm::{RoutedConnection, Session, SessionToken};

use crate::{Error, Result, TokenEnvelope};

/// What a carrier does with a token it cannot honour: a bad signature, malformed, unsigned
/// where signatures are required, or of another database. (A genuine token that can no longer
/// be honoured — expired, or signed with a key rotated out — always starts a fresh session,
/// with a warning.)
///
/// Neither choice reads stale data silently: the client learns of it (`400`), or the server's
/// log does (a warning) and the request reads as any fresh client's would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnBadToken {
    /// Answer `400 Bad Request` with the reason as plain text, without running the handler,
    /// and clear the cookie so a browser's next request starts afresh. The default.
    #[default]
    Reject,
    /// Run the request in a fresh session, log a `tracing` warning (target `rwsplit_web`)
    /// naming the problem, and clear the cookie unless the request wrote.
    FreshSession,
}

/// Carries a client's read-your-writes [`Session`] across its HTTP requests, in any framework:
/// configured once, cloned into each worker (cloning is cheap), asked twice per request.
///
/// 1. [`SessionCarrier::incoming`] with the request's token header and `Cookie` headers: the
///    token is taken from the header (default `x-rwsplit-token`) or else the cookie (default
///    `rwsplit_token`), opened by the [`TokenEnvelope`] (signature, age), validated by
///    [`RoutedConnection::session_from`] and checked to be of the connection's database. The
///    answer is a [`RequestSession`] to run the handler in, or a [`Rejection`] to send as is.
/// 2. The handler runs inside [`RequestSession::scope`]: every call it makes on the
///    `RoutedConnection` reads and records through the session (handlers keep taking `&db`).
/// 3. [`RequestSession::outgoing`] after the handler: the headers to add to the response. If
///    the session's token differs from the one received (the handler wrote, or read on
///    another node), the new token — sealed, issued now — goes back in a `Set-Cookie` (`Path`,
///    `Max-Age` = the envelope's maximum age, `HttpOnly`, `SameSite=Lax`, `Secure` unless
///    turned off) and in the header, and the response is marked `Cache-Control: private` if it
///    has no `Cache-Control` of its own (a shared cache must not hand one client's cookie to
///    another). A client that sent no token and wrote nothing gets nothing: public pages stay
///    cacheable for anonymous readers, and their sessions start with their first write (see
///    `docs/CONSISTENCY.md`, *Monotonic reads*).
///
/// `rwsplit-axum`'s `SessionLayer` and this crate's actix-web and poem middleware are these
/// three steps in each framework's conventions; any other framework (Rocket's fairings, salvo's
/// hoops, a hand-written hyper service) takes the same dozen lines:
///
/// ```
/// use std::time::Duration;
///
/// use rwsplit_sea_orm::RoutedConnection;
/// use rwsplit_web::{Incoming, SessionCarrier, SigningKey, TokenEnvelope};
/// use sea_orm::{DbBackend, MockDatabase};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mock = || MockDatabase::new(DbBackend::Postgres).into_connection();
/// let db = RoutedConnection::from_connections(mock(), vec![mock()])?;
/// let envelope = TokenEnvelope::signed(SigningKey::new([7u8; 32])?).max_age(Duration::from_secs(600));
/// let carrier = SessionCarrier::builder(db, envelope).build()?;
///
/// // Per request: the token header's value (if any) and every `Cookie` header's value.
/// let (token_header, cookies): (Option<&str>, Vec<&str>) = (None, vec!["theme=dark"]);
/// match carrier.incoming(token_header, cookies) {
///     Incoming::Run(request) => {
///         let body = request.scope(async { "the handler's response" }).await;
///         for (name, value) in request.outgoing().await.headers() {
///             // response.headers_mut().append(name, value) in your framework
///             let _ = (name, value);
///         }
///         assert_eq!(body, "the handler's response");
///     }
///     Incoming::Reject(rejection) => {
///         // Answer rejection.status() with rejection.body() and rejection.headers().
///         unreachable!("{}", rejection.body());
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionCarrier {
    config: Arc<Config>,
}

/// Configures a [`SessionCarrier`]; made by [`SessionCarrier::builder`].
#[derive(Debug)]
#[must_use]
pub struct SessionCarrierBuilder {
    config: Config,
}

struct Config {
    db: RoutedConnection,
    envelope: TokenEnvelope,
    on_bad_token: OnBadToken,
    cookie: String,
    header: String,
    path: String,
    secure: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The envelope prints its keys as `SigningKey(..)`.
        f.debug_struct("Config")
            .field("envelope", &self.envelope)
            .field("on_bad_token", &self.on_bad_token)
            .field("cookie", &self.cookie)
            .field("header", &self.header)
            .field("path", &self.path)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SessionCarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionCarrier").field(&self.config).finish()
    }
}

impl SessionCarrier {
    /// The default cookie name.
    pub const DEFAULT_COOKIE: &'static str = "rwsplit_token";
    /// The default header name.
    pub const DEFAULT_HEADER: &'static str = "x-rwsplit-token";

    /// A builder for a carrier over `db` that carries tokens as `envelope` says (signed with a
    /// key: [`TokenEnvelope::signed`]; unsigned only by choice: [`TokenEnvelope::unsigned`]).
    pub fn builder(db: RoutedConnection, envelope: TokenEnvelope) -> SessionCarrierBuilder {
        SessionCarrierBuilder {
            config: Config {
                db,
                envelope,
                on_bad_token: OnBadToken::default(),
                cookie: Self::DEFAULT_COOKIE.to_owned(),
                header: Self::DEFAULT_HEADER.to_owned(),
                path: "/".to_owned(),
                secure: true,
            },
        }
    }

    /// The name of the header the token travels in (lowercase), to look it up in a request.
    pub fn header_name(&self) -> &str {
        &self.config.header
    }

    /// The cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.config.cookie
    }

    /// The connection sessions are made on.
    pub fn connection(&self) -> &RoutedConnection {
        &self.config.db
    }

    /// Step 1 for one request: `token_header` is the value of the [token
    /// header](Self::header_name) if the request has one, `cookies` the values of its `Cookie`
    /// headers (HTTP/2 may send several). A request with neither runs in a fresh session.
    pub fn incoming<'a>(
        &self,
        token_header: Option<&'a str>,
        cookies: impl IntoIterator<Item = &'a str>,
    ) -> Incoming {
        let config = &self.config;
        let Some(text) = config.token_in(token_header, cookies) else {
            return Incoming::Run(self.run_in(config.db.session(), None, false, false));
        };
        match config.resume(text) {
            Ok((session, token, issued)) => {
                // A token in another form than this carrier writes (unsigned while migrating to
                // signed ones, or the earlier signed form), or past half its maximum age, is
                // sent back anew even if unchanged: a client that only reads keeps a token that
                // never expires.
                let current = text.starts_with("v2.") == config.envelope.is_signed();
                let young = issued.is_none_or(|at| {
                    at.elapsed().map_or(true, |age| age < config.envelope.max_age_value() / 2)
                });
                let received = (current && young).then_some(token);
                Incoming::Run(self.run_in(session, received, true, false))
            }
            // Genuine once, not honoured now (expired; signed with a key rotated out): the
            // client starts over, whatever `on_bad_token` says.
            Err(err) if err.starts_fresh() => {
                tracing::warn!(
                    target: "rwsplit_web",
                    error = %err.chain(),
                    "the client's read-your-writes token can no longer be honoured: this request runs in a fresh session and may not see the client's earlier writes"
                );
                Incoming::Run(self.run_in(config.db.session(), None, true, true))
            }
            Err(err) => match config.on_bad_token {
                OnBadToken::Reject => {
                    tracing::debug!(target: "rwsplit_web", error = %err.chain(), "refused a read-your-writes token");
                    Incoming::Reject(Rejection {
                        body: format!("{}\n", err.chain()),
                        clear_cookie: config.cookie("", 0),
                        error: err,
                    })
                }
                OnBadToken::FreshSession => {
                    tracing::warn!(
                        target: "rwsplit_web",
                        error = %err.chain(),
                        "ignoring the client's read-your-writes token: this request runs in a fresh session and may not see the client's earlier writes"
                    );
                    Incoming::Run(self.run_in(config.db.session(), None, true, true))
                }
            },
        }
    }

    fn run_in(
        &self,
        session: Session,
        received: Option<SessionToken>,
        sent: bool,
        bad: bool,
    ) -> RequestSession {
        RequestSession { config: Arc::clone(&self.config), session, received, sent, bad }
    }
}

impl SessionCarrierBuilder {
    /// What to do with a token that cannot be honoured (default [`OnBadToken::Reject`]).
    pub fn on_bad_token(mut self, on_bad_token: OnBadToken) -> Self {
        self.config.on_bad_token = on_bad_token;
        self
    }

    /// The cookie's name (default `rwsplit_token`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.config.cookie = name.into();
        self
    }

    /// The header's name (default `x-rwsplit-token`; matched without regard to case).
    pub fn header_name(mut self, name: impl Into<String>) -> Self {
        self.config.header = name.into().to_ascii_lowercase();
        self
    }

    /// The cookie's `Path` (default `/`).
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.config.path = path.into();
        self
    }

    /// Whether the cookie is `Secure` (sent over HTTPS only; browsers also allow it on
    /// `http://localhost`). Default `true`.
    pub fn secure_cookie(mut self, secure: bool) -> Self {
        self.config.secure = secure;
        self
    }

    /// The carrier; [`Error::InvalidName`] if the cookie's name, its path or the header's name
    /// cannot travel in an HTTP header.
    pub fn build(self) -> Result<SessionCarrier> {
        let c = &self.config;
        let token = |s: &str| !s.is_empty() && s.bytes().all(is_token_char);
        if !token(&c.cookie) {
            return Err(Error::InvalidName { what: "cookie name", name: c.cookie.clone() });
        }
        if !token(&c.header) {
            return Err(Error::InvalidName { what: "header name", name: c.header.clone() });
        }
        if c.path.is_empty() || !c.path.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b';') {
            return Err(Error::InvalidName { what: "cookie path", name: c.path.clone() });
        }
        Ok(SessionCarrier { config: Arc::new(self.config) })
    }
}

/// An HTTP token character (RFC 9110 `tchar`), which names of headers and cookies are made of.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What [`SessionCarrier::incoming`] makes of a request.
#[derive(Debug)]
pub enum Incoming {
    /// Run the handler in this session.
    Run(RequestSession),
    /// Answer this instead of running the handler (a token [`OnBadToken::Reject`] refuses).
    Reject(Rejection),
}

/// One request's session: run the handler in it ([`RequestSession::scope`]), then add
/// [`RequestSession::outgoing`]'s headers to the response.
pub struct RequestSession {
    config: Arc<Config>,
    session: Session,
    received: Option<SessionToken>,
    /// The client sent a token (honoured or not).
    sent: bool,
    /// The client sent a token that was not honoured: its cookie is cleared unless this
    /// request gives it a new one.
    bad: bool,
}

impl fmt::Debug for RequestSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSession")
            .field("session", &self.session)
            .field("received", &self.received.as_ref().map(ToString::to_string))
            .field("sent", &self.sent)
            .field("bad", &self.bad)
            .finish_non_exhaustive()
    }
}

impl RequestSession {
    /// The request's session, for a framework's request extensions (handlers that want it
    /// explicitly: to hand it to a spawned task, or to read its token).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Runs `fut` — the handler, or the rest of the framework's chain — in the request's
    /// session ([`Session::scope`]).
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        self.session.scope(fut).await
    }

    /// Step 3: the headers to add to the response — a `Set-Cookie` and the token header
    /// when the request moved the session's token on (and `Cache-Control: private`, only if
    /// the response has none: [`Outgoing::for_response`]), a `Set-Cookie` that clears the cookie
    /// when the client's token was not honoured, else none. A client that sent no token and
    /// wrote nothing gets none: what it read is what any new client reads, so its pages stay
    /// cacheable. It waits only for the position of a write the request made (see
    /// [`Session::token`]); if that cannot be read, the client keeps its previous token and a
    /// warning says so.
    pub async fn outgoing(self) -> Outgoing {
        let config = &self.config;
        let mut out = Outgoing::default();
        if !self.sent && !self.session.has_writes() {
            return out;
        }
        match self.session.token().await {
            Ok(Some(token)) if self.received.as_ref() != Some(&token) => {
                let sealed = config.envelope.seal(&token);
                let max_age = config.envelope.max_age_value().as_secs();
                out.headers.push(("set-cookie".to_owned(), config.cookie(&sealed, max_age)));
                out.headers.push((config.header.clone(), sealed));
                out.private = true;
            }
            Ok(_) if self.bad => {
                out.headers.push(("set-cookie".to_owned(), config.cookie("", 0)));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                target: "rwsplit_web",
                error = %e,
                "could not read the session's read-your-writes token after the request; the client keeps its previous token and its next read may not see this request's writes"
            ),
        }
        out
    }
}

/// The headers [`RequestSession::outgoing`] adds to a response, as `(name, value)` pairs of
/// header-safe text (names lowercase): [`Outgoing::for_response`] says which, given what the
/// response already has (`Set-Cookie` may appear beside the application's own: append, do not
/// replace).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outgoing {
    headers: Vec<(String, String)>,
    /// A cookie is set: the response is private unless it says otherwise.
    private: bool,
}

impl Outgoing {
    /// The headers to append whatever the response has, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// What an integration appends to a response whose headers `has` tells: every one of
    /// [`Outgoing::headers`], and `Cache-Control: private` when a cookie is set and the
    /// response has no `Cache-Control` (a shared cache must not store one client's cookie for
    /// others; an application that chose its own keeps it).
    pub fn for_response(&self, has: impl Fn(&str) -> bool) -> Vec<(&str, &str)> {
        let mut add: Vec<(&str, &str)> = self.headers().collect();
        if self.private && !has("cache-control") {
            add.push(("cache-control", "private"));
        }
        add
    }

    /// Whether there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && !self.private
    }
}

/// The answer to a request whose token [`OnBadToken::Reject`] refuses: `400 Bad Request`, the
/// reason as plain text, and a `Set-Cookie` that clears the cookie so a browser recovers on its
/// next request.
#[derive(Debug)]
pub struct Rejection {
    error: Error,
    body: String,
    clear_cookie: String,
}

impl Rejection {
    /// The status: `400`.
    pub fn status(&self) -> u16 {
        400
    }

    /// The body (`text/plain; charset=utf-8`): the reason, one line.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The headers to send with it, as `(name, value)` pairs: the `Set-Cookie` that clears
    /// the cookie.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once(("set-cookie", self.clear_cookie.as_str()))
    }

    /// Why the token was refused.
    pub fn error(&self) -> &Error {
        &self.error
    }
}

impl Config {
    /// The token text the client sent: the header, else the cookie; `None` if neither or
    /// empty.
    fn token_in<'a>(
        &self,
        token_header: Option<&'a str>,
        cookies: impl IntoIterator<Item = &'a str>,
    ) -> Option<&'a str> {
        let from_cookie = || {
            cookies
                .into_iter()
                .flat_map(|v| v.split(';'))
                .filter_map(|c| c.trim().split_once('='))
                .find(|(k, _)| *k == self.cookie)
                .map(|(_, v)| v.trim_matches('"'))
        };
        token_header.or_else(from_cookie).map(str::trim).filter(|t| !t.is_empty())
    }

    /// The session the client's token resumes, the token, and when it was issued (signed
    /// tokens).
    fn resume(&self, text: &str) -> Result<(Session, SessionToken, Option<SystemTime>)> {
        let (inner, issued) = self.envelope.opened_at(text, SystemTime::now())?;
        let session = self.db.session_from(&inner).map_err(Error::Token)?;
        let token: SessionToken = inner
            .trim()
            .parse()
            .map_err(|_| Error::Malformed { reason: "not a read-your-writes token" })?;
        // The connection knows its product's token kind (none without replicas).
        let found = token.kind();
        if self.db.token_kind() != Some(found) {
            return Err(Error::WrongBackend { found, expected: self.db.product_name() });
        }
        Ok((session, token, issued))
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
            self.cookie, self.path
        )
    }
}
