//! The layer on an axum `Router` over SeaORM `MockDatabase` nodes: which node served a read is
//! read from each mock's transaction log. No server, no database.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use http::HeaderValue;
use rwsplit_sea_orm::advanced::CausalToken;
use rwsplit_sea_orm::{Consistency, RoutedConnection};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, MockDatabase, Statement, Value};
use tower::ServiceExt;

use crate::{OnBadToken, SessionLayer, SigningKey, TokenEnvelope};

const WRITTEN: &str = "pg:1:7:1:0-3000148";

fn row() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([("id", Value::Int(Some(1)))])
}

/// A primary that answers an `INSERT … RETURNING`, the two position queries that follow a write
/// (system id 7, LSN 0/3000148 on timeline 1), then reads.
fn primary() -> DatabaseConnection {
    let text = |k: &'static str, v: &str| (k, Value::String(Some(v.to_owned())));
    MockDatabase::new(DbBackend::Postgres)
        .append_query_results([vec![row()]])
        .append_query_results([vec![BTreeMap::from([text("system_id", "7")])]])
        .append_query_results([vec![BTreeMap::from([
            text("lsn", "0/3000148"),
            text("timeline", "1"),
        ])]])
        .append_query_results((0..8).map(|_| vec![row()]))
        .into_connection()
}

fn replica() -> DatabaseConnection {
    MockDatabase::new(DbBackend::Postgres)
        .append_query_results((0..8).map(|_| vec![row()]))
        .into_connection()
}

struct Fixture {
    db: RoutedConnection,
    primary: DatabaseConnection,
    replica: DatabaseConnection,
    handled: Arc<AtomicUsize>,
}

impl Fixture {
    fn new() -> Self {
        let (primary, replica) = (primary(), replica());
        let db =
            RoutedConnection::from_connections(primary.clone(), vec![replica.clone()]).unwrap();
        Self { db, primary, replica, handled: Arc::new(AtomicUsize::new(0)) }
    }

    /// Statements each node has received since the last call: (primary, replica).
    fn served(&self) -> (usize, usize) {
        let count = |c: &DatabaseConnection| c.clone().into_transaction_log().len();
        (count(&self.primary), count(&self.replica))
    }

    /// `POST /write` inserts, `GET /read` selects; both through `&RoutedConnection`, knowing
    /// nothing of the layer.
    fn app(&self, layer: SessionLayer) -> Router {
        async fn write(State((db, n)): State<(RoutedConnection, Arc<AtomicUsize>)>) -> StatusCode {
            n.fetch_add(1, Ordering::SeqCst);
            let sql = "INSERT INTO t (v) VALUES (1) RETURNING id";
            match db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await {
                Ok(_) => StatusCode::CREATED,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
        async fn read(State((db, n)): State<(RoutedConnection, Arc<AtomicUsize>)>) -> StatusCode {
            n.fetch_add(1, Ordering::SeqCst);
            let sql = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
            // `Eventual`: read-your-writes without monotonic reads, whose bound of what a
            // read saw needs a monitor's position samples (or the primary's position), which
            // these mocks have none of; the itests cover it on real clusters.
            match db.consistent(Consistency::Eventual).query_one_raw(sql).await {
                Ok(_) => StatusCode::OK,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
        /// The default level (`Session`): monotonic reads, whose bound is the replica read.
        async fn read_session(
            State((db, n)): State<(RoutedConnection, Arc<AtomicUsize>)>,
        ) -> StatusCode {
            n.fetch_add(1, Ordering::SeqCst);
            let sql = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
            match db.query_one_raw(sql).await {
                Ok(_) => StatusCode::OK,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
        Router::new()
            .route("/write", post(write))
            .route("/read", get(read))
            .route("/read-session", get(read_session))
            .layer(layer)
            .with_state((self.db.clone(), Arc::clone(&self.handled)))
    }
}

fn key() -> SigningKey {
    SigningKey::new("the test key, thirty-two bytes or more").unwrap()
}

fn signed() -> TokenEnvelope {
    TokenEnvelope::signed(key())
}

fn request(method: &str, path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header("cookie", format!("rwsplit_token={c}"));
    }
    req.body(Body::empty()).unwrap()
}

fn set_cookie(response: &axum::response::Response) -> Option<String> {
    response.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned())
}

async fn body(response: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_write_sends_a_signed_token_and_the_next_request_with_it_avoids_the_stale_replica() {
    let f = Fixture::new();
    let app = f.app(SessionLayer::builder(f.db.clone(), signed()).build().unwrap());

    let response = app.clone().oneshot(request("POST", "/write", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = set_cookie(&response).expect("a write sends the token");
    assert!(cookie.starts_with("rwsplit_token=v2."), "{cookie}");
    for attribute in ["Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let sealed = response.headers().get("x-rwsplit-token").unwrap().to_str().unwrap().to_owned();
    assert_eq!(cookie.split(';').next().unwrap(), format!("rwsplit_token={sealed}"));
    assert_eq!(signed().open(&sealed).unwrap(), WRITTEN, "the primary's position after the write");
    assert_eq!(f.served(), (3, 0), "the insert and the position queries");

    // The next request carries the cookie: no replica is known to have replayed the write, so
    // the read goes to the primary — and the unchanged token is not sent again.
    let response = app.clone().oneshot(request("GET", "/read", Some(&sealed))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // One statement on the primary, the read: the resumed token is checked against the
    // primary's position this connection read after the write (a token from further ahead,
    // forged or from another process, would be checked against a fresh one first).
    assert_eq!(f.served(), (1, 0), "read-your-writes: the primary");
    assert_eq!(set_cookie(&response), None);

    // Without the cookie the same read is any client's: the replica.
    let response = app.oneshot(request("GET", "/read", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(f.served(), (0, 1));
    assert_eq!(set_cookie(&response), None, "no token, no write: no cookie");
}

#[tokio::test]
async fn api_clients_send_and_receive_the_token_in_the_header() {
    let f = Fixture::new();
    let app = f.app(SessionLayer::builder(f.db.clone(), signed()).build().unwrap());
    let sealed = signed().seal(&WRITTEN.parse::<CausalToken>().unwrap());
    let mut req = request("GET", "/read", None);
    req.headers_mut().insert("x-rwsplit-token", HeaderValue::from_str(&sealed).unwrap());
    let response = app.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The primary's position (the resumed token is checked against it), then the read.
    assert_eq!(f.served(), (2, 0), "the header's token sends the read to the primary");
}

/// Every kind of bad token, under the default policy: `400`, the reason in the body, the
/// handler never runs, the cookie is cleared.
#[tokio::test]
async fn bad_tokens_are_a_400_naming_the_problem_and_the_handler_does_not_run() {
    let token: CausalToken = WRITTEN.parse().unwrap();
    let good = signed().seal(&token);
    let (head, tag) = good.rsplit_once('.').unwrap();
    let flipped = if tag.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{head}.{flipped}{}", &tag[1..]);
    let mariadb = signed().seal(&"mariadb:1:0-1-208".parse::<CausalToken>().unwrap());
    // The earlier envelope form names no key: a bad tag there is a bad signature.
    let garbage = format!("v1.1.{}.AAAA", "cGc6MTo3OjE6RkYtMA");
    let cases = [
        (tampered.as_str(), "signature does not verify"),
        (WRITTEN, "unsigned"),
        ("nonsense", "malformed"),
        (garbage.as_str(), "signature does not verify"),
        // The library refuses a token of another backend itself.
        (mariadb.as_str(), "where a `pg` token is expected"),
    ];
    for (cookie, reason) in cases {
        let f = Fixture::new();
        let app = f.app(SessionLayer::builder(f.db.clone(), signed()).build().unwrap());
        let response = app.oneshot(request("GET", "/read", Some(cookie))).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{cookie}");
        let clear = set_cookie(&response).unwrap();
        assert!(clear.starts_with("rwsplit_token=;") && clear.contains("Max-Age=0"), "{clear}");
        let text = body(response).await;
        assert!(text.contains(reason), "{cookie}: {text}");
        assert_eq!(f.handled.load(Ordering::SeqCst), 0, "{cookie}: the handler ran");
        assert_eq!(f.served(), (0, 0));
    }
}

/// A connection without replicas (SQLite) has no token kind: a genuine token the library lets
/// through (MariaDB's, the kind such a connection checks tokens as) is refused by the layer,
/// naming the connection's product.
#[tokio::test]
async fn a_token_for_a_database_without_replicas_is_refused_naming_its_product() {
    let sqlite = MockDatabase::new(DbBackend::Sqlite).into_connection();
    let db = RoutedConnection::from_connections(sqlite, vec![]).unwrap();
    assert_eq!(db.token_kind(), None);
    let app = Router::new()
        .route("/read", get(|| async { StatusCode::OK }))
        .layer(SessionLayer::builder(db, signed()).build().unwrap());
    let mariadb = signed().seal(&"mariadb:1:0-1-208".parse::<CausalToken>().unwrap());
    let response = app.oneshot(request("GET", "/read", Some(&mariadb))).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = body(response).await;
    assert!(text.contains("token is for `mariadb`, the database is SQLite"), "{text}");
}

/// A genuine token that can no longer be honoured — expired, or signed with a key rotated
/// out — starts a fresh session with a warning, whatever `on_bad_token` says: the client did
/// nothing wrong. Its cookie is replaced (the fresh session's read) or cleared.
#[tokio::test]
async fn an_expired_or_retired_key_token_starts_a_fresh_session_with_a_warning() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber =
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let token: CausalToken = WRITTEN.parse().unwrap();
    let retired = TokenEnvelope::signed(SigningKey::new([9u8; 32]).unwrap()).seal(&token);
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    let expired = signed().seal_at(&token, two_hours_ago);
    for (cookie, why) in [(retired.as_str(), "no longer configured"), (expired.as_str(), "expired")]
    {
        let f = Fixture::new();
        let app = f.app(SessionLayer::builder(f.db.clone(), signed()).build().unwrap());
        let response = app.oneshot(request("GET", "/read", Some(cookie))).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{cookie}");
        assert_eq!(f.served(), (0, 1), "a fresh session: the replica, as for any new client");
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("WARN") && text.contains(why), "{text}");
    }
}

/// A client that sent no token and only reads gets no cookie: what it read is what any new
/// client reads, so a public page stays cacheable (no `Set-Cookie`, no `Cache-Control` added);
/// the primary is never asked.
#[tokio::test]
async fn an_anonymous_reader_gets_no_cookie_and_its_pages_stay_cacheable() {
    let f = Fixture::new();
    let app = f.app(SessionLayer::builder(f.db.clone(), signed()).build().unwrap());
    for _ in 0..5 {
        let response = app.clone().oneshot(request("GET", "/read-session", None)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(set_cookie(&response), None, "an anonymous read sets no cookie");
        assert!(response.headers().get("cache-control").is_none());
    }
    assert_eq!(f.served(), (0, 5), "replicas only");
}

/// A client that holds a read-only token keeps it: no `Set-Cookie` while it reads the same
/// replica, until the token is past half its maximum age, when it is sent anew (so it never
/// expires under a client that keeps coming back), marked `Cache-Control: private`.
#[tokio::test]
async fn a_reading_client_gets_a_cookie_only_when_its_token_changes_or_ages() {
    let f = Fixture::new();
    let app = f.app(SessionLayer::builder(f.db.clone(), signed()).build().unwrap());
    let replica = f.db.stats().replicas()[0].name().to_owned();
    // The token's text form percent-encodes a name's spaces.
    let inner = format!("pg:@{}", replica.replace(' ', "%20"));
    let value = signed().seal_at(&inner, SystemTime::now());
    for _ in 0..5 {
        let response =
            app.clone().oneshot(request("GET", "/read-session", Some(&value))).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(set_cookie(&response), None, "the same replica, the same token");
    }
    assert_eq!(f.served().0, 0, "the primary was never asked");
    // The same token, issued 40 minutes ago (the maximum age is an hour): sent anew.
    let old = signed().seal_at(&inner, SystemTime::now() - Duration::from_secs(2400));
    let response = app.oneshot(request("GET", "/read-session", Some(&old))).await.unwrap();
    assert!(set_cookie(&response).is_some(), "an ageing token is refreshed");
    assert_eq!(response.headers().get("cache-control").unwrap(), "private");
}

#[tokio::test]
async fn a_token_the_library_refuses_is_a_400_with_the_librarys_reason() {
    let f = Fixture::new();
    let app =
        f.app(SessionLayer::builder(f.db.clone(), TokenEnvelope::unsigned()).build().unwrap());
    let response = app.oneshot(request("GET", "/read", Some("pg:1:7:1:zz"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = body(response).await;
    assert!(text.starts_with("read-your-writes token is invalid: "), "{text}");
    assert!(text.contains("invalid LSN"), "{text}");
}

/// A `tracing` writer that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn with_fresh_session_a_bad_token_runs_fresh_with_a_warning_that_names_no_key() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let f = Fixture::new();
    let layer = SessionLayer::builder(f.db.clone(), signed())
        .on_bad_token(OnBadToken::FreshSession)
        .build()
        .unwrap();
    let app = f.app(layer);
    let forged = format!("v1.1.{}.AAAA", "cGc6MTo3OjE6RkYtMA");
    let response = app.clone().oneshot(request("GET", "/read", Some(&forged))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(f.served(), (0, 1), "a fresh session: the replica, as for any new client");
    let clear = set_cookie(&response).unwrap();
    assert!(clear.contains("Max-Age=0"), "the bad cookie is cleared: {clear}");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("signature does not verify"), "{text}");
    assert!(text.contains("fresh session"), "{text}");
    assert!(!text.contains("thirty-two bytes"), "the key is never logged: {text}");

    // A write in such a request gets a new, good token instead of the clearing cookie.
    let response = app.oneshot(request("POST", "/write", Some(&forged))).await.unwrap();
    let cookie = set_cookie(&response).unwrap();
    assert!(cookie.starts_with("rwsplit_token=v2.") && !cookie.contains("Max-Age=0"), "{cookie}");
}

#[tokio::test]
async fn unsigned_tokens_only_by_opt_in_and_then_upgraded_to_signed_ones() {
    let f = Fixture::new();
    let migrating = signed().accept_unsigned(true);
    let app = f.app(SessionLayer::builder(f.db.clone(), migrating).build().unwrap());
    let response = app.oneshot(request("GET", "/read", Some(WRITTEN))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        f.served(),
        (2, 0),
        "the unsigned token is honoured (checked against the primary's position)"
    );
    let cookie = set_cookie(&response).expect("re-sent signed");
    let sealed = cookie.split(';').next().unwrap().trim_start_matches("rwsplit_token=");
    assert_eq!(signed().open(sealed).unwrap(), WRITTEN);

    // Fully unsigned: the token goes back as the library's text.
    let f = Fixture::new();
    let app =
        f.app(SessionLayer::builder(f.db.clone(), TokenEnvelope::unsigned()).build().unwrap());
    let response = app.oneshot(request("POST", "/write", None)).await.unwrap();
    let cookie = set_cookie(&response).unwrap();
    assert!(cookie.starts_with(&format!("rwsplit_token={WRITTEN};")), "{cookie}");
}

#[tokio::test]
async fn names_and_cookie_attributes_are_configurable() {
    let f = Fixture::new();
    let layer = SessionLayer::builder(f.db.clone(), signed().max_age(Duration::from_secs(90)))
        .cookie_name("ryw")
        .header_name(http::HeaderName::from_static("x-ryw"))
        .cookie_path("/app")
        .secure_cookie(false)
        .build()
        .unwrap();
    let app = f.app(layer);
    let response = app.oneshot(request("POST", "/write", None)).await.unwrap();
    let cookie = set_cookie(&response).unwrap();
    assert!(cookie.starts_with("ryw=v2."), "{cookie}");
    assert!(cookie.contains("Path=/app; Max-Age=90;") && !cookie.contains("Secure"), "{cookie}");
    assert!(response.headers().contains_key("x-ryw"));
}

#[test]
fn the_key_is_in_no_debug_output() {
    let f = Fixture::new();
    let layer = SessionLayer::builder(f.db.clone(), signed().previous_key(key())).build().unwrap();
    let debug = format!("{layer:?} {:?}", layer.layer_debug_service());
    assert!(!debug.contains("thirty-two"), "{debug}");
    assert!(debug.contains("SigningKey(..)"), "{debug}");
}

impl SessionLayer {
    fn layer_debug_service(&self) -> crate::SessionService<()> {
        tower_layer::Layer::layer(self, ())
    }
}

/// A gRPC call (tonic's routes served through the layer) whose token is refused gets a gRPC
/// status, not an HTTP `400` a gRPC client cannot read: `INVALID_ARGUMENT` with the reason.
#[tokio::test]
async fn a_refused_token_on_a_grpc_call_is_a_grpc_status_naming_the_reason() {
    let f = Fixture::new();
    let app = f.app(SessionLayer::builder(f.db.clone(), signed()).build().unwrap());
    let req = Request::builder()
        .method("GET")
        .uri("/read")
        .header("content-type", "application/grpc")
        .header("x-rwsplit-token", "not a token")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("grpc-status").unwrap(), "3");
    let message = response.headers().get("grpc-message").unwrap().to_str().unwrap();
    assert!(message.starts_with("read-your-writes token is malformed"), "{message}");
    assert_eq!(f.handled.load(Ordering::SeqCst), 0, "the service did not run");
}
