//! A [loco](https://loco.rs) 1.2 application on rwsplit's [`RoutedConnection`]: its handlers
//! write to the primary and read from replicas, and a client reads its own writes across
//! requests while the replicas lag.
//!
//! ```sh
//! cd examples/loco && CARGO_TARGET_DIR=../../target cargo test
//! ```
//!
//! (`tests/notes.rs` starts a PostgreSQL primary and two streaming replicas with
//! `rwsplit-testkit`, so PostgreSQL's server binaries must be installed: `apt-get install
//! postgresql`.)
//!
//! # The wiring
//!
//! Four pieces, each a few lines:
//!
//! 1. **`Hooks::after_context`** ([`App`]) builds the `RoutedConnection` — the primary is loco's
//!    own `database.uri`, the replicas and rwsplit's policy come from the `settings.rwsplit`
//!    block of config/*.yaml ([`Settings`], [`connect`]) — and inserts it in
//!    `ctx.shared_store`.
//! 2. **`Hooks::after_routes`** wraps the router in `rwsplit_axum::SessionLayer`: each request
//!    runs in the client's read-your-writes session, resumed from a signed token (cookie
//!    `rwsplit_token` or header `x-rwsplit-token`), and a request that wrote sends the new
//!    token back. Without it, a client's next request (another connection, another task,
//!    maybe another instance) could read a replica that has not replayed its write yet.
//! 3. **Handlers** ([`controllers::notes`]) take loco's `SharedStore<RoutedConnection>`
//!    extractor.
//! 4. **Models** ([`models::notes`]) take `db: &C` where `C: ConnectionTrait`, so the router,
//!    `ctx.db`, a transaction or a `Session` all fit.
//!
//! # What stays on `ctx.db`
//!
//! `ctx.db` is still loco's own `DatabaseConnection`, connected to `database.uri`: the primary.
//! Everything of loco's typed to `&DatabaseConnection` keeps using it, on the primary:
//! migrations at boot (`auto_migrate`, [`Migrator`]), `Hooks::seed` and `Hooks::truncate`,
//! `Authenticable::find_by_api_key`/`find_by_claims_key` (loco's auth extractors),
//! `query::paginate`, and the `/_readiness` route's ping (the primary only; the replicas'
//! health is the router's, in [`RoutedConnection::stats`], and reads go on from the primary
//! when every replica is down). `query::fetch_page` is generic over the connection and works
//! on the router (`models::notes::Model::page`). Code of your own that needs a
//! `&DatabaseConnection` can also take [`RoutedConnection::primary`].
//!
//! Two consequences:
//!
//! - **Write through the router in handlers.** The router does not see writes made through
//!   `ctx.db`, so the client's session does not learn their position and its next read may
//!   reach a replica without them. `db.primary()` is the way out when a `&DatabaseConnection`
//!   is required: the router then treats the caller's scope as having written (its next read
//!   asks the primary for its position first, or reads the primary).
//! - **Two pools reach the primary**: loco's (`database.max_connections`, kept small in
//!   config/*.yaml: migrations, seeds, auth) and the router's (`settings.rwsplit.pool`, or
//!   `primary.pool`). Count both against the server's `max_connections`.
//!
//! `Hooks::after_context` also runs for loco's command-line tasks (`cargo loco db migrate`
//! and the like, if the application enables loco's `cli` feature), so those connect the router
//! too: an unreachable replica is then a warning, an unreachable primary an error.
//!
//! # Why not a routing `DatabaseConnection`
//!
//! Making `ctx.db` itself route would need everything loco does with it to go through rwsplit.
//! SeaORM 2.0.4's only way to put other behaviour behind a `DatabaseConnection` is the
//! `proxy` feature's `ProxyDatabaseTrait`, and a router built on it would not be honest:
//!
//! - its `begin`, `commit` and `rollback` take no transaction identity and return `()`: a
//!   transaction's statements cannot be tied to one connection on the primary, and a failed
//!   `COMMIT` cannot be reported;
//! - streaming on a proxy connection is refused (`DbErr::BackendNotSupported`);
//! - a `ProxyRow` is a `BTreeMap<String, Value>`: columns come back in name order, not the
//!   query's, and two columns of one name collapse into one;
//! - turning a sqlx `PgRow` into a `ProxyRow` panics on a column type SeaORM does not list
//!   (`unreachable!("Unknown column type: …")`).
//!
//! So the router is a type of its own, reached through the shared store, and `ctx.db` stays
//! what loco made it.

mod app;
pub mod controllers;
mod migration;
pub mod models;
mod routed;

pub use app::App;
pub use migration::Migrator;
pub use routed::{Settings, connect};

#[doc(no_inline)]
pub use rwsplit_sea_orm::RoutedConnection;
