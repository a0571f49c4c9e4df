//! The loco application against a real PostgreSQL primary and two streaming replicas, one of
//! them 300 ms late: a client that posts a note reads it back in its next request, every time;
//! reads really reach the replicas; and when the other replica dies, the handlers still answer.
//!
//! ```sh
//! cd examples/loco && CARGO_TARGET_DIR=../../target cargo test --test notes
//! ```
//!
//! It needs PostgreSQL's server binaries (`apt-get install postgresql`); as root the servers
//! run as an unprivileged user (`postgres`, else `rwsplit`, created on first use).
//!
//! Each request of loco's test server is a new HTTP connection (axum-test's HTTP transport,
//! which loco's `request` helpers use), so the server runs each on a task of its own: nothing
//! but the `rwsplit_token` cookie links a client's POST to its GET. A client that keeps no
//! cookies is the control: its GET right after its POST often reads the lagging replica and
//! misses the note.

use std::net::SocketAddr;
use std::time::Duration;

use loco_rs::TestServer;
use loco_rs::app::Hooks;
use loco_rs::boot::{BootResult, StartMode};
use loco_rs::environment::Environment;
use loco_rs::testing::prelude::{RequestConfigBuilder, seed};
use rstest::{fixture, rstest};
use rwsplit_example_loco::{App, RoutedConnection};
use rwsplit_testkit::Cluster;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};

/// A primary and two replicas; stopped and deleted on drop.
#[fixture]
async fn cluster() -> Cluster {
    Cluster::builder()
        .name("loco-notes")
        .replicas(2)
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting a primary and 2 replicas: {e}"))
}

/// Boots the application as loco's `testing::request::boot_test` does — config/test.yaml,
/// `App::boot` in the test environment — with the database settings pointed at `cluster`.
/// (loco's `request` helpers take no configuration, and pointing config/test.yaml's
/// `get_env` at the cluster would mean `std::env::set_var`, unsound while other threads run.)
async fn boot(cluster: &Cluster) -> BootResult {
    let mut config = App::load_config(&Environment::Test).await.expect("config/test.yaml");
    config.database.uri = cluster.primary_url();
    let replicas = cluster.replica_urls().into_iter().map(|url| json!({ "url": url })).collect();
    let settings = config.settings.as_mut().expect("config/test.yaml has settings");
    settings["rwsplit"]["replicas"] = Value::Array(replicas);
    // Connects `ctx.db` and the router, migrates on `ctx.db`, builds the routes.
    App::boot(StartMode::ServerOnly, &Environment::Test, config).await.expect("booting the app")
}

/// A client of the booted application, through loco's test server (as its `request` helpers
/// build it), keeping cookies between requests or not.
fn client(boot: &BootResult, keeps_cookies: bool) -> TestServer {
    let app = boot.router.clone().expect("a server, not a worker");
    let config = RequestConfigBuilder::new().save_cookies(keeps_cookies).build();
    TestServer::new_with_config(app.into_make_service_with_connect_info::<SocketAddr>(), config)
        .expect("a test server")
}

/// Posts a note; its id.
async fn post(client: &TestServer, text: &str) -> i64 {
    let response = client.post("/api/notes").json(&json!({ "text": text })).await;
    response.assert_status_ok();
    response.json::<Value>()["id"].as_i64().expect("the note's id")
}

/// The text of note `id`, or `None` on a `404`.
async fn get(client: &TestServer, id: i64) -> Option<String> {
    let response = client.get(&format!("/api/notes/{id}")).await;
    match response.status_code().as_u16() {
        200 => Some(response.json::<Value>()["text"].as_str().expect("a text").to_owned()),
        404 => None,
        status => panic!("GET /api/notes/{id}: {status} {}", response.text()),
    }
}

/// Whether node `db` (asked directly, not through the application) has note `id`.
async fn has_note(db: &DatabaseConnection, id: i64) -> bool {
    let sql = "SELECT count(*) AS n FROM notes WHERE id = $1";
    let row = db
        .query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, [id.into()]))
        .await
        .expect("asking the replica")
        .expect("a count");
    row.try_get::<i64>("", "n").expect("n") > 0
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_its_own_notes_while_a_replica_lags(#[future(awt)] cluster: Cluster) {
    let boot = boot(&cluster).await;
    let ctx = &boot.app_context;
    // loco's seed (`Hooks::seed`, on `ctx.db`): note 1, on every replica once caught up.
    seed::<App>(ctx).await.expect("seeding src/fixtures");
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    let db = ctx.shared_store.get::<RoutedConnection>().expect("the router in the shared store");
    let (alice, anonymous) = (client(&boot, true), client(&boot, false));

    // Replica 1 applies the primary's changes 300 ms late. Connected to before the writes, so
    // that asking it takes one round trip.
    cluster.replicas()[0].set_apply_delay(Duration::from_millis(300)).await.unwrap();
    let lagging = sea_orm::Database::connect(cluster.replicas()[0].url()).await.unwrap();

    let before = db.stats();
    let mut lagging_lacked = 0;
    for i in 0..20 {
        let text = format!("note {i}");
        let id = post(&alice, &text).await;
        assert_eq!(get(&alice, id).await, Some(text), "a stale read of note {id}");
        // The control: the lag is real. Replica 1, asked directly, does not have it yet.
        lagging_lacked += usize::from(!has_note(&lagging, id).await);
        // A note every replica has had for a while: a fresh client's read goes to a replica.
        assert_eq!(get(&anonymous, 1).await.as_deref(), Some("a seeded note"));
    }
    let after = db.stats();
    let replica_reads = after.replica_reads() - before.replica_reads();
    let ryw = after.read_your_writes();
    assert!(lagging_lacked > 0, "replica 1 does not lag: the test could not see a stale read");
    // At least the fresh client's 20 reads of note 1; with `wait_for_replica` (config/test.yaml)
    // the session's reads too, once replica 2 has replayed the note.
    assert!(replica_reads >= 20, "reads do not reach the replicas: {replica_reads} of 40");

    // The control through the application: without the cookie, a GET right after the POST
    // may land on the lagging replica, and then misses the note.
    let mut stale_without_cookie = 0;
    for i in 0..20 {
        let id = post(&anonymous, &format!("anonymous {i}")).await;
        stale_without_cookie += usize::from(get(&anonymous, id).await.is_none());
    }
    assert!(stale_without_cookie > 0, "without its token a client never read a stale replica");

    // Replica 2 dies: the handlers still answer, and still read the client's own writes,
    // without a stall: a catch-up wait (`wait_for_replica`) that picks replica 2 before the
    // monitor has marked it down ends at the wait's 20 ms (before that was bounded, it waited
    // out the dead replica's pool acquire timeout, 5 s, in about half the runs).
    cluster.replicas()[1].crash().unwrap();
    let crashed = std::time::Instant::now();
    for i in 0..5 {
        let text = format!("after the crash {i}");
        let id = post(&alice, &text).await;
        assert_eq!(get(&alice, id).await, Some(text), "a stale read of note {id} after the crash");
        assert_eq!(get(&anonymous, 1).await.as_deref(), Some("a seeded note"));
    }
    let after_crash = crashed.elapsed();
    assert!(after_crash < Duration::from_secs(4), "a stall after the crash: {after_crash:?}");

    // loco's `query::fetch_page` on the router, in alice's session: every note so far.
    let page = alice.get("/api/notes?page=1&page_size=100").await;
    page.assert_status_ok();
    let page = page.json::<Value>();
    assert_eq!(page["meta"]["total_items"], 1 + 20 + 20 + 5, "{page}");

    println!(
        "20 POST→GET pairs with the cookie: none stale (replica 1 lacked the note \
         {lagging_lacked} times when asked directly); without it: {stale_without_cookie} of 20 \
         stale. Reads on the replicas during the pairs: {replica_reads}; reads with a token: {} \
         on replicas, {} on the primary. After replica 2's crash: 5 pairs and reads in {:.1?}",
        ryw.replica_reads - before.read_your_writes().replica_reads,
        ryw.primary_reads - before.read_your_writes().primary_reads,
        after_crash,
    );
}
