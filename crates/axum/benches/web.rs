//! The web path end to end: an axum app over plain SeaORM, over `RoutedConnection`,
//! and over `RoutedConnection` with the `rwsplit-axum` `SessionLayer`, driven by HTTP/1.1
//! keep-alive clients that keep their cookies, on a real replicated cluster.
//!
//! ```sh
//! cargo xtask bench web                                  # PostgreSQL, and MariaDB if installed
//! cargo xtask bench web -- --db postgres --requests 4000 --late-ms 200 --json web.json --gate
//! ```
//!
//! Per database (`--db postgres|mariadb|both`, default both: MariaDB only if `mariadbd` is
//! installed) it starts a primary with two replicas through the testkit (native processes;
//! PostgreSQL with `pg_stat_statements` preloaded, MariaDB with `performance_schema` on), seeds
//! `SEED` rows, and serves one axum app three ways in this process, each on its own
//! `127.0.0.1` port (tokio multi-thread runtime): `GET /items/{id}` (one primary-key read,
//! `find_by_id`; 404 if missing) and `POST /items` (one insert; the body is the new id), the
//! same handlers generic over the connection:
//!
//! - `plain`: a plain `sea_orm::DatabaseConnection` to the primary;
//! - `routed`: `RoutedConnection::builder().primary(..).replicas(..).connect()`, defaults;
//! - `routed+layer`: another such `RoutedConnection` under `SessionLayer` (a signed
//!   `TokenEnvelope`, `.secure_cookie(false)`).
//!
//! Clients: `CLIENTS` per variant, each one TCP connection (hyper's HTTP/1.1 client) sending
//! its requests one after the other, keeping every `Set-Cookie` it gets (a `Max-Age=0` one
//! removes the cookie) and sending the jar back. Workloads: `read-only` (GETs of seeded rows,
//! spread over the ids) and `mix` (per client, 1 POST then 9 GETs that alternate between its own
//! last-written id and other ids: half another client's last write, half a seeded row).
//! `--requests N` (default 4,000) per variant per workload: after a warm-up of
//! `WARMUP_PER_CLIENT` requests per client, the variants run interleaved, `ROUNDS` rounds of a
//! quarter each, the round's first variant rotating. All of it twice: replicas at their natural
//! lag, then replicas applying `--late-ms` late (default 200; 0 skips it), measured once both
//! routed connections' monitors see them so (writes go on meanwhile). PostgreSQL:
//! `recovery_min_apply_delay`. MariaDB's `MASTER_DELAY` is whole seconds: its late case asks
//! for `--late-ms` rounded up to whole seconds, at least 1 s, which the testkit turns into a
//! hold of 1–2 s (1 s asked), and the table says so.
//!
//! Per (lag, workload, variant) one row:
//!
//! - p50 and p99 latency per request, client side (request sent to body read), and req/s (all
//!   requests over the wall time of the variant's rounds); the p50 against plain's, as a ratio
//!   (printed, never gated);
//! - primary statements per request: counted by the primary itself over the variant's rounds
//!   (a snapshot before and after each round): PostgreSQL `pg_stat_statements`, the sum of
//!   `calls` over every text (the router's monitor, position and feed statements included)
//!   except the bench's own counting queries (texts naming `pg_stat_statements`); MariaDB the
//!   `Questions` status delta minus the bench's own counting statements (measured before any
//!   app connection exists: back-to-back snapshots). The routed variants' monitor keeps running
//!   while the other variants' rounds run, so what it sends then counts to them: a few
//!   statements per thousand requests on `plain`, and the same leak from the layer's rounds;
//! - reads on replicas: the app's reads as each node counted them, on the replicas over all
//!   nodes. PostgreSQL: `pg_stat_statements` calls of the `SELECT … FROM "web_item"` text.
//!   MariaDB: `performance_schema`'s row fetches through `web_item`'s primary key
//!   (`table_io_waits_summary_by_index_usage.COUNT_FETCH`): one per primary-key lookup, found or
//!   not, and nothing else reads that table (its statement digests do not see the prepared
//!   executions sqlx sends, and `Com_select` counts the monitor's `SELECT`s too);
//! - for the mix: the write requests' p50 and its ratio to plain's in the same run (printed,
//!   never gated), and round trips on the primary per write request: the write, plus the
//!   position reads after writes the routed variant's own counters count
//!   (`positions_captured`, the warm-up's writes included) per write. The position reads
//!   that bound a read which ran on the primary (`floors_read`: its scope's next read may
//!   then wait on a replica instead of reading there too) are a cost of that read, printed
//!   apart and counted in the primary statements per request;
//! - responses with a `Set-Cookie` (count and share);
//! - stale reads: a GET of the client's own last-written id that answered 404; time-travel
//!   reads: any other GET that answered 404 for an id the client had already seen exist (a 200
//!   for it earlier, or its own earlier write). Both must be 0 on the routed variants;
//! - errors: answers other than 200 and 404 (a failed or timed-out exchange ends the run).
//!
//! On stderr, per case: the routed variants' read-your-writes counters (token reads on replicas,
//! on the primary, on the last node; catch-up waits and timeouts; positions read after writes,
//! and to bound reads on the primary), and for the mix each variant's p50 of the write, of the
//! read right after it and of the other reads, and where a write request's time goes: the
//! router on the write (routed's write p50 against
//! plain's), the wait for the position and the token (the layer's against routed's), beside
//! the position read's own time (`POSITION_SAMPLES` reads timed one at a time after the run)
//! and one round trip at the run's load (`RoundTrips`: a replica's `SELECT 1` timed every
//! `ROUND_TRIP_EVERY` during the mix), and what the wait has beyond that round trip (the
//! token, the cookie, hand-offs between tasks); and the replicas' statements beyond the app's
//! reads per write request, each variant's and the routers' over plain's (the monitors' probes
//! and position feeds, which sample a replica until it has a write).
//!
//! `--json PATH` writes every row. `--gate` exits non-zero, naming each failure, unless for
//! each database run (with `--db both`, a MariaDB that is not installed is a failure): at
//! natural lag, read-only `routed+layer` ≤ 0.005 primary statements per request and a
//! `Set-Cookie` on ≤ 1 % of responses; mix `routed+layer` ≤ 0.30 primary statements per
//! request and ≥ 80 % of reads on replicas; and in every case run (natural and late) 0 stale
//! and 0 time-travel reads on both routed variants, and 0 errors anywhere.
//!
//! Bounded: each exchange has `EXCHANGE_TIMEOUT`, the whole run `RUN_LIMIT`; only 127.0.0.1
//! traffic; the cluster is stopped at the end, on error too.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rwsplit_axum::{SessionLayer, SigningKey, TokenEnvelope};
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_testkit::{Cluster, DbKind, Node};
use sea_orm::sqlx::{self, Connection, Row};
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder, Set};

// The derive macros generate public items; this module is private to the bench.
#[allow(unreachable_pub, missing_docs)]
mod item {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "web_item")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const CLIENTS: usize = 4;
const ROUNDS: usize = 4;
const SEED: usize = 1000;
const WARMUP_PER_CLIENT: usize = 50;
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
const RUN_LIMIT: Duration = Duration::from_secs(15 * 60);
const VARIANTS: [Variant; 3] = [Variant::Plain, Variant::Routed, Variant::Layer];
const WORKLOADS: [Workload; 2] = [Workload::ReadOnly, Workload::Mix];
/// The app's read, as PostgreSQL's `pg_stat_statements` shows its text.
const APP_READ_PG: &str = "SELECT%FROM \"web_item\"%";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Plain,
    Routed,
    Layer,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Routed => "routed",
            Variant::Layer => "routed+layer",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    ReadOnly,
    Mix,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::ReadOnly => "read-only",
            Workload::Mix => "mix",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The app.

async fn show<C: ConnectionTrait>(State(db): State<C>, Path(id): Path<i32>) -> Response {
    match item::Entity::find_by_id(id).one(&db).await {
        Ok(Some(m)) => m.name.into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn create<C: ConnectionTrait>(State(db): State<C>) -> Response {
    let row = item::ActiveModel { name: Set("web".to_owned()), ..Default::default() };
    match item::Entity::insert(row).exec(&db).await {
        Ok(r) => r.last_insert_id.to_string().into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn app<C>(db: C) -> Router
where
    C: ConnectionTrait + Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/items/{id}", get(show::<C>))
        .route("/items", post(create::<C>))
        .with_state(db)
}

/// One variant's server on `127.0.0.1:<ephemeral>`, aborted on drop.
struct Server {
    port: u16,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(router: Router) -> Res<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(axum::serve(listener, router).into_future());
        Ok(Server { port, task })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// The clients.

/// What one variant's rounds counted (warm-up excluded).
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    /// The mix's latencies by kind: the write, the first read after it (the client's own
    /// write), the other reads.
    by_kind: [Vec<Duration>; 3],
    requests: u64,
    gets: u64,
    posts: u64,
    /// The writes of the warm-up too: what the router's own counters (positions read) cover.
    warmup_posts: u64,
    set_cookie: u64,
    stale: u64,
    time_travel: u64,
    errors: u64,
    /// Wall time of the rounds.
    wall: Duration,
    /// Statements on the primary, the bench's own taken out.
    primary_statements: i64,
    /// The app's reads as the servers counted them: on the replicas, on the primary.
    replica_reads: i64,
    primary_reads: i64,
    /// Every other statement the replicas ran, the bench's own counting taken out: the
    /// routers' monitors (probes, position feeds) and the round-trip sampler.
    replica_other: i64,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.latencies.extend(o.latencies);
        for (mine, theirs) in self.by_kind.iter_mut().zip(o.by_kind) {
            mine.extend(theirs);
        }
        self.requests += o.requests;
        self.gets += o.gets;
        self.posts += o.posts;
        self.set_cookie += o.set_cookie;
        self.stale += o.stale;
        self.time_travel += o.time_travel;
        self.errors += o.errors;
    }
}

/// One keep-alive HTTP/1.1 client: one TCP connection, one request at a time, a cookie jar.
struct Client {
    me: usize,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
    jar: BTreeMap<String, String>,
    rng: u64,
    /// Requests made so far (warm-up included): the position in the 1 + 9 pattern.
    step: u64,
    own_last: Option<i32>,
    /// Ids this client has seen exist: a 200 for them, or its own write.
    seen: HashSet<i32>,
    /// Every client's (of this variant) last write, 0 before its first.
    recent: Arc<[AtomicI32; CLIENTS]>,
    seeded: (i32, i32),
}

impl Drop for Client {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// splitmix64: a deterministic spread of ids per client.
fn next(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Client {
    async fn connect(
        port: u16,
        me: usize,
        seed: u64,
        recent: Arc<[AtomicI32; CLIENTS]>,
        seeded: (i32, i32),
    ) -> Res<Client> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client {
            me,
            sender,
            driver,
            jar: BTreeMap::new(),
            rng: seed,
            step: 0,
            own_last: None,
            seen: HashSet::new(),
            recent,
            seeded,
        })
    }

    fn seeded_id(&mut self) -> i32 {
        let (lo, hi) = self.seeded;
        let span = u64::from((hi - lo + 1).unsigned_abs());
        lo + i32::try_from(next(&mut self.rng) % span).unwrap_or(0)
    }

    /// One exchange: status, body, whether a `Set-Cookie` came (the jar updated).
    async fn exchange(&mut self, post: bool, path: &str) -> Res<(StatusCode, Bytes, bool)> {
        let mut req = hyper::Request::builder()
            .method(if post { hyper::Method::POST } else { hyper::Method::GET })
            .uri(path)
            .header(hyper::header::HOST, "127.0.0.1");
        if !self.jar.is_empty() {
            let cookie = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
            req = req.header(hyper::header::COOKIE, cookie.join("; "));
        }
        let req = req.body(Full::new(Bytes::new()))?;
        let run = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            let status = resp.status();
            let mut set = false;
            for v in resp.headers().get_all(hyper::header::SET_COOKIE) {
                set = true;
                let v = v.to_str()?;
                let mut attrs = v.split(';').map(str::trim);
                let Some((name, value)) = attrs.next().and_then(|nv| nv.split_once('=')) else {
                    continue;
                };
                let expired =
                    value.is_empty() || attrs.any(|a| a.eq_ignore_ascii_case("max-age=0"));
                if expired {
                    self.jar.remove(name);
                } else {
                    self.jar.insert(name.to_owned(), value.to_owned());
                }
            }
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body, set))
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer to {path} in {EXCHANGE_TIMEOUT:?}").into()),
        }
    }

    /// `n` requests of `workload`, one after the other.
    async fn run(&mut self, workload: Workload, n: usize, deadline: Instant) -> Res<Tally> {
        let mut t = Tally::default();
        for _ in 0..n {
            if Instant::now() > deadline {
                return Err(format!("the run took longer than {RUN_LIMIT:?}").into());
            }
            let pos = self.step % 10;
            self.step += 1;
            let post = workload == Workload::Mix && pos == 0;
            // What a GET reads, and whether that id is the client's own last write.
            let (id, own) = match workload {
                _ if post => (0, false),
                Workload::ReadOnly => (self.seeded_id(), false),
                Workload::Mix if pos % 2 == 1 && self.own_last.is_some() => {
                    (self.own_last.unwrap_or(0), true)
                }
                Workload::Mix => {
                    let other = usize::try_from(next(&mut self.rng) % CLIENTS as u64).unwrap_or(0);
                    let theirs = self.recent[other].load(Ordering::Relaxed);
                    if (pos / 2).is_multiple_of(2) && other != self.me && theirs != 0 {
                        (theirs, false)
                    } else {
                        (self.seeded_id(), false)
                    }
                }
            };
            let path = if post { "/items".to_owned() } else { format!("/items/{id}") };
            let started = Instant::now();
            let (status, body, set) = self.exchange(post, &path).await?;
            let took = started.elapsed();
            t.latencies.push(took);
            if workload == Workload::Mix {
                t.by_kind[usize::from(pos > 0) + usize::from(pos > 1)].push(took);
            }
            t.requests += 1;
            t.set_cookie += u64::from(set);
            if post {
                t.posts += 1;
                let written = std::str::from_utf8(&body).ok().and_then(|b| b.parse::<i32>().ok());
                match (status, written) {
                    (StatusCode::OK, Some(w)) => {
                        if let Some(previous) = self.own_last.replace(w) {
                            self.seen.insert(previous);
                        }
                        self.recent[self.me].store(w, Ordering::Relaxed);
                    }
                    _ => t.errors += 1,
                }
                continue;
            }
            t.gets += 1;
            match status {
                StatusCode::OK => {
                    self.seen.insert(id);
                }
                StatusCode::NOT_FOUND if own => t.stale += 1,
                StatusCode::NOT_FOUND if self.seen.contains(&id) => t.time_travel += 1,
                StatusCode::NOT_FOUND => {}
                _ => t.errors += 1,
            }
        }
        Ok(t)
    }
}

/// `CLIENTS` clients of one variant, `per_client` requests each, at once.
async fn round(
    clients: &mut Vec<Client>,
    workload: Workload,
    per_client: usize,
    deadline: Instant,
) -> Res<Tally> {
    let tasks: Vec<_> = clients
        .drain(..)
        .map(|mut c| {
            tokio::spawn(async move {
                let t = c.run(workload, per_client, deadline).await;
                (c, t)
            })
        })
        .collect();
    let mut total = Tally::default();
    let mut first_error = None;
    for task in tasks {
        let (c, t) = task.await?;
        clients.push(c);
        match t {
            Ok(t) => total.add(t),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    clients.sort_by_key(|c| c.me);
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

// ---------------------------------------------------------------------------------------------
// The servers' own counters.

enum CounterConn {
    Pg(sqlx::PgConnection),
    Maria(sqlx::MySqlConnection),
}

/// One node's counters: every statement, and the app's reads.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    all: i64,
    app_reads: i64,
}

/// What the servers ran between two snapshots ([`Counters::delta`]).
struct Delta {
    primary: i64,
    replica_reads: i64,
    primary_reads: i64,
    replica_other: i64,
}

/// Superuser connections to every node (primary first), reading their statement counters.
struct Counters {
    conns: Vec<CounterConn>,
    /// The bench's own statements one snapshot adds to a node's `all` (measured).
    own: Vec<i64>,
}

impl Counters {
    async fn open(cluster: &Cluster) -> Res<Counters> {
        let mut conns = Vec::new();
        for (i, node) in cluster.nodes().iter().enumerate() {
            conns.push(match node.db() {
                DbKind::MariaDb => CounterConn::Maria(
                    sqlx::MySqlConnection::connect(&format!(
                        "mysql://root@127.0.0.1:{}/mysql",
                        node.port()
                    ))
                    .await?,
                ),
                _ => CounterConn::Pg(pg_counter(node, i == 0).await?),
            });
        }
        let mut counters = Counters { own: vec![0; conns.len()], conns };
        // Nothing else talks to the servers yet: what back-to-back snapshots count is the
        // bench's own. The smallest of a few deltas, per node.
        let mut own = vec![i64::MAX; counters.conns.len()];
        let mut before = counters.snapshot().await?;
        for _ in 0..5 {
            let after = counters.snapshot().await?;
            for (o, (a, b)) in own.iter_mut().zip(after.iter().zip(&before)) {
                *o = (*o).min(a.all - b.all);
            }
            before = after;
        }
        counters.own = own;
        Ok(counters)
    }

    async fn snapshot(&mut self) -> Res<Vec<Sample>> {
        let mut out = Vec::with_capacity(self.conns.len());
        for c in &mut self.conns {
            out.push(match c {
                CounterConn::Pg(c) => {
                    let row = sqlx::query(
                        "SELECT coalesce(sum(calls), 0)::bigint AS all_, \
                                coalesce(sum(calls) FILTER (WHERE query LIKE $1), 0)::bigint AS reads \
                         FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'",
                    )
                    .bind(APP_READ_PG)
                    .fetch_one(&mut *c)
                    .await?;
                    Sample { all: row.try_get("all_")?, app_reads: row.try_get("reads")? }
                }
                CounterConn::Maria(c) => {
                    let all: i64 = sqlx::query(
                        "SELECT CAST(VARIABLE_VALUE AS SIGNED) AS n FROM information_schema.GLOBAL_STATUS \
                         WHERE VARIABLE_NAME = 'QUESTIONS'",
                    )
                    .fetch_one(&mut *c)
                    .await?
                    .try_get("n")?;
                    let app_reads: i64 = sqlx::query(
                        "SELECT CAST(COALESCE(SUM(COUNT_FETCH), 0) AS SIGNED) AS n \
                         FROM performance_schema.table_io_waits_summary_by_index_usage \
                         WHERE OBJECT_NAME = 'web_item' AND INDEX_NAME = 'PRIMARY'",
                    )
                    .fetch_one(&mut *c)
                    .await?
                    .try_get("n")?;
                    Sample { all, app_reads }
                }
            });
        }
        Ok(out)
    }

    /// What happened between two snapshots: primary statements (the bench's own taken out),
    /// app reads on the replicas, app reads on the primary, and the replicas' other statements
    /// (the bench's own taken out).
    fn delta(&self, before: &[Sample], after: &[Sample]) -> Delta {
        let d = |i: usize| (after[i].all - before[i].all, after[i].app_reads - before[i].app_reads);
        let (primary_all, primary_reads) = d(0);
        let replica_reads = (1..after.len()).map(|i| d(i).1).sum();
        let replica_other =
            (1..after.len()).map(|i| d(i).0 - self.own[i] - d(i).1).sum::<i64>().max(0);
        Delta { primary: primary_all - self.own[0], replica_reads, primary_reads, replica_other }
    }
}

async fn pg_counter(node: &Node, primary: bool) -> Res<sqlx::PgConnection> {
    let mut conn = sqlx::PgConnection::connect(&node.url()).await?;
    if primary {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&mut conn).await?;
        return Ok(conn);
    }
    // Replayed from the primary (the primary's counter is opened first).
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlx::query("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        .fetch_optional(&mut conn)
        .await?
        .is_none()
    {
        if Instant::now() > deadline {
            return Err("pg_stat_statements never reached a replica".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(conn)
}

// ---------------------------------------------------------------------------------------------
// One database.

struct Args {
    dbs: Vec<DbKind>,
    requests: usize,
    late_ms: u64,
    json: Option<PathBuf>,
    gate: bool,
}

/// One printed row.
#[derive(Debug)]
struct RowOut {
    db: DbKind,
    /// `natural`, or the late case's description.
    lag: String,
    late: bool,
    workload: Workload,
    variant: Variant,
    tally: Tally,
    p50: Duration,
    p99: Duration,
    p50_ratio: f64,
    /// The mix's write requests: their p50, and it against plain's in the same run.
    write_p50: Option<(Duration, f64)>,
    /// The router's own count of position reads (a round trip on the primary each) per write
    /// request, the warm-up's included (routed variants).
    positions_per_write: Option<f64>,
    /// The router's own count of position reads that bounded a read on the primary (routed
    /// variants; the warm-up's included): a cost of those reads, not of the writes.
    floors_read: Option<u64>,
}

impl RowOut {
    fn req_per_s(&self) -> f64 {
        self.tally.requests as f64 / self.tally.wall.as_secs_f64().max(1e-9)
    }
    fn primary_per_request(&self) -> f64 {
        self.tally.primary_statements as f64 / self.tally.requests.max(1) as f64
    }
    fn replica_share(&self) -> f64 {
        let reads = self.tally.replica_reads + self.tally.primary_reads;
        self.tally.replica_reads as f64 / reads.max(1) as f64
    }
    fn set_cookie_share(&self) -> f64 {
        self.tally.set_cookie as f64 / self.tally.requests.max(1) as f64
    }
    /// Round trips on the primary per write request: the write, and its position reads.
    fn write_round_trips(&self) -> Option<f64> {
        (self.tally.posts > 0).then(|| 1.0 + self.positions_per_write.unwrap_or(0.0))
    }
    fn json(&self) -> serde_json::Value {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        serde_json::json!({
            "db": self.db.to_string(),
            "lag": self.lag,
            "late": self.late,
            "workload": self.workload.name(),
            "variant": self.variant.name(),
            "requests": self.tally.requests,
            "gets": self.tally.gets,
            "posts": self.tally.posts,
            "p50_ms": ms(self.p50),
            "p99_ms": ms(self.p99),
            "p50_ratio_to_plain": self.p50_ratio,
            "write_p50_ms": self.write_p50.map(|(d, _)| ms(d)),
            "write_p50_ratio_to_plain": self.write_p50.map(|(_, r)| r),
            "positions_per_write": self.positions_per_write,
            "floors_read": self.floors_read,
            "write_round_trips": self.write_round_trips(),
            "req_per_s": self.req_per_s(),
            "primary_statements": self.tally.primary_statements,
            "primary_statements_per_request": self.primary_per_request(),
            "app_reads_on_replicas": self.tally.replica_reads,
            "app_reads_on_primary": self.tally.primary_reads,
            "replica_other_statements": self.tally.replica_other,
            "replica_share": self.replica_share(),
            "set_cookie": self.tally.set_cookie,
            "set_cookie_share": self.set_cookie_share(),
            "stale": self.tally.stale,
            "time_travel": self.tally.time_travel,
            "errors": self.tally.errors,
        })
    }
}

/// Position reads [`position_round_trip`] times.
const POSITION_SAMPLES: usize = 300;

/// The p50 of `POSITION_SAMPLES` position reads on the primary, one at a time on a plain
/// connection: the round trip a write's position costs (the router reads it with these
/// functions: PostgreSQL's WAL insert position, MariaDB's binlog GTID position).
async fn position_round_trip(plain: &sea_orm::DatabaseConnection, db: DbKind) -> Res<Duration> {
    let sql = match db {
        DbKind::MariaDb => "SELECT @@global.gtid_binlog_pos AS pos",
        _ => "SELECT pg_current_wal_insert_lsn()::text AS lsn",
    };
    let mut took = Vec::with_capacity(POSITION_SAMPLES);
    for _ in 0..POSITION_SAMPLES {
        let started = Instant::now();
        plain
            .query_one_raw(sea_orm::Statement::from_string(plain.get_database_backend(), sql))
            .await?;
        took.push(started.elapsed());
    }
    took.sort();
    Ok(percentile(&took, 500))
}

/// How often [`RoundTrips`] times one.
const ROUND_TRIP_EVERY: Duration = Duration::from_millis(5);

/// Round trips timed while a case runs, one every [`ROUND_TRIP_EVERY`]: `SELECT 1` on a
/// replica, on a connection of its own (no pool, no ping: one round trip each), so that a
/// round trip at the load the case puts on the machine and its servers stands beside the
/// write's figures. On a replica, not the primary, whose statement counts the report gates
/// (nothing counts a replica's `SELECT 1`).
struct RoundTrips {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Res<Vec<Duration>>>,
}

impl RoundTrips {
    async fn start(node: &Node) -> Res<RoundTrips> {
        let mut conn = match node.db() {
            DbKind::MariaDb => CounterConn::Maria(
                sqlx::MySqlConnection::connect(&format!(
                    "mysql://root@127.0.0.1:{}/mysql",
                    node.port()
                ))
                .await?,
            ),
            _ => CounterConn::Pg(sqlx::PgConnection::connect(&node.url()).await?),
        };
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut took = Vec::new();
            let mut every = tokio::time::interval(ROUND_TRIP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = every.tick() => {}
                }
                let started = Instant::now();
                match &mut conn {
                    CounterConn::Pg(c) => {
                        sqlx::query("SELECT 1").execute(&mut *c).await?;
                    }
                    CounterConn::Maria(c) => {
                        sqlx::query("SELECT 1").execute(&mut *c).await?;
                    }
                }
                took.push(started.elapsed());
            }
            Ok(took)
        });
        Ok(RoundTrips { stop, task })
    }

    /// Stops, and the p50 of the round trips timed (`None`: none was).
    async fn p50(self) -> Res<Option<Duration>> {
        let _ = self.stop.send(());
        let mut took = self.task.await.map_err(|e| e.to_string())??;
        took.sort();
        Ok((!took.is_empty()).then(|| percentile(&took, 500)))
    }
}

/// The mean of a mix's write requests, if it had any.
fn write_mean(t: &Tally) -> Option<Duration> {
    let n = u32::try_from(t.by_kind[0].len()).ok().filter(|n| *n > 0)?;
    Some(t.by_kind[0].iter().sum::<Duration>() / n)
}

/// The mean time of the position reads counted between two of a connection's read-your-writes
/// counters (zero if none was).
fn position_read_mean(
    before: &rwsplit_sea_orm::ReadYourWrites,
    after: &rwsplit_sea_orm::ReadYourWrites,
) -> Duration {
    let n = after.positions_captured - before.positions_captured;
    let took = after.position_read_time.saturating_sub(before.position_read_time);
    u32::try_from(n).ok().filter(|n| *n > 0).map_or(Duration::ZERO, |n| took / n)
}

/// The p50 of a mix's write requests (sorted by `run_case`), if it had any.
fn write_p50(t: &Tally) -> Option<Duration> {
    (!t.by_kind[0].is_empty()).then(|| percentile(&t.by_kind[0], 500))
}

fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) * per_mille / 1000).min(sorted.len() - 1)]
}

fn print_header() {
    println!(
        "| db | replicas | workload | variant | p50 | p99 | req/s | p50 / plain | write p50 (/ plain) | round trips per write | primary statements per request | reads on replicas | Set-Cookie | stale | time-travel | errors |"
    );
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
}

fn print_row(r: &RowOut) {
    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
    println!(
        "| {} | {} | {} | {} | {} | {} | {:.0} | ×{:.2} | {} | {} | {:.3} | {:.1} % | {} ({:.1} %) | {} | {} | {} |",
        r.db,
        r.lag,
        r.workload.name(),
        r.variant.name(),
        ms(r.p50),
        ms(r.p99),
        r.req_per_s(),
        r.p50_ratio,
        r.write_p50.map_or("–".to_owned(), |(d, x)| format!("{} (×{x:.2})", ms(d))),
        r.write_round_trips().map_or("–".to_owned(), |n| format!("{n:.2}")),
        r.primary_per_request(),
        100.0 * r.replica_share(),
        r.tally.set_cookie,
        100.0 * r.set_cookie_share(),
        r.tally.stale,
        r.tally.time_travel,
        r.tally.errors,
    );
}

/// Starts `db`'s cluster, runs every case on it, stops it (on error too).
async fn run_db(db: DbKind, args: &Args, deadline: Instant) -> Res<Vec<RowOut>> {
    let mut builder = Cluster::builder().db(db).replicas(2).name("bench-web");
    builder = match db {
        DbKind::MariaDb => builder.setting("performance_schema", "ON"),
        _ => builder.setting("shared_preload_libraries", "pg_stat_statements"),
    };
    let cluster = builder.start().await?;
    let result = on_cluster(&cluster, db, args, deadline).await;
    // The app's pools and servers are gone by now (dropped inside); the test database is
    // dropped there too.
    let stopped = cluster.stop();
    let rows = result?;
    stopped?;
    Ok(rows)
}

async fn on_cluster(
    cluster: &Cluster,
    db: DbKind,
    args: &Args,
    deadline: Instant,
) -> Res<Vec<RowOut>> {
    let mut counters = Counters::open(cluster).await?;
    eprintln!("web: {db}: the bench's own statements per snapshot, per node: {:?}", counters.own);
    let tdb = cluster.create_database("web").await?;
    let setup = sea_orm::Database::connect(tdb.primary_url()).await?;
    setup
        .execute_unprepared(match db {
            DbKind::MariaDb => {
                "CREATE TABLE web_item (id int AUTO_INCREMENT PRIMARY KEY, name varchar(64) NOT NULL)"
            }
            _ => "CREATE TABLE web_item (id serial PRIMARY KEY, name text NOT NULL)",
        })
        .await?;
    let values = vec!["('seed')"; SEED].join(", ");
    setup.execute_unprepared(&format!("INSERT INTO web_item (name) VALUES {values}")).await?;
    let first = item::Entity::find().order_by_asc(item::Column::Id).one(&setup).await?;
    let last = item::Entity::find().order_by_desc(item::Column::Id).one(&setup).await?;
    let (Some(first), Some(last)) = (first, last) else {
        return Err("the seeded rows are missing".into());
    };
    let seeded = (first.id, last.id);
    setup.close().await?;
    cluster.wait_caught_up(0, Duration::from_secs(30)).await?;

    let plain = sea_orm::Database::connect(tdb.primary_url()).await?;
    let routed =
        RoutedConnection::builder().primary(tdb.primary_url()).replicas(tdb.replica_urls());
    let routed = routed.connect().await?;
    let layered =
        RoutedConnection::builder().primary(tdb.primary_url()).replicas(tdb.replica_urls());
    let layered = layered.connect().await?;
    let key = SigningKey::new(b"the web bench's signing key, 32 bytes or more")?;
    let envelope = TokenEnvelope::signed(key).max_age(Duration::from_secs(600));
    let layer = SessionLayer::builder(layered.clone(), envelope).secure_cookie(false).build()?;
    let servers = [
        Server::start(app(plain.clone())).await?,
        Server::start(app(routed.clone())).await?,
        Server::start(app(layered.clone()).layer(layer)).await?,
    ];
    let ports = servers.each_ref().map(|s| s.port);

    let mut rows = Vec::new();
    let mut cases = vec![(String::from("natural lag"), false)];
    if args.late_ms > 0 {
        cases.push((
            match db {
                DbKind::MariaDb => format!(
                    "{} s late (MASTER_DELAY: whole seconds; held 1–2 s past that)",
                    args.late_ms.div_ceil(1000).max(1)
                ),
                _ => format!("{} ms late", args.late_ms),
            },
            true,
        ));
    }
    let mut failed = None;
    for (lag, late) in cases {
        if late {
            let delay = match db {
                DbKind::MariaDb => Duration::from_secs(args.late_ms.div_ceil(1000).max(1)),
                _ => Duration::from_millis(args.late_ms),
            };
            for r in cluster.replicas() {
                r.set_apply_delay(delay).await?;
            }
            // The case measures replicas known to be late: writes go on (as the application's
            // would) until both connections' monitors see every replica further behind than a
            // read waits (as the router judges it: the server's figure, else the monitor's
            // estimate), as it stands after the first second of real lag.
            let started = Instant::now();
            // Both connections wait the default catch-up wait.
            let max = Duration::from_millis(10);
            let late_seen = |c: &RoutedConnection| {
                c.stats().replicas().iter().all(|r| {
                    let lag = r.lag();
                    lag.reported_time().or(lag.time()).is_some_and(|t| t > max)
                })
            };
            while !(late_seen(&routed) && late_seen(&layered)) {
                if started.elapsed() > Duration::from_secs(30) {
                    return Err(format!(
                        "the monitors did not see the replicas {lag} within 30 s: {:?}",
                        layered.stats()
                    )
                    .into());
                }
                plain.execute_unprepared("INSERT INTO web_item (name) VALUES ('late')").await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            eprintln!(
                "web: {db}: the monitors saw the replicas {lag} after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        for workload in WORKLOADS {
            let before = [routed.stats().read_your_writes(), layered.stats().read_your_writes()];
            let sampler = match (workload, cluster.replicas().first()) {
                (Workload::Mix, Some(r)) => Some(RoundTrips::start(r).await?),
                _ => None,
            };
            let ran = run_case(&mut counters, ports, workload, seeded, args, deadline).await;
            let loaded_rtt = match sampler {
                Some(s) => s.p50().await?,
                None => None,
            };
            let after = [routed.stats().read_your_writes(), layered.stats().read_your_writes()];
            for ((variant, b), a) in VARIANTS[1..].iter().zip(before).zip(after) {
                eprintln!(
                    "web: {db}, {lag}, {}, {}: token reads on replicas {}, on the primary {}, on the last node {}; catch-up waits {} ({} timed out); positions captured after writes {} (each {:.3} ms, the mean by the router's own timer); positions read to bound a read on the primary {}",
                    workload.name(),
                    variant.name(),
                    a.replica_reads - b.replica_reads,
                    a.primary_reads - b.primary_reads,
                    a.last_node_reads - b.last_node_reads,
                    a.waits - b.waits,
                    a.wait_timeouts - b.wait_timeouts,
                    a.positions_captured - b.positions_captured,
                    position_read_mean(&b, &a).as_secs_f64() * 1e3,
                    a.floors_read - b.floors_read,
                );
            }
            match ran {
                Ok(tallies) => {
                    let plain_p50 = tallies[0].1;
                    let plain_write = write_p50(&tallies[0].0);
                    // The routed variants' positions read, after writes and to bound reads on
                    // the primary: their connections' own counters.
                    let positions: Vec<Option<(u64, u64)>> = std::iter::once(None)
                        .chain(before.iter().zip(&after).map(|(b, a)| {
                            Some((
                                a.positions_captured - b.positions_captured,
                                a.floors_read - b.floors_read,
                            ))
                        }))
                        .collect();
                    if workload == Workload::Mix {
                        let rtt = position_round_trip(&plain, db).await?;
                        let w: Vec<Option<Duration>> =
                            tallies.iter().map(|(t, _, _)| write_p50(t)).collect();
                        let means: Vec<Option<Duration>> =
                            tallies.iter().map(|(t, _, _)| write_mean(t)).collect();
                        if let [_, Some(routed_m), Some(layer_m)] = means[..] {
                            let read = position_read_mean(&before[1], &after[1]);
                            let wait = layer_m.as_secs_f64() - routed_m.as_secs_f64();
                            eprintln!(
                                "web: {db}, {lag}, mix: by the means of the write requests: the wait for the position and the token (layer − routed) {:+.3} ms; the layer's position reads {:.3} ms each (the router's own timer: taking a connection, the statement); the rest {:+.3} ms",
                                wait * 1e3,
                                read.as_secs_f64() * 1e3,
                                (wait - read.as_secs_f64()) * 1e3,
                            );
                        }
                        if let [Some(plain_w), Some(routed_w), Some(layer_w)] = w[..] {
                            let ms = |d: f64| format!("{:+.3} ms", d * 1e3);
                            let (p, r, l) = (
                                plain_w.as_secs_f64(),
                                routed_w.as_secs_f64(),
                                layer_w.as_secs_f64(),
                            );
                            let loaded = loaded_rtt.map_or(0.0, |d| d.as_secs_f64());
                            eprintln!(
                                "web: {db}, {lag}, mix: a write request's p50 {:.3} ms through the layer against plain's {:.3} ms: the router on the write {} (routed, whose response does not wait for the position), the wait for the position and the token {}; a position read alone {} (its p50, {POSITION_SAMPLES} reads one at a time through a pool, after the run), one round trip at the run's load {} (the p50 of a replica's `SELECT 1` on a connection of its own, every {} ms meanwhile); the wait beyond one round trip at load {}",
                                l * 1e3,
                                p * 1e3,
                                ms(r - p),
                                ms(l - r),
                                ms(rtt.as_secs_f64()),
                                ms(loaded),
                                ROUND_TRIP_EVERY.as_millis(),
                                ms(l - r - loaded),
                            );
                        }
                        // What a write costs the replicas: the routers' feeds sample them
                        // until they have it. Plain's figure is what runs beside every variant
                        // (the idle routers' probes, the round-trip sampler).
                        let per_write: Vec<f64> = tallies
                            .iter()
                            .map(|(t, _, _)| t.replica_other as f64 / t.posts.max(1) as f64)
                            .collect();
                        if let [p, r, l] = per_write[..] {
                            eprintln!(
                                "web: {db}, {lag}, mix: statements on the replicas beyond the app's reads, per write request: plain {p:.2}, routed {r:.2}, layer {l:.2}; the router's own (over plain's): routed {:+.2}, layer {:+.2}",
                                r - p,
                                l - p,
                            );
                        }
                    }
                    for ((variant, (tally, p50, p99)), read) in
                        VARIANTS.into_iter().zip(tallies).zip(positions)
                    {
                        let ratio = p50.as_secs_f64() / plain_p50.as_secs_f64().max(1e-12);
                        let write_p50 = write_p50(&tally)
                            .zip(plain_write)
                            .map(|(w, p)| (w, w.as_secs_f64() / p.as_secs_f64().max(1e-12)));
                        let writes = tally.posts + tally.warmup_posts;
                        let positions_per_write =
                            read.filter(|_| writes > 0).map(|(c, _)| c as f64 / writes as f64);
                        let floors_read = read.map(|(_, f)| f);
                        let row = RowOut {
                            db,
                            lag: lag.clone(),
                            late,
                            workload,
                            variant,
                            tally,
                            p50,
                            p99,
                            p50_ratio: ratio,
                            write_p50,
                            positions_per_write,
                            floors_read,
                        };
                        print_row(&row);
                        rows.push(row);
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_some() {
            break;
        }
    }
    drop(servers);
    routed.close().await.ok();
    layered.close().await.ok();
    plain.close().await.ok();
    drop(tdb);
    match failed {
        Some(e) => Err(e),
        None => Ok(rows),
    }
}

/// One workload on the three variants, interleaved: (tally, p50, p99) per variant.
async fn run_case(
    counters: &mut Counters,
    ports: [u16; 3],
    workload: Workload,
    seeded: (i32, i32),
    args: &Args,
    deadline: Instant,
) -> Res<Vec<(Tally, Duration, Duration)>> {
    let per_round = (args.requests / (ROUNDS * CLIENTS)).max(1);
    let mut clients = Vec::new();
    for (v, port) in ports.into_iter().enumerate() {
        let recent: Arc<[AtomicI32; CLIENTS]> =
            Arc::new(std::array::from_fn(|_| AtomicI32::new(0)));
        let mut cs = Vec::new();
        for me in 0..CLIENTS {
            let seed = (v * CLIENTS + me) as u64 * 0x1_0000 + workload as u64;
            cs.push(Client::connect(port, me, seed, Arc::clone(&recent), seeded).await?);
        }
        clients.push(cs);
    }
    let mut tallies: Vec<Tally> = VARIANTS.iter().map(|_| Tally::default()).collect();
    for (cs, total) in clients.iter_mut().zip(&mut tallies) {
        total.warmup_posts = round(cs, workload, WARMUP_PER_CLIENT, deadline).await?.posts;
    }
    for r in 0..ROUNDS {
        for k in 0..VARIANTS.len() {
            let v = (r + k) % VARIANTS.len();
            let before = counters.snapshot().await?;
            let started = Instant::now();
            let t = round(&mut clients[v], workload, per_round, deadline).await?;
            let wall = started.elapsed();
            let after = counters.snapshot().await?;
            let delta = counters.delta(&before, &after);
            let total = &mut tallies[v];
            total.add(t);
            total.wall += wall;
            total.primary_statements += delta.primary;
            total.replica_reads += delta.replica_reads;
            total.primary_reads += delta.primary_reads;
            total.replica_other += delta.replica_other;
        }
    }
    Ok(tallies
        .into_iter()
        .zip(VARIANTS)
        .map(|(mut t, variant)| {
            t.latencies.sort();
            if workload == Workload::Mix {
                let p50s: Vec<String> = t
                    .by_kind
                    .iter_mut()
                    .map(|l| {
                        l.sort();
                        format!("{:.3} ms", percentile(l, 500).as_secs_f64() * 1e3)
                    })
                    .collect();
                eprintln!(
                    "web: mix, {}: p50 by kind (the write; the read after it; the other reads): {}",
                    variant.name(),
                    p50s.join("; ")
                );
            }
            let (p50, p99) = (percentile(&t.latencies, 500), percentile(&t.latencies, 990));
            (t, p50, p99)
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The gate.

/// Each failure of the gate, in words (empty: it passes).
fn gate(rows: &[RowOut], dbs: &[DbKind], skipped: &[String]) -> Vec<String> {
    let mut out: Vec<String> = skipped.to_vec();
    let find = |db: DbKind, late: bool, w: Workload, v: Variant| {
        rows.iter().find(|r| r.db == db && r.late == late && r.workload == w && r.variant == v)
    };
    for &db in dbs {
        for w in WORKLOADS {
            for v in VARIANTS {
                let Some(r) = find(db, false, w, v) else {
                    out.push(format!("{db} natural lag {} {}: not run", w.name(), v.name()));
                    continue;
                };
                let what = format!("{db} {} {} {}", r.lag, w.name(), v.name());
                if r.tally.errors > 0 {
                    out.push(format!("{what}: {} errors", r.tally.errors));
                }
                if v == Variant::Plain {
                    continue;
                }
                if r.tally.stale > 0 || r.tally.time_travel > 0 {
                    out.push(format!(
                        "{what}: {} stale and {} time-travel reads (must be 0)",
                        r.tally.stale, r.tally.time_travel
                    ));
                }
                if v != Variant::Layer {
                    continue;
                }
                match w {
                    Workload::ReadOnly => {
                        if r.primary_per_request() > 0.005 {
                            out.push(format!(
                                "{what}: {:.4} primary statements per request (≤ 0.005)",
                                r.primary_per_request()
                            ));
                        }
                        if r.set_cookie_share() > 0.01 {
                            out.push(format!(
                                "{what}: Set-Cookie on {:.1} % of responses (≤ 1 %)",
                                100.0 * r.set_cookie_share()
                            ));
                        }
                    }
                    Workload::Mix => {
                        if r.primary_per_request() > 0.30 {
                            out.push(format!(
                                "{what}: {:.3} primary statements per request (≤ 0.30)",
                                r.primary_per_request()
                            ));
                        }
                        if r.replica_share() < 0.80 {
                            out.push(format!(
                                "{what}: {:.1} % of reads on replicas (≥ 80 %)",
                                100.0 * r.replica_share()
                            ));
                        }
                    }
                }
            }
        }
        let late: Vec<&RowOut> = rows.iter().filter(|r| r.db == db && r.late).collect();
        if late.is_empty() {
            out.push(format!("{db}: the late-replica case was not run (--late-ms 0)"));
        }
        for r in late {
            let what = format!("{db} {} {} {}", r.lag, r.workload.name(), r.variant.name());
            if r.tally.errors > 0 {
                out.push(format!("{what}: {} errors", r.tally.errors));
            }
            if r.variant != Variant::Plain && (r.tally.stale > 0 || r.tally.time_travel > 0) {
                out.push(format!(
                    "{what}: {} stale and {} time-travel reads (must be 0)",
                    r.tally.stale, r.tally.time_travel
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Main.

fn mariadb_installed() -> bool {
    let dirs = std::env::var_os("RWSPLIT_TESTKIT_MARIADB_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/sbin", "/usr/bin"].map(PathBuf::from));
    dirs.into_iter().any(|d| d.join("mariadbd").is_file())
}

fn parse_args() -> Res<Args> {
    let mut args = Args { dbs: Vec::new(), requests: 4000, late_ms: 200, json: None, gate: false };
    let mut db = String::from("both");
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = it.next() {
        match a.as_str() {
            "--db" => db = it.next().ok_or("--db needs postgres, mariadb or both")?,
            "--requests" => {
                args.requests = it.next().ok_or("--requests needs a number")?.parse()?;
            }
            "--late-ms" => args.late_ms = it.next().ok_or("--late-ms needs a number")?.parse()?,
            "--json" => args.json = Some(it.next().ok_or("--json needs a path")?.into()),
            "--gate" => args.gate = true,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    args.dbs = match db.as_str() {
        "both" => vec![DbKind::Postgres, DbKind::MariaDb],
        one => vec![one.parse::<DbKind>()?],
    };
    Ok(args)
}

fn main() {
    let code = match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("web: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn real_main() -> Res<i32> {
    let mut args = parse_args()?;
    let mut skipped = Vec::new();
    if args.dbs.contains(&DbKind::MariaDb) && !mariadb_installed() {
        let note = "mariadb: not run, mariadbd is not installed (apt-get install mariadb-server)";
        println!("{note}");
        skipped.push(note.to_owned());
        args.dbs.retain(|d| *d != DbKind::MariaDb);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let deadline = Instant::now() + RUN_LIMIT;
    let per_client = (args.requests / (ROUNDS * CLIENTS)).max(1);
    println!(
        "{CLIENTS} keep-alive clients per variant (cookies kept), {} requests per variant per workload ({ROUNDS} interleaved rounds, after {WARMUP_PER_CLIENT} per client of warm-up); primary + 2 replicas\n",
        per_client * ROUNDS * CLIENTS
    );
    print_header();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for &db in &args.dbs {
        match rt.block_on(run_db(db, &args, deadline)) {
            Ok(r) => rows.extend(r),
            Err(e) => {
                eprintln!("web: {db}: {e}");
                errors.push(format!("{db}: {e}"));
            }
        }
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "clients": CLIENTS,
            "requests_per_variant": per_client * ROUNDS * CLIENTS,
            "late_ms": args.late_ms,
            "skipped": skipped,
            "errors": errors,
            "rows": rows.iter().map(RowOut::json).collect::<Vec<_>>(),
        });
        std::fs::write(path, doc.to_string())?;
        eprintln!("web: wrote {}", path.display());
    }
    if !errors.is_empty() {
        return Ok(1);
    }
    if args.gate {
        let failures = gate(&rows, &args.dbs, &skipped);
        if failures.is_empty() {
            println!("\ngate: passed");
        } else {
            println!("\ngate: {} failures", failures.len());
            for f in &failures {
                println!("gate failed: {f}");
            }
            return Ok(1);
        }
    }
    Ok(0)
}
