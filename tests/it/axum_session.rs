//! The `rwsplit-axum` layer on a real PostgreSQL cluster whose replicas apply WAL late: a write
//! in one request and a read in the next, on another application instance, linked only by the
//! signed cookie, never read stale; forged and tampered cookies are refused.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rwsplit_axum::{SessionLayer, SigningKey, TokenEnvelope};
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_testkit::DbKind;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use sea_orm_migration::MigratorTrait;
use tower::ServiceExt;

use crate::blog::{author, migration::Migrator};
use crate::support::own_cluster;

const KEY: &str = "the itest key: thirty-two bytes at least";

#[derive(serde::Deserialize)]
struct NewAuthor {
    name: String,
}

async fn create(State(db): State<RoutedConnection>, Query(q): Query<NewAuthor>) -> Response {
    match (author::ActiveModel { name: Set(q.name), ..Default::default() }).insert(&db).await {
        Ok(a) => (StatusCode::CREATED, a.id.to_string()).into_response(),
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

/// One application instance: its own `RoutedConnection`, the shared signing key.
fn app(db: RoutedConnection) -> Router {
    let envelope = TokenEnvelope::signed(SigningKey::new(KEY).unwrap());
    Router::new()
        .route("/authors", post(create))
        .route("/authors/{id}", get(show))
        .layer(SessionLayer::builder(db.clone(), envelope).build().unwrap())
        .with_state(db)
}

async fn connect(tdb: &rwsplit_testkit::TestDatabase) -> RoutedConnection {
    RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .probe_interval(Duration::from_millis(100))
        .connect()
        .await
        .unwrap()
}

fn request(method: &str, uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.body(Body::empty()).unwrap()
}

/// Status, the `name=value` of the `Set-Cookie` (if any), body.
async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Option<String>, String) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
    (status, cookie, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_write_then_a_read_with_the_signed_cookie_is_never_stale_and_forgeries_are_refused() {
    let cluster = own_cluster(DbKind::Postgres, "axum_session", 2).await;
    let tdb = cluster.create_database("axum_session").await.unwrap();
    let (db_a, db_b) = (connect(&tdb).await, connect(&tdb).await);
    Migrator::up(db_a.primary(), None).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    for r in cluster.replicas() {
        r.set_apply_delay(Duration::from_millis(300)).await.unwrap();
    }
    // Two instances behind one load balancer: the POST goes to one, the GET to the other.
    let (a, b) = (app(db_a.clone()), app(db_b.clone()));

    const PAIRS: usize = 20;
    let (mut stale, mut stale_without) = (0, 0);
    let mut last_cookie = String::new();
    for i in 0..PAIRS {
        let (status, cookie, id) =
            send(&a, request("POST", &format!("/authors?name=with-{i}"), None)).await;
        assert_eq!(status, StatusCode::CREATED, "{id}");
        let cookie = cookie.expect("a write sends the token");
        assert!(cookie.starts_with("rwsplit_token=v2."), "{cookie}");
        let (status, _, body) =
            send(&b, request("GET", &format!("/authors/{id}"), Some(&cookie))).await;
        stale += usize::from(status != StatusCode::OK || body != format!("with-{i}"));
        last_cookie = cookie;

        // The control: the same without the cookie.
        let (_, _, id) =
            send(&a, request("POST", &format!("/authors?name=without-{i}"), None)).await;
        let (status, _, _) = send(&b, request("GET", &format!("/authors/{id}"), None)).await;
        stale_without += usize::from(status != StatusCode::OK);
    }
    let ryw = db_b.stats().read_your_writes();
    eprintln!(
        "{PAIRS} POST→GET pairs across instances with the cookie: {stale} stale; without: {stale_without} stale; token reads on instance B: {} on replicas, {} on the primary",
        ryw.replica_reads, ryw.primary_reads
    );
    assert_eq!(stale, 0, "stale reads with the signed cookie");
    assert!(stale_without > 0, "the replicas lag: without the cookie some reads are stale");
    // A GET's token is a position (read with it on a replica or the primary), or — for a write
    // whose position was left unread while no replica could serve a read (300 ms behind) —
    // the primary by name (read there, or its position read when a replica could serve).
    assert!(
        ryw.replica_reads + ryw.primary_reads + ryw.last_node_reads >= PAIRS as u64,
        "every GET used its token: {ryw:?}"
    );

    // Forgeries: an unsigned token far ahead, the real cookie with its position changed. Each
    // is a 400 and no handler reads anything. (A token signed with a key this application does
    // not have is taken for one rotated out: a fresh session, the crate's tests show.)
    let reads_before = db_b.stats().replica_reads() + db_b.stats().primary().reads();
    let (name, value) = last_cookie.split_once('=').unwrap();
    let mut fields: Vec<String> = value.split('.').map(str::to_owned).collect();
    // v2.<key id>.<issued>.<token>.<tag>: the token's first character changed.
    let flipped = if fields[3].starts_with('c') { "d" } else { "c" };
    fields[3].replace_range(..1, flipped);
    let tampered = format!("{name}={}", fields.join("."));
    for (cookie, reason) in
        [(format!("{name}=pg:1:1:1:FF-0"), "unsigned"), (tampered, "signature does not verify")]
    {
        let (status, clear, body) = send(&b, request("GET", "/authors/1", Some(&cookie))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{cookie}: {body}");
        assert!(body.contains(reason), "{cookie}: {body}");
        assert_eq!(clear.as_deref(), Some("rwsplit_token="), "the cookie is cleared");
    }
    let reads_after = db_b.stats().replica_reads() + db_b.stats().primary().reads();
    assert_eq!(reads_before, reads_after, "a refused request runs no statement");

    for r in cluster.replicas() {
        r.clear_apply_delay().await.unwrap();
    }
}

/// What a write request costs the primary, as the router's own counts (deterministic): at most
/// one position read per write, with replicas current and with replicas behind (PostgreSQL
/// 200 ms, MariaDB its delay's whole seconds); with its replicas behind few (no replica could
/// serve a read within the wait: the response's token names the primary instead); no GET
/// misses its own write either way.
#[rstest::rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_write_request_reads_at_most_one_position_and_no_get_is_stale(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "axum_write_cost", 2).await;
    let tdb = cluster.create_database("axum_write_cost").await.unwrap();
    let db = connect(&tdb).await;
    Migrator::up(db.primary(), None).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    let app = app(db.clone());
    const PAIRS: u64 = 20;
    // POST then GET with the cookie, `PAIRS` times: (position reads during the POSTs, the
    // most during one POST, during the GETs, the GETs that missed their write: the pair, the
    // status and the body, with the token sent).
    let pairs = |tag: &'static str| {
        let (app, db) = (app.clone(), db.clone());
        async move {
            let read = || db.stats().read_your_writes().positions_captured;
            let (mut posts, mut most, mut gets, mut stale) = (0, 0, 0, Vec::new());
            for i in 0..PAIRS {
                let name = format!("{tag}-{i}");
                let before = read();
                let (status, cookie, id) =
                    send(&app, request("POST", &format!("/authors?name={name}"), None)).await;
                let post = read() - before;
                (posts, most) = (posts + post, most.max(post));
                assert_eq!(status, StatusCode::CREATED, "{name}: {id}");
                let cookie = cookie.expect("a write sends the token");
                let before = read();
                let (status, _, body) =
                    send(&app, request("GET", &format!("/authors/{id}"), Some(&cookie))).await;
                gets += read() - before;
                if status != StatusCode::OK || body != name {
                    stale.push(format!("{name}: {status} {body:?} with {cookie}"));
                }
            }
            (posts, most, gets, stale)
        }
    };
    let (current, most_current, gets_current, stale_current) = pairs("current").await;
    for r in cluster.replicas() {
        r.set_apply_delay(Duration::from_millis(200)).await.unwrap();
    }
    // Another client keeps writing: the replicas stay behind between this test's pairs.
    let beside = crate::support::writer_beside(&tdb.primary_url()).await;
    // Writes until the monitor has seen both replicas further behind than a read waits.
    crate::support::write_until_replicas_behind(&db, || {
        let app = app.clone();
        async move {
            let _ = send(&app, request("POST", "/authors?name=warm", None)).await;
        }
    })
    .await;
    let (late, most_late, gets_late, stale_late) = pairs("late").await;
    drop(beside);
    eprintln!(
        "WRITE-COST {kind} position reads per write request: {:.2} with replicas current, {:.2} \
         with replicas behind (per GET: {:.2} and {:.2}); stale GETs {} and {}",
        current as f64 / PAIRS as f64,
        late as f64 / PAIRS as f64,
        gets_current as f64 / PAIRS as f64,
        gets_late as f64 / PAIRS as f64,
        stale_current.len(),
        stale_late.len(),
    );
    assert!(
        stale_current.is_empty() && stale_late.is_empty(),
        "no GET misses its own write: {stale_current:?} {stale_late:?}; {:?}",
        db.stats()
    );
    // A GET reads the primary's position only to leave the primary after a read there that
    // no sample bounds yet (its token named the primary: the write's own read-back went to
    // the primary while the monitor judged no replica near), so that the read can use a
    // replica; a few at most.
    assert!(most_current <= 1 && most_late <= 1, "at most one position read per write request");
    assert!(gets_current + gets_late <= PAIRS / 4, "GETs: {gets_current} and {gets_late}");
    assert!(
        current >= PAIRS / 2,
        "replicas current: the positions are read: {current}; {:?}",
        db.stats()
    );
    assert!(
        late <= PAIRS / 4,
        "replicas behind: positions no read could use: {late}; {:?}",
        db.stats().replicas().iter().map(|r| (r.health(), r.lag())).collect::<Vec<_>>()
    );
    for r in cluster.replicas() {
        r.clear_apply_delay().await.unwrap();
    }
}
