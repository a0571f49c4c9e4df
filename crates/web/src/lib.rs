//! `rwsplit-web`: read-your-writes across HTTP requests for rwsplit, in any web framework.
//!
//! A [`RoutedConnection`] keeps the position of each write in a [`Session`]; this crate carries
//! that position — the causal token — between a client's requests, so that the page after a
//! `POST` and its redirect shows what the `POST` wrote, whichever connection, worker or
//! instance serves it:
//!
//! - [`SessionCarrier`], the framework-neutral core: a token in (from a header, default
//!   `x-rwsplit-token`, or a cookie, default `rwsplit_token`), the handler run in the client's
//!   session, the session's token out when the handler moved it on. Any framework uses it in a
//!   dozen lines (its docs show them).
//! - Middleware in each framework's conventions: [`actix::SessionMiddleware`] for actix-web
//!   (feature `actix-web`) and [`poem::SessionMiddleware`] for poem (feature `poem`). axum,
//!   loco and tonic (tower stacks) have `rwsplit-axum`'s `SessionLayer`, built on the same core.
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
//! Work a handler hands to another task keeps the request's session with
//! [`RoutedConnection::spawn`](rwsplit_sea_orm::RoutedConnection::spawn); a job queue carries
//! it as text ([`Session::token`], then [`RoutedConnection::session_from`] in the worker).
//!
//! # Layering
//!
//! Depends on `rwsplit-sea-orm` (the session and its validation), `rwsplit-core` (the token's
//! kind), the HMAC crates, and, behind their features only, `actix-web` and `poem`. It names
//! SeaORM only to ask the connection which database it runs. `rwsplit-axum` depends on it.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout))]

#[cfg(feature = "actix-web")]
pub mod actix;
mod carrier;
mod envelope;
mod error;
mod key;
#[cfg(feature = "poem")]
pub mod poem;
#[cfg(test)]
mod tests;

pub use carrier::{
    Incoming, OnBadToken, Outgoing, Rejection, RequestSession, SessionCarrier,
    SessionCarrierBuilder,
};
pub use envelope::TokenEnvelope;
pub use error::{Error, Result};
pub use key::SigningKey;

#[doc(no_inline)]
pub use rwsplit_sea_orm::{RoutedConnection, Session};
