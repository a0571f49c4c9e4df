use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use rstest::rstest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::http::Endpoint;
use super::patroni::parse_cluster;
use super::*;

fn fixture(name: &str) -> Vec<Member> {
    let path = format!("{}/src/source/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(&path).unwrap();
    parse_cluster(&body, "http://fixture/cluster").unwrap()
}

fn by_name<'a>(ms: &'a [Member], name: &str) -> &'a Member {
    ms.iter().find(|m| m.name == name).unwrap()
}

#[test]
fn a_healthy_async_cluster() {
    let ms = fixture("cluster_async.json");
    assert_eq!(ms.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["m1", "m2", "m3"]);
    let leader = by_name(&ms, "m1");
    assert_eq!(leader.role, MemberRole::Leader);
    assert_eq!(leader.state, MemberState::Running);
    assert_eq!((leader.lag_bytes, leader.timeline), (None, Some(1)));
    assert_eq!((leader.host.as_str(), leader.port), ("127.0.0.1", 23334));
    let replica = by_name(&ms, "m2");
    assert_eq!((replica.role.clone(), replica.lag_bytes), (MemberRole::Replica, Some(0)));
    assert_eq!(replica.tags, MemberTags::default());
}

#[test]
fn synchronous_mode_names_the_sync_standby() {
    let ms = fixture("cluster_sync.json");
    assert_eq!(by_name(&ms, "m2").role, MemberRole::SyncStandby);
    assert_eq!(by_name(&ms, "m3").role, MemberRole::Replica);
}

#[test]
fn mid_switchover_the_old_leader_is_stopping_without_timeline() {
    let ms = fixture("cluster_switchover.json");
    let old = by_name(&ms, "m1");
    assert_eq!((old.role.clone(), old.state.clone()), (MemberRole::Leader, MemberState::Stopping));
    assert_eq!(old.timeline, None);
    assert!(!old.state.is_up());
}

#[test]
fn tags_are_read() {
    let ms = fixture("cluster_tags.json");
    let tagged = by_name(&ms, "m3");
    assert!(tagged.tags.noloadbalance && tagged.tags.nofailover);
    assert!(!by_name(&ms, "m1").tags.noloadbalance);
}

#[test]
fn a_killed_leader_is_listed_until_its_key_expires_and_then_not() {
    let killed = fixture("cluster_leader_killed.json");
    assert_eq!(by_name(&killed, "m2").role, MemberRole::Leader);
    let later = fixture("cluster_no_leader.json");
    assert_eq!(later.len(), 2);
    assert!(later.iter().all(|m| !m.role.is_leader()));
}

#[test]
fn unknown_lag_strings_and_missing_addresses_are_read_loosely() {
    // From shared/research/patroni.md §7 (a real 3.0.2 snapshot), plus a member that has not
    // registered its address yet and the 3.0.4+ replica state.
    let body = br#"{"members": [
 {"name": "m1", "role": "replica", "state": "stopped", "api_url": "http://127.0.0.1:58001/patroni",
  "host": "127.0.0.1", "port": 55431, "lag": "unknown"},
 {"name": "m2", "role": "leader", "state": "running", "host": "127.0.0.1", "port": 55432, "timeline": 2},
 {"name": "m3", "role": "replica", "state": "streaming", "host": "127.0.0.1", "port": 55433,
  "timeline": 1, "lag": 18952, "tags": {"noloadbalance": "on"}},
 {"name": "m4", "role": "replica", "state": "starting"}], "pause": true}"#;
    let ms = parse_cluster(body, "e").unwrap();
    assert_eq!(ms.len(), 3);
    assert_eq!(by_name(&ms, "m1").lag_bytes, None);
    let m3 = by_name(&ms, "m3");
    assert_eq!((m3.state.clone(), m3.lag_bytes), (MemberState::Streaming, Some(18952)));
    assert!(m3.tags.noloadbalance && m3.state.is_up());
}

#[rstest]
#[case::not_json(&b"<html>"[..])]
#[case::no_members_key(&br#"{"nodes": []}"#[..])]
#[case::members_not_a_list(&br#"{"members": 3}"#[..])]
fn bad_documents_are_errors_naming_the_endpoint(#[case] body: &[u8]) {
    let err = parse_cluster(body, "http://10.9.9.9:8008/cluster").unwrap_err();
    assert!(matches!(err, SourceError::BadJson { .. }), "{err:?}");
    assert!(err.to_string().contains("http://10.9.9.9:8008/cluster"), "{err}");
}

#[test]
fn no_members_is_an_error() {
    let err = parse_cluster(br#"{"members": []}"#, "e").unwrap_err();
    assert!(matches!(err, SourceError::Empty { .. }), "{err:?}");
}

#[rstest]
#[case("http://127.0.0.1:8008", "http://127.0.0.1:8008")]
#[case("http://127.0.0.1:58002/patroni", "http://127.0.0.1:58002")]
#[case("http://db-1", "http://db-1:8008")]
#[case("http://[::1]:9000/", "http://[::1]:9000")]
fn endpoints_parse(#[case] url: &str, #[case] shown: &str) {
    assert_eq!(Endpoint::parse(url, 8008).unwrap().to_string(), shown);
}

#[rstest]
#[case("https://db-1:8008", "https")]
#[case("db-1:8008", "expected http://")]
#[case("http://admin:s3cret@db-1:8008", "credentials")]
#[case("http://db-1:99999", "port")]
#[case("http://:8008", "no host")]
fn bad_endpoints_are_refused_without_echoing_credentials(#[case] url: &str, #[case] why: &str) {
    let err = PatroniSource::new([url]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(why), "{text}");
    assert!(!text.contains("s3cret") && !format!("{err:?}").contains("s3cret"), "{text}");
}

/// A one-shot HTTP server on loopback that answers every connection with `response` (or
/// with nothing, holding the connection, when `None`). Returns its base URL.
async fn server(response: Option<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                match response {
                    Some(r) => {
                        let _ = sock.write_all(&r).await;
                        let _ = sock.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn http_response(status: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.0 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// A port nothing listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn the_source_falls_back_to_the_next_endpoint() {
    let body = std::fs::read(format!(
        "{}/src/source/fixtures/cluster_async.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let good = server(Some(http_response("200 OK", &body))).await;
    let down = closed_port();
    let source = PatroniSource::new([down.as_str(), good.as_str()]).unwrap();
    let ms = source.members().await.unwrap();
    assert_eq!(ms.len(), 3);
}

#[tokio::test]
async fn every_endpoint_down_is_one_error_naming_each() {
    let (a, b) =
        (closed_port(), server(Some(http_response("503 Service Unavailable", b"{}"))).await);
    let source = PatroniSource::new([a.as_str(), b.as_str()]).unwrap();
    let err = source.members().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(&err, SourceError::AllFailed { errors } if errors.len() == 2), "{err:?}");
    assert!(text.contains(&format!("{a}/cluster")) && text.contains("connecting"), "{text}");
    assert!(text.contains(&format!("{b}/cluster answered HTTP 503")), "{text}");
}

#[tokio::test]
async fn a_silent_endpoint_times_out() {
    let url = server(None).await;
    let source = PatroniSource::new([url.as_str()]).unwrap().timeout(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let err = source.members().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let big = vec![b' '; 64 * 1024];
    // Declared too long …
    let declared = server(Some(http_response("200 OK", &big))).await;
    // … and sent without a length, read until close.
    let mut undeclared = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n".to_vec();
    undeclared.extend_from_slice(&big);
    let streamed = server(Some(undeclared)).await;
    for url in [declared, streamed] {
        let source = PatroniSource::new([url.as_str()]).unwrap().max_body(4096);
        let err = source.members().await.unwrap_err();
        let SourceError::AllFailed { errors } = &err else { panic!("{err:?}") };
        assert!(matches!(errors[0], SourceError::TooLarge { limit: 4096, .. }), "{err:?}");
    }
}

#[tokio::test]
async fn bad_json_from_the_server_is_named() {
    let url = server(Some(http_response("200 OK", b"{\"members\": [oops"))).await;
    let err = PatroniSource::new([url.as_str()]).unwrap().members().await.unwrap_err();
    let SourceError::AllFailed { errors } = &err else { panic!("{err:?}") };
    assert!(matches!(errors[0], SourceError::BadJson { .. }), "{err:?}");
}

#[tokio::test]
async fn dns_resolves_localhost() {
    let ms = DnsSource::new("localhost:5432").members().await.unwrap();
    assert!(ms.iter().any(|m| m.host == "127.0.0.1" && m.port == 5432), "{ms:?}");
    assert!(ms.iter().all(|m| m.role == MemberRole::Replica));
    let err = DnsSource::new("no-such-host.invalid:5432").members().await.unwrap_err();
    assert!(err.to_string().contains("no-such-host.invalid:5432"), "{err}");
}

fn m(name: &str, role: MemberRole) -> Member {
    Member::new(name, "10.0.0.1", 5432, role)
}

#[test]
fn diff_pairs_members_by_name() {
    let old =
        [m("a", MemberRole::Leader), m("b", MemberRole::Replica), m("c", MemberRole::Replica)];
    let new =
        [m("a", MemberRole::Replica), m("c", MemberRole::Replica), m("d", MemberRole::Replica)];
    let d = diff(&old, &new);
    assert_eq!(d.added, vec![m("d", MemberRole::Replica)]);
    assert_eq!(d.removed, vec![m("b", MemberRole::Replica)]);
    assert_eq!(d.changed, vec![(m("a", MemberRole::Leader), m("a", MemberRole::Replica))]);
    assert!(diff(&new, &new).is_empty());
    assert_eq!(diff(&[], &new).added.len(), 3);
}

/// A source that answers from a script, then repeats its last answer.
struct Scripted(Mutex<VecDeque<Result<Vec<Member>, SourceError>>>);

impl Scripted {
    fn new(script: Vec<Result<Vec<Member>, SourceError>>) -> Scripted {
        Scripted(Mutex::new(script.into()))
    }
}

impl TopologySource for Scripted {
    async fn members(&self) -> Result<Vec<Member>, SourceError> {
        let mut q = self.0.lock().unwrap();
        let next = q.pop_front().unwrap();
        if q.is_empty() {
            let again = match &next {
                Ok(ms) => Ok(ms.clone()),
                Err(_) => Err(SourceError::Empty { source_name: "script".into() }),
            };
            q.push_back(again);
        }
        next
    }
}

fn down() -> SourceError {
    SourceError::AllFailed { errors: vec![SourceError::Empty { source_name: "x".into() }] }
}

#[tokio::test(start_paused = true)]
async fn watch_publishes_changes_keeps_the_last_good_set_on_errors_and_recovers() {
    let (a, b, c) =
        (m("a", MemberRole::Leader), m("b", MemberRole::Replica), m("c", MemberRole::Replica));
    let script = vec![
        Ok(vec![b.clone(), a.clone()]), // v1: a, b added (sorted)
        Ok(vec![a.clone(), b.clone()]), // same: nothing published
        Err(down()),                    // v2: error, set kept
        Ok(vec![]),                     // v3: empty counts as a failure
        Ok(vec![a.clone(), b.clone()]), // v4: recovered, empty diff
        Ok(vec![a.clone(), c.clone()]), // v5: b removed, c added
    ];
    let w = watch(Scripted::new(script), Duration::from_secs(1));
    let mut rx = w.subscribe();
    let mut seen = Vec::new();
    for _ in 0..5 {
        rx.changed().await.unwrap();
        seen.push(rx.borrow_and_update().clone());
    }
    let names = |s: &MemberSet| s.members().iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    assert_eq!(seen.iter().map(MemberSet::version).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(names(&seen[0]), ["a", "b"]);
    assert_eq!(seen[0].changes().added.len(), 2);
    assert!(seen[1].error().is_some() && names(&seen[1]) == ["a", "b"]);
    assert!(seen[1].changes().is_empty());
    assert_eq!((seen[2].failures(), names(&seen[2])), (2, vec!["a".into(), "b".into()]));
    assert!(matches!(seen[2].error(), Some(SourceError::Empty { .. })));
    assert!(seen[3].error().is_none() && seen[3].changes().is_empty() && seen[3].failures() == 0);
    assert_eq!(seen[4].changes().removed, vec![b]);
    assert_eq!(seen[4].changes().added, vec![c]);
    assert_eq!(names(&seen[4]), ["a", "c"]);
    // Nothing more changes: nothing more is published.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!rx.has_changed().unwrap());
}

#[tokio::test(start_paused = true)]
async fn watch_polls_at_its_interval() {
    let start = tokio::time::Instant::now();
    let script = vec![Ok(vec![m("a", MemberRole::Leader)]), Ok(vec![m("b", MemberRole::Leader)])];
    let w = watch(Scripted::new(script), Duration::from_millis(250));
    let mut rx = w.subscribe();
    rx.changed().await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    rx.changed().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    assert_eq!(w.current().version(), 2);
}
