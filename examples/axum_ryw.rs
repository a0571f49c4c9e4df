//! Read-your-writes across HTTP requests: an axum app where `POST /authors?name=…` writes and
//! redirects, and the redirected `GET /authors/{id}` reads the row back — from a replica once
//! one has replayed it, from the primary before that — while the replicas lag.
//!
//! ```sh
//! cargo run --example axum_ryw
//! ```
//!
//! The token travels with the client: the `rwsplit-axum` layer
//! ([`SessionLayer`](rwsplit_axum::SessionLayer)) resumes a [`Session`](rwsplit_sea_orm::Session)
//! from the `rwsplit_token` cookie (or an `x-rwsplit-token` header, for API clients), runs the
//! handler inside it, and sends the session's token back in both, signed with HMAC-SHA256 under
//! the key in `RWSPLIT_TOKEN_KEY` (a fixed demo key if unset) and valid for ten minutes.
//! Handlers take `&RoutedConnection` as usual and know nothing of it. Each request here comes on
//! a new TCP connection, so nothing but the cookie links the POST to the GET.
//!
//! Without `DATABASE_URL` it starts a throwaway PostgreSQL primary with two replicas that apply
//! WAL 300 ms late; with it, it runs on that cluster instead (`DATABASE_REPLICA_URLS` and every
//! other variable `RoutedConnection::from_env` reads apply; `export $(cargo xtask cluster up)`
//! sets them), without adding any lag. It serves the app on a local port and plays a client
//! against it: 20 POST → GET pairs with the cookie (none may be stale), then the same without
//! the cookie (the control: on the throwaway cluster, replicas really lag). It prints the
//! counts and exits non-zero on a stale read.
//!
//! Its table lives in a namespace of its own, created at the start and dropped at the end (also
//! when it fails or is interrupted): on PostgreSQL the schema `rwsplit_axum_ryw` in the
//! database the URLs name, on MariaDB the database `rwsplit_axum_ryw`. Nothing else in the
//! database is touched; if that schema or database already exists it stops with an error and
//! leaves it alone, and if a node's sessions do not work in it (a pooler that drops the
//! `options` startup parameter) it stops before creating anything there and drops it.

#[path = "blog/mod.rs"]
mod blog;
#[path = "own/mod.rs"]
mod own;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use blog::{author, migration::Migrator};
use rwsplit_axum::{SessionLayer, SigningKey, TokenEnvelope};
use rwsplit_sea_orm::RoutedConnection;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use sea_orm_migration::MigratorTrait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COOKIE: &str = "rwsplit_token";

/// The layer: the client's signed token in, the session's token out. In production the key
/// comes from the application's secret store, the same on every instance.
fn ryw_layer(db: RoutedConnection) -> anyhow::Result<SessionLayer> {
    let secret = std::env::var("RWSPLIT_TOKEN_KEY")
        .unwrap_or_else(|_| "a demo key: set RWSPLIT_TOKEN_KEY in production".to_owned());
    let envelope =
        TokenEnvelope::signed(SigningKey::new(secret)?).max_age(Duration::from_secs(600));
    Ok(SessionLayer::builder(db, envelope).build()?)
}

#[derive(serde::Deserialize)]
struct NewAuthor {
    name: String,
}

/// Ordinary handler code: `&db` is a `RoutedConnection`.
async fn create(State(db): State<RoutedConnection>, Query(q): Query<NewAuthor>) -> Response {
    match (author::ActiveModel { name: Set(q.name), ..Default::default() }).insert(&db).await {
        Ok(a) => Redirect::to(&format!("/authors/{}", a.id)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn show(State(db): State<RoutedConnection>, Path(id): Path<i32>) -> Response {
    match author::Entity::find_by_id(id).one(&db).await {
        Ok(Some(a)) => a.name.into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such author").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn app(db: RoutedConnection) -> anyhow::Result<Router> {
    Ok(Router::new()
        .route("/authors", post(create))
        .route("/authors/{id}", get(show))
        .layer(ryw_layer(db.clone())?)
        .with_state(db))
}

/// One HTTP/1.1 exchange on a fresh connection: status, `Location`, `Set-Cookie`, body.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    cookie: Option<&str>,
) -> anyhow::Result<(u16, Option<String>, Option<String>, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).await?;
    let (head, body) = raw.split_once("\r\n\r\n").context("an HTTP response")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("a status line")?;
    let mut location = None;
    let mut set_cookie = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "location" => location = Some(v.trim().to_owned()),
                "set-cookie" => set_cookie = v.trim().split(';').next().map(str::to_owned),
                _ => {}
            }
        }
    }
    Ok((status, location, set_cookie, body.to_owned()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (cluster, config) = match own::from_env()? {
        Some(config) => (None, config),
        None => {
            let cluster = rwsplit_testkit::Cluster::builder()
                .name("axum-ryw")
                .start()
                .await
                .context("starting a throwaway local cluster (is PostgreSQL installed?)")?;
            let config = own::nodes(cluster.primary_url(), cluster.replica_urls())?;
            (Some(cluster), config)
        }
    };
    own::run("rwsplit_axum_ryw", config, async |config| {
        let db = config.connect().await?;
        Migrator::up(db.primary(), None).await?;
        play(db, cluster.as_ref()).await
    })
    .await
}

/// The app and its client, on `db`; `cluster`'s replicas lag while it plays, if it started one.
async fn play(
    db: RoutedConnection,
    cluster: Option<&rwsplit_testkit::Cluster>,
) -> anyhow::Result<()> {
    if let Some(c) = cluster {
        c.wait_caught_up(0, Duration::from_secs(10)).await?;
        for r in c.replicas() {
            r.set_apply_delay(Duration::from_millis(300)).await?;
        }
        println!("replicas apply WAL 300 ms late");
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let server = tokio::spawn(axum::serve(listener, app(db.clone())?).into_future());
    println!("serving on http://127.0.0.1:{port}");

    const PAIRS: usize = 20;
    let (mut stale, mut stale_without) = (0, 0);
    let before = db.stats();
    let started = Instant::now();
    for i in 0..PAIRS {
        // With the cookie: POST, follow the redirect carrying the cookie.
        let (status, location, cookie, _) =
            http(port, "POST", &format!("/authors?name=with-{i}"), None).await?;
        if status != 303 {
            bail!("POST answered {status}");
        }
        let location = location.context("a redirect")?;
        let (status, _, _, body) = http(port, "GET", &location, cookie.as_deref()).await?;
        stale += usize::from(status != 200 || body != format!("with-{i}"));

        // The control: the same without the cookie.
        let (_, location, _, _) =
            http(port, "POST", &format!("/authors?name=without-{i}"), None).await?;
        let location = location.context("a redirect")?;
        let (status, _, _, _) = http(port, "GET", &location, None).await?;
        stale_without += usize::from(status != 200);
    }
    let elapsed = started.elapsed();
    let after = db.stats();
    let ryw = after.read_your_writes();
    println!(
        "{PAIRS} POST→GET pairs with the token cookie: {stale} stale; without it: {stale_without} stale (the replicas' lag is real)"
    );
    println!(
        "reads on replicas: {}, on the primary: {}; token reads: {} on replicas, {} on the primary; {:.1} ms per pair",
        after.replica_reads() - before.replica_reads(),
        after.primary().reads() - before.primary().reads(),
        ryw.replica_reads,
        ryw.primary_reads,
        elapsed.as_secs_f64() * 1e3 / (2 * PAIRS) as f64,
    );
    // A forged or tampered token is refused with a clear error, not silently ignored.
    let forged = format!("{COOKIE}=pg:1:1:1:FF-0");
    let (status, _, _, body) = http(port, "GET", "/authors/1", Some(&forged)).await?;
    println!("an unsigned (forged) token: {status} {}", body.trim());
    let tampered = format!("{COOKIE}=v1.1.cGc6MToxOjE6RkYtMA.AAAA");
    let (status_t, _, _, body) = http(port, "GET", "/authors/1", Some(&tampered)).await?;
    println!("a tampered token: {status_t} {}", body.trim());

    server.abort();
    if let Some(c) = cluster {
        for r in c.replicas() {
            r.clear_apply_delay().await.ok();
        }
    }
    if stale > 0 {
        bail!("{stale} stale reads with the token");
    }
    if status != 400 || status_t != 400 {
        bail!("a forged or tampered token was not refused ({status}, {status_t})");
    }
    Ok(())
}
