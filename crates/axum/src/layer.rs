//! [`SessionLayer`] and [`SessionService`]: the client's token in, the session's token out —
//! `rwsplit-web`'s [`SessionCarrier`] as a tower layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::response::{IntoResponse, Response};
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, StatusCode};
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_web::{Incoming, OnBadToken, SessionCarrier, SessionCarrierBuilder};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Result, TokenEnvelope};

/// The tower [`Layer`] that gives each request a read-your-writes [`Session`](rwsplit_sea_orm::Session) resumed from the
/// client's token, and sends the client the session's token when the request moved it on.
///
/// Per request: the token is taken from the header (default `x-rwsplit-token`) or else the
/// cookie (default `rwsplit_token`); opened by the [`TokenEnvelope`] (signature, age);
/// validated by [`RoutedConnection::session_from`] and checked to be of the connection's
/// database. The handler then runs inside
/// [`Session::scope`](rwsplit_sea_orm::Session::scope), so every call it makes on the
/// `RoutedConnection` reads and records through the session; the session is also in the
/// request's extensions (`Extension<Session>`). Afterwards, if the session's token differs
/// from the one received (the handler wrote, or read on another node), the new token — sealed,
/// issued now — goes back in a `Set-Cookie` (`Path`, `Max-Age` = the envelope's maximum age,
/// `HttpOnly`, `SameSite=Lax`, `Secure` unless turned off) and in the header, and the response
/// is marked `Cache-Control: private` unless it has a `Cache-Control` of its own. A request
/// that sent no token and wrote nothing gets none of them: an anonymous reader's pages stay
/// cacheable.
///
/// See the [crate docs](crate) for an example.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    carrier: SessionCarrier,
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
///     .build()?;
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct SessionLayerBuilder {
    carrier: SessionCarrierBuilder,
}

/// The tower [`Service`] made by [`SessionLayer`] around an inner service (an axum `Router`
/// or handler).
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    carrier: SessionCarrier,
}

impl SessionLayer {
    /// The default cookie name.
    pub const DEFAULT_COOKIE: &'static str = SessionCarrier::DEFAULT_COOKIE;
    /// The default header name.
    pub const DEFAULT_HEADER: &'static str = SessionCarrier::DEFAULT_HEADER;

    /// A builder for a layer over `db` that carries tokens as `envelope` says (signed with a
    /// key: [`TokenEnvelope::signed`]; unsigned only by choice: [`TokenEnvelope::unsigned`]).
    pub fn builder(db: RoutedConnection, envelope: TokenEnvelope) -> SessionLayerBuilder {
        SessionLayerBuilder { carrier: SessionCarrier::builder(db, envelope) }
    }

    /// A layer over a [`SessionCarrier`] already built (the same one an app's other stacks
    /// use, say).
    pub fn from_carrier(carrier: SessionCarrier) -> SessionLayer {
        SessionLayer { carrier }
    }
}

impl SessionLayerBuilder {
    /// What to do with a token that cannot be honoured (default [`OnBadToken::Reject`]).
    pub fn on_bad_token(mut self, on_bad_token: OnBadToken) -> Self {
        self.carrier = self.carrier.on_bad_token(on_bad_token);
        self
    }

    /// The cookie's name (default `rwsplit_token`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.carrier = self.carrier.cookie_name(name);
        self
    }

    /// The header's name (default `x-rwsplit-token`).
    pub fn header_name(mut self, name: HeaderName) -> Self {
        self.carrier = self.carrier.header_name(name.as_str());
        self
    }

    /// The cookie's `Path` (default `/`).
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.carrier = self.carrier.cookie_path(path);
        self
    }

    /// Whether the cookie is `Secure` (sent over HTTPS only; browsers also allow it on
    /// `http://localhost`). Default `true`.
    pub fn secure_cookie(mut self, secure: bool) -> Self {
        self.carrier = self.carrier.secure_cookie(secure);
        self
    }

    /// The layer; [`Error::InvalidName`](crate::Error::InvalidName) if the cookie's name or
    /// path cannot travel in an HTTP header.
    pub fn build(self) -> Result<SessionLayer> {
        Ok(SessionLayer { carrier: self.carrier.build()? })
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService { inner, carrier: self.carrier.clone() }
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
        Box::pin(run(self.carrier.clone(), inner, req))
    }
}

/// One request: [`SessionCarrier`]'s three steps around the inner service.
async fn run<S, B>(
    carrier: SessionCarrier,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response, S::Error>
where
    S: Service<Request<B>, Response = Response>,
{
    let incoming = {
        let headers = req.headers();
        let token = headers.get(carrier.header_name()).and_then(|v| v.to_str().ok());
        let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok());
        carrier.incoming(token, cookies)
    };
    let request = match incoming {
        Incoming::Run(request) => request,
        Incoming::Reject(rejection) if is_grpc(&req) => return Ok(grpc_refusal(rejection.body())),
        Incoming::Reject(rejection) => {
            let mut response =
                (StatusCode::BAD_REQUEST, rejection.body().to_owned()).into_response();
            append(&mut response, rejection.headers());
            return Ok(response);
        }
    };
    req.extensions_mut().insert(request.session().clone());
    let mut response = request.scope(inner.call(req)).await?;
    let outgoing = request.outgoing().await;
    let add = outgoing.for_response(|n| response.headers().contains_key(n));
    append(&mut response, add.into_iter());
    Ok(response)
}

/// Appends the carrier's headers (header-safe by construction: the carrier checks its names).
fn append<'a>(response: &mut Response, headers: impl Iterator<Item = (&'a str, &'a str)>) {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
        {
            response.headers_mut().append(n, v);
        }
    }
}

/// Whether `req` is a gRPC call (tonic's routes served as an axum router, say).
fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc"))
}

/// A refused token, answered as gRPC answers: HTTP 200, no body, `grpc-status: 3`
/// (`INVALID_ARGUMENT`) and the reason in `grpc-message` (percent-encoded, as gRPC's protocol
/// says), so that a client sees the reason rather than a protocol error about a `400`.
fn grpc_refusal(reason: &str) -> Response {
    let mut message = String::with_capacity(reason.len());
    for b in reason.trim().bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            message.push(char::from(b));
        } else {
            message.push_str(&format!("%{b:02X}"));
        }
    }
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from_static("3"));
    if let Ok(v) = HeaderValue::from_str(&message) {
        headers.insert("grpc-message", v);
    }
    response
}
