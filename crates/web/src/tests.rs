//! The carrier on its own, over SeaORM `MockDatabase` nodes: what it takes from a request and
//! what it gives back. No server, no framework. (`rwsplit-axum`'s tests drive the same carrier
//! through a router; the itests and the example apps on real clusters.)

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rstest::rstest;
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_sea_orm::advanced::CausalToken;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, MockDatabase, Statement, Value};

use crate::{Error, Incoming, OnBadToken, SessionCarrier, SigningKey, TokenEnvelope};

const WRITTEN: &str = "pg:1:7:1:0-3000148";

/// A primary that answers an `INSERT … RETURNING` and the two position reads after it (system
/// id 7, LSN 0/3000148 on timeline 1).
fn primary() -> DatabaseConnection {
    let text = |k: &'static str, v: &str| (k, Value::String(Some(v.to_owned())));
    MockDatabase::new(DbBackend::Postgres)
        .append_query_results([vec![BTreeMap::from([("id", Value::Int(Some(1)))])]])
        .append_query_results([vec![BTreeMap::from([text("system_id", "7")])]])
        .append_query_results([vec![BTreeMap::from([
            text("lsn", "0/3000148"),
            text("timeline", "1"),
        ])]])
        .into_connection()
}

fn db() -> RoutedConnection {
    let replica = MockDatabase::new(DbBackend::Postgres).into_connection();
    RoutedConnection::from_connections(primary(), vec![replica]).unwrap()
}

fn envelope() -> TokenEnvelope {
    TokenEnvelope::signed(SigningKey::new("the test key, thirty-two bytes or more").unwrap())
}

fn carrier() -> SessionCarrier {
    SessionCarrier::builder(db(), envelope()).secure_cookie(false).build().unwrap()
}

fn sealed() -> String {
    let token: CausalToken = WRITTEN.parse().unwrap();
    envelope().seal_at(&token, SystemTime::now())
}

fn run(incoming: Incoming) -> crate::RequestSession {
    match incoming {
        Incoming::Run(request) => request,
        Incoming::Reject(r) => panic!("refused: {}", r.body()),
    }
}

#[tokio::test]
async fn a_request_that_writes_gets_the_token_in_a_cookie_and_the_header() {
    let c = carrier();
    let request = run(c.incoming(None, []));
    let insert =
        Statement::from_string(DbBackend::Postgres, "INSERT INTO t VALUES (1) RETURNING id");
    let db = c.connection().clone();
    request.scope(async { db.query_one_raw(insert).await.unwrap() }).await;
    let out = request.outgoing().await;
    let headers: Vec<(&str, &str)> = out.headers().collect();
    assert_eq!(headers.len(), 2, "{headers:?}");
    let (cookie, header) = (headers[0], headers[1]);
    assert_eq!(cookie.0, "set-cookie");
    assert!(cookie.1.starts_with("rwsplit_token=v2."), "{cookie:?}");
    assert!(cookie.1.ends_with("; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"), "{cookie:?}");
    assert_eq!(header.0, "x-rwsplit-token");
    assert_eq!(envelope().open(header.1).unwrap(), WRITTEN);
    assert_eq!(
        out.for_response(|_| false)[2],
        ("cache-control", "private"),
        "a response with a cookie is private"
    );
    assert_eq!(out.for_response(|n| n == "cache-control").len(), 2, "its own Cache-Control kept");
    assert_eq!(out.for_response(|_| false).len(), 3);
}

#[tokio::test]
async fn a_fresh_request_that_does_nothing_gets_no_header() {
    let out = run(carrier().incoming(None, ["theme=dark; lang=en"])).outgoing().await;
    assert!(out.is_empty(), "{out:?}");
}

/// (the token header, the `Cookie` headers) → whether the request resumes the signed token.
#[rstest]
#[case::header(true, None, true)]
#[case::cookie(false, Some("a=1; rwsplit_token=TOKEN; b=2"), true)]
#[case::cookie_in_a_second_header(false, Some("rwsplit_token=TOKEN"), true)]
#[case::quoted(false, Some("rwsplit_token=\"TOKEN\""), true)]
#[case::another_name(false, Some("rwsplit_tokens=TOKEN"), false)]
#[case::empty(false, Some("rwsplit_token="), false)]
#[tokio::test]
async fn the_token_is_taken_from_the_header_else_the_cookie(
    #[case] in_header: bool,
    #[case] cookie: Option<&str>,
    #[case] resumed: bool,
) {
    let token = sealed();
    let header = in_header.then_some(token.as_str());
    let cookie = cookie.map(|c| c.replace("TOKEN", &token));
    let cookies: Vec<&str> = ["theme=dark"].into_iter().chain(cookie.as_deref()).collect();
    let request = run(carrier().incoming(header, cookies));
    let slot = request.session().token().await.unwrap().map(|t| t.to_string());
    assert_eq!(slot.is_some(), resumed, "{slot:?}");
    // A token resumed as it was sent is not sent back.
    assert!(request.outgoing().await.is_empty());
}

#[tokio::test]
async fn a_forged_token_is_refused_with_a_400_that_clears_the_cookie() {
    // The real key's id and a tag that is not its signature.
    let genuine = sealed();
    let (signed, _tag) = genuine.rsplit_once('.').unwrap();
    let forged = format!("{signed}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let Incoming::Reject(rejection) = carrier().incoming(Some(&forged), []) else {
        panic!("a forged token runs");
    };
    assert_eq!(rejection.status(), 400);
    assert!(rejection.body().contains("read-your-writes token"), "{}", rejection.body());
    let headers: Vec<_> = rejection.headers().collect();
    assert_eq!(
        headers,
        [("set-cookie", "rwsplit_token=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")]
    );
}

#[tokio::test]
async fn with_fresh_session_a_forged_token_runs_fresh_and_its_cookie_is_cleared() {
    let c = SessionCarrier::builder(db(), envelope())
        .on_bad_token(OnBadToken::FreshSession)
        .build()
        .unwrap();
    let request = run(c.incoming(None, ["rwsplit_token=not-a-token"]));
    assert!(request.session().token().await.unwrap().is_none());
    let out = request.outgoing().await;
    let headers: Vec<_> = out.headers().collect();
    assert_eq!(headers.len(), 1);
    assert!(headers[0].1.contains("Max-Age=0"), "{headers:?}");
}

#[tokio::test]
async fn an_expired_token_starts_a_fresh_session_whatever_on_bad_token_says() {
    let token: CausalToken = WRITTEN.parse().unwrap();
    let old = envelope().seal_at(&token, SystemTime::now() - Duration::from_secs(7200));
    let request = run(carrier().incoming(Some(&old), []));
    assert!(request.session().token().await.unwrap().is_none());
}

/// (cookie name, cookie path, header name) → which one `build` refuses.
#[rstest]
#[case::defaults("rwsplit_token", "/", "x-rwsplit-token", None)]
#[case::space_in_cookie("my token", "/", "x-t", Some("cookie name"))]
#[case::semicolon_in_cookie("a;b", "/", "x-t", Some("cookie name"))]
#[case::empty_cookie("", "/", "x-t", Some("cookie name"))]
#[case::colon_in_header("t", "/", "x:t", Some("header name"))]
#[case::semicolon_in_path("t", "/a;b", "x-t", Some("cookie path"))]
#[case::newline_in_path("t", "/a\nb", "x-t", Some("cookie path"))]
fn names_that_cannot_travel_in_a_header_are_refused_when_built(
    #[case] cookie: &str,
    #[case] path: &str,
    #[case] header: &str,
    #[case] refused: Option<&str>,
) {
    let built = SessionCarrier::builder(db(), envelope())
        .cookie_name(cookie)
        .cookie_path(path)
        .header_name(header)
        .build();
    match (built, refused) {
        (Ok(_), None) => {}
        (Err(Error::InvalidName { what, .. }), Some(want)) => assert_eq!(what, want),
        (other, want) => panic!("{want:?}: {other:?}"),
    }
}

#[test]
fn the_header_name_is_matched_in_lowercase() {
    let c = SessionCarrier::builder(db(), envelope()).header_name("X-RYW").build().unwrap();
    assert_eq!(c.header_name(), "x-ryw");
}
