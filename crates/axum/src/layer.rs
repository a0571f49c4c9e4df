//! [`SessionLayer`] and [`SessionService`]: the client's token in, the session's token out.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum_core::response::{IntoResponse, Response};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, StatusCode};
use rwsplit_sea_orm::{RoutedConnection, Session, SessionToken};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Error, Result, TokenEnvelope};

/// What the layer does with a token it cannot honour: a bad signature, expired, malformed,
/// unsigned where signatures are required, or of another database.
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
    /// Run the request in a fresh session, log a `tracing` warning (target `rwsplit_axum`)
    /// naming the problem, and clear the cookie unless the request wrote.
    FreshSession,
}

/// The tower [`Layer`] that gives each request a read-your-writes [`Session`] resumed from the
/// client's token, and sends the client the session's token when the request moved it on.
///
/// Per request: the token is taken from the header (default `x-rwsplit-token`) or else the
/// cookie (default `rwsplit_token`); opened by the [`TokenEnvelope`] (signature, age);
/// validated by [`RoutedConnection::session_from`] and checked to be of the connection's
/// database. The handler then runs inside [`Session::scope`], so every call it makes on the
/// `RoutedConnection` reads and records through the session; the session is also in the
/// request's extensions (`Extension<Session>`). Afterwards, if the session's token differs
/// from the one received (the handler wrote), the new token — sealed, issued now — goes back
/// in a `Set-Cookie` (`Path`, `Max-Age` = the envelope's maximum age, `HttpOnly`,
/// `SameSite=Lax`, `Secure` unless turned off) and in the header. A request that sent no
/// token and wrote nothing gets neither.
///
/// See the [crate docs](crate) for an example.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    config: Arc<Config>,
}

/// Configures a [`SessionLayer`]; made by [`SessionLayer::builder`].
///
/// ```
/// use std::time::Duration;
///
/// use axum::http::HeaderName;
/// use rwsplit_axum::{OnBadToken, SessionLayer, SigningKey, TokenEnvelope};
/// use rwsplit_sea_orm::RoutedConnection;
/// use sea_orm::{DbBackend, MockDatabase};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mock = || MockDatabase::new(DbBackend::Postgres).into_connection();
/// let db = RoutedConnection::from_connections(mock(), vec![mock()])?;
/// // Rotating keys: sign with the new one, still accept the old one for a maximum age.
/// let envelope = TokenEnvelope::signed(SigningKey::new([2u8; 32])?)
///     .previous_key(SigningKey::new([1u8; 32])?)
///     .max_age(Duration::from_secs(15 * 60));
/// let layer = SessionLayer::builder(db, envelope)
///     .on_bad_token(OnBadToken::FreshSession)
///     .cookie_name("ryw")
///     .header_name(HeaderName::from_static("x-ryw"))
///     .cookie_path("/api")
///     .secure_cookie(false) // plain-HTTP development only
///     .build();
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct SessionLayerBuilder {
    config: Config,
}

/// The tower [`Service`] made by [`SessionLayer`] around an inner service (an axum `Router`
/// or handler).
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    config: Arc<Config>,
}

struct Config {
    db: RoutedConnection,
    envelope: TokenEnvelope,
    on_bad_token: OnBadToken,
    cookie: String,
    header: HeaderName,
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

impl SessionLayer {
    /// The default cookie name.
    pub const DEFAULT_COOKIE: &'static str = "rwsplit_token";
    /// The default header name.
    pub const DEFAULT_HEADER: &'static str = "x-rwsplit-token";

    /// A builder for a layer over `db` that carries tokens as `envelope` says (signed with a
    /// key: [`TokenEnvelope::signed`]; unsigned only by choice: [`TokenEnvelope::unsigned`]).
    pub fn builder(db: RoutedConnection, envelope: TokenEnvelope) -> SessionLayerBuilder {
        SessionLayerBuilder {
            config: Config {
                db,
                envelope,
                on_bad_token: OnBadToken::default(),
                cookie: Self::DEFAULT_COOKIE.to_owned(),
                header: HeaderName::from_static(Self::DEFAULT_HEADER),
                path: "/".to_owned(),
                secure: true,
            },
        }
    }
}

impl SessionLayerBuilder {
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

    /// The header's name (default `x-rwsplit-token`).
    pub fn header_name(mut self, name: HeaderName) -> Self {
        self.config.header = name;
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

    /// The layer.
    #[must_use]
    pub fn build(self) -> SessionLayer {
        SessionLayer { config: Arc::new(self.config) }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService { inner, config: Arc::clone(&self.config) }
    }
}

impl<S, B> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh clone waits its turn.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(run(Arc::clone(&self.config), inner, req))
    }
}

/// One request.
async fn run<S, B>(
    config: Arc<Config>,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response, S::Error>
where
    S: Service<Request<B>, Response = Response>,
{
    let (session, received, bad) = match config.incoming(req.headers()) {
        None => (config.db.session(), None, false),
        Some(text) => match config.resume(&text) {
            Ok((session, token, issued)) => {
                // A token in another form than this layer writes (unsigned while migrating to
                // signed ones, or the earlier signed form), or past half its maximum age, is
                // sent back anew even if unchanged: a client that only reads keeps a token that
                // never expires.
                let current = text.starts_with("v2.") == config.envelope.is_signed();
                let young = issued.is_none_or(|at| {
                    at.elapsed().map_or(true, |age| age < config.envelope.max_age_value() / 2)
                });
                (session, (current && young).then_some(token), false)
            }
            // Genuine once, not honoured now (expired; signed with a key rotated out): the
            // client starts over, whatever `on_bad_token` says.
            Err(err) if err.starts_fresh() => {
                tracing::warn!(
                    target: "rwsplit_axum",
                    error = %err.chain(),
                    "the client's read-your-writes token can no longer be honoured: this request runs in a fresh session and may not see the client's earlier writes"
                );
                (config.db.session(), None, true)
            }
            Err(err) => match config.on_bad_token {
                OnBadToken::Reject => {
                    tracing::debug!(target: "rwsplit_axum", error = %err.chain(), "refused a read-your-writes token");
                    return Ok(config.reject(&err));
                }
                OnBadToken::FreshSession => {
                    tracing::warn!(
                        target: "rwsplit_axum",
                        error = %err.chain(),
                        "ignoring the client's read-your-writes token: this request runs in a fresh session and may not see the client's earlier writes"
                    );
                    (config.db.session(), None, true)
                }
            },
        },
    };
    req.extensions_mut().insert(session.clone());
    let mut response = session.scope(inner.call(req)).await?;
    match session.token().await {
        Ok(Some(token)) if received.as_ref() != Some(&token) => config.send(&mut response, &token),
        Ok(_) if bad => config.clear(&mut response),
        Ok(_) => {}
        Err(e) => tracing::warn!(
            target: "rwsplit_axum",
            error = %e,
            "could not read the session's read-your-writes token after the request; the client keeps its previous token and its next read may not see this request's writes"
        ),
    }
    Ok(response)
}

impl Config {
    /// The token text the client sent: the header, else the cookie; `None` if neither or
    /// empty.
    fn incoming(&self, headers: &HeaderMap) -> Option<String> {
        let from_header = headers.get(&self.header).and_then(|v| v.to_str().ok());
        let from_cookie = || {
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|c| c.trim().split_once('='))
                .find(|(k, _)| *k == self.cookie)
                .map(|(_, v)| v.trim_matches('"'))
        };
        from_header.or_else(from_cookie).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned)
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

    /// Puts `token` in the response's cookie and header.
    fn send(&self, response: &mut Response, token: &SessionToken) {
        let sealed = self.envelope.seal(token);
        let cookie = self.cookie(&sealed, self.envelope.max_age_value().as_secs());
        match (HeaderValue::from_str(&cookie), HeaderValue::from_str(&sealed)) {
            (Ok(c), Ok(h)) => {
                response.headers_mut().append(header::SET_COOKIE, c);
                response.headers_mut().insert(self.header.clone(), h);
            }
            _ => tracing::warn!(
                target: "rwsplit_axum",
                cookie = %self.cookie,
                "the read-your-writes cookie is not a valid header value (check the cookie name and path); the client gets no token"
            ),
        }
    }

    /// Tells the client to drop its cookie.
    fn clear(&self, response: &mut Response) {
        if let Ok(c) = HeaderValue::from_str(&self.cookie("", 0)) {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
    }

    /// The `400` for a token that cannot be honoured.
    fn reject(&self, err: &Error) -> Response {
        let mut response = (StatusCode::BAD_REQUEST, format!("{}\n", err.chain())).into_response();
        self.clear(&mut response);
        response
    }
}
