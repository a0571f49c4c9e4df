//! `rwsplit-axum`: read-your-writes across HTTP requests for axum (and any tower HTTP stack:
//! loco, tonic).
//!
//! This is `rwsplit-web`'s framework-neutral [`SessionCarrier`] as a tower layer; the
//! envelope, keys, errors and [`OnBadToken`] are `rwsplit-web`'s, re-exported here.
//!
//! A [`RoutedConnection`] keeps the position of each write in a
//! [`Session`]; this crate carries that position — the causal token — between a client's
//! requests. [`SessionLayer`] resumes a `Session` from the request's cookie (default
//! `rwsplit_token`) or header (default `x-rwsplit-token`, for API clients), runs the handler
//! inside it ([`Session::scope`]: handlers keep taking `&RoutedConnection` and know nothing of
//! it; the session is also in the request's extensions), and when the handler's writes moved the
//! token on, sends the new one back in both.
//!
//! Tokens are **signed** ([`TokenEnvelope`]): HMAC-SHA256 under a key the application
//! configures ([`SigningKey`]), with the time they were issued inside the signature and a
//! [maximum age](TokenEnvelope::max_age). Without a signature a client could send any position it
//! liked. Unsigned tokens are accepted only if the application says so
//! ([`TokenEnvelope::unsigned`], or [`TokenEnvelope::accept_unsigned`] while migrating). A
//! token that passes the envelope is then validated by the library itself
//! ([`RoutedConnection::session_from`]: length and format) and must be of the connection's
//! database.
//!
//! A bad token — bad signature, malformed, unsigned where a signature is required, of another
//! database — is never a panic and never a silent stale read: by default the request is refused
//! with `400 Bad Request` naming the problem (and the cookie is cleared, so a browser recovers
//! on its next request); with [`OnBadToken::FreshSession`] the request runs in a fresh session
//! and a `tracing` warning says why. A genuine token that can no longer be honoured (expired,
//! or signed with a key rotated out) starts a fresh session, with a warning.
//!
//! A client that sent no token and wrote nothing gets no cookie, so public pages stay cacheable;
//! a response that sets the cookie is marked `Cache-Control: private` unless it has a
//! `Cache-Control` of its own.
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{Router, body::Body, http::Request, routing::get};
//! use rwsplit_axum::{SessionLayer, SigningKey, TokenEnvelope};
//! use rwsplit_sea_orm::RoutedConnection;
//! use sea_orm::{DbBackend, MockDatabase};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In an application: `RoutedConnection::builder().primary(..).replicas(..).connect().await?`.
//! let mock = || MockDatabase::new(DbBackend::Postgres).into_connection();
//! let db = RoutedConnection::from_connections(mock(), vec![mock()])?;
//!
//! // The key comes from the application's secrets (32 bytes or more).
//! let key = SigningKey::new(b"an example key, at least 32 bytes long")?;
//! let envelope = TokenEnvelope::signed(key).max_age(Duration::from_secs(600));
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(SessionLayer::builder(db, envelope).build()?);
//!
//! // A forged cookie is refused, not silently ignored.
//! let forged = Request::get("/").header("cookie", "rwsplit_token=pg:1:7:1:0-3000148").body(Body::empty())?;
//! let response = app.clone().oneshot(forged).await?;
//! assert_eq!(response.status(), 400);
//! // No cookie: a fresh session.
//! let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```
//!
//! # Why a crate, not a feature of the adapter
//!
//! `rwsplit-sea-orm` knows nothing of HTTP. Keeping the web layer in its own crate keeps axum,
//! tower, `http` and the HMAC crates out of the dependency tree (and the compile time) of every
//! application that does not serve HTTP through tower, lets this crate follow axum's and tower's
//! release cadence instead of the adapter's, and follows the tower-http model: middleware in a
//! crate of its own over a small core. A cargo feature would have given the adapter optional
//! dependencies and a second API surface to test in every feature combination.
//!
//! # Layering
//!
//! Depends on `rwsplit-web` (the carrier), `rwsplit-sea-orm` (the connection) and, for its types
//! only, `axum-core`, `http` and `tower-layer`/`tower-service`. Nothing in the workspace but the
//! examples and the integration tests depends on it.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout))]

mod layer;
#[cfg(test)]
mod tests;

pub use layer::{SessionLayer, SessionLayerBuilder, SessionService};
pub use rwsplit_web::{Error, OnBadToken, Result, SessionCarrier, SigningKey, TokenEnvelope};

#[doc(no_inline)]
pub use rwsplit_sea_orm::{RoutedConnection, Session};
