//! tonic (gRPC) behind `rwsplit-axum`'s `SessionLayer`, on a real cluster whose replicas apply
//! late: tonic's routes served by tonic's own `Server` as an axum router wrapped in the layer,
//! and a tonic client on a new HTTP/2 connection per call. A `Count` that sends the
//! `x-rwsplit-token` metadata entry the `Write` before it got back sees that write; one that
//! sends nothing reads a replica that lacks it. A client interceptor that keeps the last token
//! does the same for every call; a tampered token is refused before the service runs.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{self, HeaderMap, uri::PathAndQuery};
use bytes::{Buf, BufMut};
use rstest::rstest;
use rwsplit_axum::{SessionLayer, SigningKey, TokenEnvelope};
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_testkit::DbKind;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tonic::body::Body;
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::server::NamedService;
use tonic::service::{Interceptor, Routes, interceptor::InterceptedService};
use tonic::transport::{Channel, Server, server::TcpIncoming};
use tonic::{Code, Status};
use tower::{Service, ServiceExt, service_fn};

use crate::support::own_cluster;

const KEY: &str = "the itest key: thirty-two bytes at least";
/// The metadata entry (an HTTP/2 header) the layer reads and writes: its default header name.
const TOKEN: &str = SessionLayer::DEFAULT_HEADER;
const WRITE: &str = "/rwsplit.itest.Notes/Write";
const COUNT: &str = "/rwsplit.itest.Notes/Count";

/// Messages as UTF-8 text: a gRPC codec without protobuf, so without protoc or a build script.
#[derive(Clone, Copy, Debug, Default)]
struct TextCodec;

impl Codec for TextCodec {
    type Encode = String;
    type Decode = String;
    type Encoder = TextCodec;
    type Decoder = TextCodec;

    fn encoder(&mut self) -> TextCodec {
        TextCodec
    }

    fn decoder(&mut self) -> TextCodec {
        TextCodec
    }
}

impl Encoder for TextCodec {
    type Item = String;
    type Error = Status;

    fn encode(&mut self, item: String, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(item.as_bytes());
        Ok(())
    }
}

impl Decoder for TextCodec {
    type Item = String;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<String>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

/// The gRPC service `rwsplit.itest.Notes`, written as tonic-build writes a server (a
/// `NamedService`, and `Grpc::unary` per method) with the text codec. It takes the
/// `RoutedConnection` and knows nothing of sessions.
#[derive(Clone)]
struct Notes {
    db: RoutedConnection,
}

impl NamedService for Notes {
    const NAME: &'static str = "rwsplit.itest.Notes";
}

impl Service<http::Request<Body>> for Notes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let db = self.db.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(TextCodec);
            let response = match req.uri().path() {
                WRITE => {
                    let method = service_fn(move |r: tonic::Request<String>| {
                        write(db.clone(), r.into_inner())
                    });
                    grpc.unary(method, req).await
                }
                COUNT => {
                    let method = service_fn(move |r: tonic::Request<String>| {
                        count(db.clone(), r.into_inner())
                    });
                    grpc.unary(method, req).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(response)
        })
    }
}

/// The SQL placeholder of the first parameter.
fn param(backend: DbBackend) -> &'static str {
    if backend == DbBackend::MySql { "?" } else { "$1" }
}

/// `Write(text)`: inserts a note.
async fn write(db: RoutedConnection, text: String) -> Result<tonic::Response<String>, Status> {
    let backend = db.get_database_backend();
    let sql = format!("INSERT INTO tonic_note (text) VALUES ({})", param(backend));
    db.execute_raw(Statement::from_sql_and_values(backend, sql, [text.into()]))
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(tonic::Response::new("ok".to_owned()))
}

/// `Count(text)`: the number of notes with that text.
async fn count(db: RoutedConnection, text: String) -> Result<tonic::Response<String>, Status> {
    let backend = db.get_database_backend();
    let sql = format!("SELECT count(*) AS n FROM tonic_note WHERE text = {}", param(backend));
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [text.into()]))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .ok_or_else(|| Status::internal("no row"))?;
    let n: i64 = row.try_get("", "n").map_err(|e| Status::internal(e.to_string()))?;
    Ok(tonic::Response::new(n.to_string()))
}

/// Serves the service on 127.0.0.1 (any port) with tonic's `Server`: tonic's routes as an axum
/// router, wrapped in the `SessionLayer`, handed back to tonic as routes.
async fn serve(db: RoutedConnection) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let envelope = TokenEnvelope::signed(SigningKey::new(KEY).unwrap());
    let layer = SessionLayer::builder(db.clone(), envelope).build().unwrap();
    let router = Routes::new(Notes { db }).into_axum_router().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .add_routes(Routes::from(router))
        .serve_with_incoming(TcpIncoming::from(listener));
    (addr, tokio::spawn(async move { server.await.expect("the gRPC server runs") }))
}

/// A new HTTP/2 connection to the server.
async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

/// One unary call on a new connection, with `token` in the request's metadata if given.
async fn call(
    addr: SocketAddr,
    method: &'static str,
    text: &str,
    token: Option<&MetadataValue<Ascii>>,
) -> Result<tonic::Response<String>, Status> {
    let mut grpc = Grpc::new(channel(addr).await);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(text.to_owned());
    if let Some(token) = token {
        req.metadata_mut().insert(TOKEN, token.clone());
    }
    grpc.unary(req, PathAndQuery::from_static(method), TextCodec).await
}

/// The client's side: keeps the last token the server sent and, as an [`Interceptor`], sends
/// it on every call. An interceptor sees requests only, so [`TokenJar::keep`] takes the token
/// from each response's headers (the channel's `map_response` below).
#[derive(Clone, Debug, Default)]
struct TokenJar(Arc<Mutex<Option<MetadataValue<Ascii>>>>);

impl TokenJar {
    fn keep(&self, headers: &HeaderMap) {
        if let Some(token) = headers.get(TOKEN)
            && let Ok(token) = MetadataValue::try_from(token.as_bytes())
        {
            *self.0.lock().unwrap() = Some(token);
        }
    }
}

impl Interceptor for TokenJar {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(token) = self.0.lock().unwrap().clone() {
            req.metadata_mut().insert(TOKEN, token);
        }
        Ok(req)
    }
}

/// One unary call on a new connection through the jar: it sends the last token and keeps the
/// one that comes back.
async fn call_with_jar(
    addr: SocketAddr,
    jar: &TokenJar,
    method: &'static str,
    text: &str,
) -> Result<tonic::Response<String>, Status> {
    let keeper = jar.clone();
    let channel = channel(addr).await.map_response(move |res: http::Response<Body>| {
        keeper.keep(res.headers());
        res
    });
    let mut grpc = Grpc::new(InterceptedService::new(channel, jar.clone()));
    grpc.ready().await.unwrap();
    grpc.unary(tonic::Request::new(text.to_owned()), PathAndQuery::from_static(method), TextCodec)
        .await
}

/// Replicas 300 ms late (MariaDB: `MASTER_DELAY` in whole seconds, 2 s); a write and a count
/// per round, each on a new HTTP/2 connection.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_count_with_the_metadata_token_sees_the_write_before_it(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "tonic", 2).await;
    let tdb = cluster.create_database("tonic").await.unwrap();
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .connect()
        .await
        .unwrap();
    let id = if kind == DbKind::MariaDb {
        "id INT AUTO_INCREMENT PRIMARY KEY"
    } else {
        "id SERIAL PRIMARY KEY"
    };
    db.primary()
        .execute_unprepared(&format!("CREATE TABLE tonic_note ({id}, text VARCHAR(100) NOT NULL)"))
        .await
        .unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    for replica in cluster.replicas() {
        replica.set_apply_delay(Duration::from_millis(300)).await.unwrap();
    }
    let (addr, server) = serve(db.clone()).await;
    let n = |r: Result<tonic::Response<String>, Status>| -> i64 {
        r.unwrap_or_else(|s| panic!("{s:?}")).into_inner().parse().unwrap()
    };

    // By hand: the token from Write's response metadata, sent with Count.
    const ROUNDS: usize = 10;
    let (mut stale, mut stale_without) = (0, 0);
    let mut last = None;
    let mut keys = String::new();
    for i in 0..ROUNDS {
        let text = format!("with-{i}");
        let written = call(addr, WRITE, &text, None).await.unwrap();
        let token = written.metadata().get(TOKEN).expect("a write sends the token").clone();
        if i == 0 {
            let headers = written.metadata().clone().into_headers();
            keys = headers.keys().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
        }
        stale += usize::from(n(call(addr, COUNT, &text, Some(&token)).await) != 1);
        last = Some(token);

        // The control: the same without the token.
        let text = format!("without-{i}");
        call(addr, WRITE, &text, None).await.unwrap();
        stale_without += usize::from(n(call(addr, COUNT, &text, None).await) != 1);
    }
    let ryw = db.stats().read_your_writes();
    eprintln!(
        "{kind}: {ROUNDS} Write→Count pairs, each call on a new HTTP/2 connection: with the \
         `{TOKEN}` metadata {stale} stale, without {stale_without} stale; token reads: {} on \
         replicas, {} on the primary; a Write's response metadata: {keys}",
        ryw.replica_reads, ryw.primary_reads
    );
    assert_eq!(stale, 0, "stale counts with the token in the metadata");
    assert!(stale_without > 0, "the replicas lag: without the token some counts are stale");
    // A Count's token is a position (read with it on a replica or the primary), or — for a
    // Write whose position was left unread while no replica could serve a read — the primary
    // by name (read there: a last-node read).
    assert!(
        ryw.replica_reads + ryw.primary_reads + ryw.last_node_reads >= ROUNDS as u64,
        "every Count used its token: {ryw:?}"
    );
    assert!(keys.contains("set-cookie"), "the layer's Set-Cookie rides along: {keys}");

    // Through a client interceptor that keeps the last token: nothing by hand.
    const JAR_ROUNDS: usize = 5;
    let jar = TokenJar::default();
    let mut stale_jar = 0;
    for i in 0..JAR_ROUNDS {
        let text = format!("jar-{i}");
        call_with_jar(addr, &jar, WRITE, &text).await.unwrap();
        assert!(jar.0.lock().unwrap().is_some(), "the jar kept the write's token");
        stale_jar += usize::from(n(call_with_jar(addr, &jar, COUNT, &text).await) != 1);
    }
    eprintln!("{kind}: {JAR_ROUNDS} Write→Count pairs through the interceptor: {stale_jar} stale");
    assert_eq!(stale_jar, 0, "stale counts through the interceptor");

    // A tampered token (v2.<key id>.<issued>.<token>.<tag>, the token's first character
    // changed): the layer answers HTTP 400 with a text body before the service runs, which
    // tonic's client reports as INTERNAL ("invalid compression flag … 400 Bad Request"), without
    // the layer's reason.
    let last = last.unwrap();
    let mut fields: Vec<String> = last.to_str().unwrap().split('.').map(str::to_owned).collect();
    let flipped = if fields[3].starts_with('c') { "d" } else { "c" };
    fields[3].replace_range(..1, flipped);
    let tampered = MetadataValue::try_from(fields.join(".")).unwrap();
    let statements = |db: &RoutedConnection| {
        let s = db.stats();
        s.replica_reads() + s.primary().reads() + s.primary().writes()
    };
    let before = statements(&db);
    let refused = call(addr, COUNT, "with-0", Some(&tampered)).await.unwrap_err();
    eprintln!("{kind}: a tampered token: {:?} {:?}", refused.code(), refused.message());
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("signature does not verify"), "{refused:?}");
    assert_eq!(statements(&db), before, "a refused call runs no statement");

    server.abort();
    for replica in cluster.replicas() {
        replica.clear_apply_delay().await.unwrap();
    }
}
