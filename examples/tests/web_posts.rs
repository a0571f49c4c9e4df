//! The posts apps of `examples/web_posts` — actix-web and poem, each as SeaORM's own examples
//! write it (`before`, plain SeaORM) and moved over to rwsplit (`after`: `RoutedConnection`, the
//! migration on `db.primary()`, `rwsplit-web`'s `SessionMiddleware`) — driven as browsers
//! would, on a real primary and two replicas, PostgreSQL and MariaDB.
//!
//! Four clients at once, each on a new TCP connection per request and keeping its cookies as
//! a browser does (`Max-Age=0` deletes), each 25 times: open the form, create a post, follow the
//! `303` (the list must show it, with the flash message once), read another list page, edit the
//! post, follow (the edit page must show the new text), read the list, delete the post, follow
//! (the list must not show it), read another page. A follow that misses the client's own write
//! is a read-your-writes violation.
//!
//! - `after`, replicas 200 ms late (PostgreSQL: `recovery_min_apply_delay`; MariaDB, whose
//!   `MASTER_DELAY` has whole seconds only: the testkit's delaying proxy on each replica's
//!   replication link, `Node::delay_replication`): no violation. A control client that drops its
//!   session cookie must see the lag (else the replicas did not lag).
//! - `after`, natural lag: no violation, and the replicas serve at least 80 % of the "other
//!   reads" (list pages a client loads that do not follow its own write). Each other read runs
//!   alone (a gate holds the other clients' requests meanwhile) so that the app's
//!   `RoutedConnection::stats()` before and after it tell where its statements went.
//! - `before`, natural lag, the same driver: the latency baseline (p50 of every request).
//!
//! Every request must get its expected answer (no `5xx`). It prints, per framework and database,
//! `WEB-POSTS-FIGURES <framework> <db>: violations N, replica share X %, p50 before Y ms, after
//! Z ms, lines changed L (+a -r)`, where L counts the code lines (comments and blank lines left
//! out) that differ between the framework's `before` and `after` files, and prints those lines.
//!
//! ```sh
//! cargo test -p rwsplit-examples --test web_posts -- --nocapture
//! ```
//!
//! It needs PostgreSQL's and MariaDB's server binaries (`apt-get install postgresql
//! mariadb-server mariadb-client`).

#[path = "../web_posts/mod.rs"]
mod web_posts;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use rstest::rstest;
use rwsplit_sea_orm::{RoutedConnection, Stats};
use rwsplit_testkit::{Cluster, DbKind, DelayProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::RwLock;
use web_posts::{actix_after, actix_before, poem_after, poem_before};

/// The `after` apps' token signing key.
const KEY: &str = "the web_posts test's signing key, 32+ bytes";
/// Clients at once.
const CLIENTS: usize = 4;
/// Create–edit–delete rounds per client and run.
const ROUNDS: usize = 25;
/// The replicas' lag in the lagging run.
const LAG: Duration = Duration::from_millis(200);
/// Posts made before the runs, so that the list has several pages.
const SEED: usize = 12;
/// The least share of other reads the replicas must serve at natural lag.
const MIN_REPLICA_SHARE: f64 = 0.8;

/// The two cases share the machine's two cores: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framework {
    Actix,
    Poem,
}

impl Framework {
    fn name(self) -> &'static str {
        match self {
            Framework::Actix => "actix",
            Framework::Poem => "poem",
        }
    }

    /// The app's files, before and after the move.
    fn sources(self) -> (&'static str, &'static str) {
        match self {
            Framework::Actix => (
                include_str!("../web_posts/actix_before.rs"),
                include_str!("../web_posts/actix_after.rs"),
            ),
            Framework::Poem => (
                include_str!("../web_posts/poem_before.rs"),
                include_str!("../web_posts/poem_after.rs"),
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    Before,
    After,
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_posts_apps_read_their_writes_through_http(
    #[case] kind: DbKind,
) -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init()
        .ok();
    let started = Instant::now();
    let cluster = Cluster::builder()
        .db(kind)
        .name(format!("web-posts-{kind}"))
        .replicas(2)
        .start()
        .await
        .with_context(|| format!("starting a {kind} primary and 2 replicas"))?;
    println!("web_posts {kind}: cluster up in {:.1} s", started.elapsed().as_secs_f64());
    for framework in [Framework::Actix, Framework::Poem] {
        let started = Instant::now();
        let figures = run_framework(&cluster, kind, framework).await?;
        let (added, removed) = print_diff(framework);
        println!(
            "WEB-POSTS-FIGURES {} {kind}: violations {}, replica share {:.1} %, p50 before {:.2} ms, \
             after {:.2} ms, lines changed {} (+{added} -{removed})",
            framework.name(),
            figures.lagging.violations,
            figures.natural.replica_share() * 100.0,
            ms(figures.before.p50()),
            ms(figures.natural.p50()),
            added + removed,
        );
        println!(
            "web_posts {} {kind}: natural lag: {} violations, {} other reads ({} statements: {} on \
             replicas, {} on the primary); 200 ms lag: p50 {:.2} ms, control saw the lag {}/{}; \
             {:.1} s\n  p50 (ms) by request: before: {}; after: {}; after, 200 ms lag: {}",
            framework.name(),
            figures.natural.violations,
            figures.natural.other_reads,
            figures.natural.replica_reads + figures.natural.primary_reads,
            figures.natural.replica_reads,
            figures.natural.primary_reads,
            ms(figures.lagging.p50()),
            figures.control_stale,
            CONTROL,
            started.elapsed().as_secs_f64(),
            figures.before.p50_by_kind(),
            figures.natural.p50_by_kind(),
            figures.lagging.p50_by_kind(),
        );
        let what = format!("{} on {kind}", framework.name());
        ensure!(figures.before.violations == 0, "{what}: plain SeaORM on the primary read stale");
        ensure!(
            figures.lagging.violations == 0,
            "{what}: {} read-your-writes violations with replicas {LAG:?} late",
            figures.lagging.violations
        );
        ensure!(
            figures.natural.violations == 0,
            "{what}: {} read-your-writes violations at natural lag",
            figures.natural.violations
        );
        ensure!(
            figures.natural.replica_share() >= MIN_REPLICA_SHARE,
            "{what}: the replicas served {:.1} % of the other reads at natural lag, below {} %",
            figures.natural.replica_share() * 100.0,
            MIN_REPLICA_SHARE * 100.0
        );
        ensure!(
            figures.control_stale > 0,
            "{what}: no read without the session cookie was stale: the replicas did not lag"
        );
        for run in [&figures.before, &figures.natural, &figures.lagging] {
            ensure!(run.flash_errors == 0, "{what}: {} flash messages wrong", run.flash_errors);
        }
    }
    Ok(())
}

/// What one framework's runs found.
struct Figures {
    before: Run,
    natural: Run,
    lagging: Run,
    /// Control reads (no session cookie, right after a write, replicas late) that were stale.
    control_stale: usize,
}

/// Control reads in the lagging run.
const CONTROL: usize = 5;

/// One framework on `cluster`, in a database of its own: `before` at natural lag, `after` at
/// natural lag, `after` with the replicas [`LAG`] late.
async fn run_framework(
    cluster: &Cluster,
    kind: DbKind,
    framework: Framework,
) -> anyhow::Result<Figures> {
    let db = cluster.create_database(&format!("web_posts_{}", framework.name())).await?;
    let (primary, replicas) = (db.primary_url(), db.replica_urls().join(","));

    // Before: plain SeaORM on the primary; its migration makes the table.
    let app = Served::start(framework, Version::Before, &primary, &replicas).await?;
    let seeder = Shared::new(None);
    let mut client = Client::new(app.port, &seeder);
    for i in 0..SEED {
        client.post_see_other("/", &format!("title=seed-{i}&text=seeded"), "/").await?;
    }
    cluster.wait_caught_up(0, Duration::from_secs(10)).await?;
    let before = drive(&app, "before").await;
    app.stop().await?;
    let before = before?;

    // After: the moved app, at natural lag, then with the replicas late.
    let app = Served::start(framework, Version::After, &primary, &replicas).await?;
    let figures = async {
        let routed = app.routed.as_ref().context("the after app's connection")?;
        settle(routed).await?;
        let natural = drive(&app, "natural").await?;
        let lag = Lag::start(cluster, kind).await?;
        let lagging = drive(&app, "lagging").await;
        let control = control(&app).await;
        lag.stop(cluster).await?;
        Ok::<_, anyhow::Error>(Figures {
            before,
            natural,
            lagging: lagging?,
            control_stale: control?,
        })
    }
    .await;
    app.stop().await?;
    drop(db);
    figures
}

/// Waits until the app's monitor has seen where each replica is, so that the first reads of a
/// run are routed as every later one.
async fn settle(routed: &RoutedConnection) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !routed.stats().replicas().iter().all(|r| r.position().is_some()) {
        ensure!(Instant::now() < deadline, "the monitor did not see the replicas' positions");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The replicas [`LAG`] late: PostgreSQL's apply delay; on MariaDB a delaying proxy on each
/// replica's replication link (`MASTER_DELAY` has whole seconds only).
struct Lag {
    proxies: Vec<DelayProxy>,
}

impl Lag {
    async fn start(cluster: &Cluster, kind: DbKind) -> anyhow::Result<Lag> {
        let mut proxies = Vec::new();
        for replica in cluster.replicas() {
            match kind {
                DbKind::Postgres => replica.set_apply_delay(LAG).await?,
                DbKind::MariaDb => {
                    proxies.push(
                        replica.delay_replication(cluster.primary(), LAG, Duration::ZERO).await?,
                    );
                }
                other => bail!("no lag for {other}"),
            }
        }
        Ok(Lag { proxies })
    }

    async fn stop(self, cluster: &Cluster) -> anyhow::Result<()> {
        for replica in cluster.replicas() {
            if self.proxies.is_empty() {
                replica.clear_apply_delay().await?;
            } else {
                replica.follow(cluster.primary()).await?;
            }
        }
        drop(self.proxies);
        cluster.wait_caught_up(0, Duration::from_secs(10)).await?;
        Ok(())
    }
}

/// An app being served on a loopback port.
struct Served {
    port: u16,
    /// The `after` app's connection, for its statistics.
    routed: Option<RoutedConnection>,
    stop: Stop,
}

/// What the actix thread hands back once it serves: the server's handle, the connection.
type Started = (actix_web::dev::ServerHandle, Option<RoutedConnection>);

enum Stop {
    /// actix-web runs in a system of its own, on a thread of its own.
    Actix(actix_web::dev::ServerHandle, std::thread::JoinHandle<anyhow::Result<()>>),
    /// poem runs on this test's runtime.
    Poem(tokio::task::JoinHandle<anyhow::Result<()>>),
}

impl Served {
    /// Connects, migrates and serves `version` of `framework`'s app on 127.0.0.1:0.
    async fn start(
        framework: Framework,
        version: Version,
        primary: &str,
        replicas: &str,
    ) -> anyhow::Result<Served> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (primary, replicas) = (primary.to_owned(), replicas.to_owned());
        match framework {
            Framework::Actix => {
                let (tx, rx) = tokio::sync::oneshot::channel::<anyhow::Result<Started>>();
                let thread = std::thread::spawn(move || {
                    actix_web::rt::System::new().block_on(async move {
                        let started = async {
                            match version {
                                Version::Before => {
                                    let conn = actix_before::start(&primary).await?;
                                    Ok((actix_before::serve(conn, listener)?, None))
                                }
                                Version::After => {
                                    let conn = actix_after::start(&primary, &replicas).await?;
                                    let server = actix_after::serve(conn.clone(), KEY, listener)?;
                                    Ok((server, Some(conn)))
                                }
                            }
                        };
                        match started.await {
                            Ok((server, routed)) => {
                                tx.send(Ok((server.handle(), routed))).ok();
                                server.await?;
                                Ok(())
                            }
                            Err(e) => {
                                tx.send(Err(e)).ok();
                                Ok(())
                            }
                        }
                    })
                });
                let (handle, routed) = rx.await.context("the actix thread ended")??;
                Ok(Served { port, routed, stop: Stop::Actix(handle, thread) })
            }
            Framework::Poem => {
                let (routed, task) = match version {
                    Version::Before => {
                        let conn = poem_before::start(&primary).await?;
                        (None, tokio::spawn(poem_before::serve(conn, listener)))
                    }
                    Version::After => {
                        let conn = poem_after::start(&primary, &replicas).await?;
                        let served = conn.clone();
                        let task = tokio::spawn(poem_after::serve(served, KEY, listener));
                        (Some(conn), task)
                    }
                };
                Ok(Served { port, routed, stop: Stop::Poem(task) })
            }
        }
    }

    /// Stops serving (and says if serving had failed).
    async fn stop(self) -> anyhow::Result<()> {
        match self.stop {
            Stop::Actix(handle, thread) => {
                handle.stop(true).await;
                tokio::task::spawn_blocking(move || thread.join())
                    .await?
                    .map_err(|_| anyhow!("the actix thread panicked"))??;
            }
            Stop::Poem(task) => {
                if task.is_finished() {
                    task.await??;
                } else {
                    task.abort();
                }
            }
        }
        Ok(())
    }
}

/// One run's findings.
#[derive(Debug, Default)]
struct Run {
    /// Follow-up pages that missed the client's own write.
    violations: usize,
    /// Flash messages missing after a write, or shown twice.
    flash_errors: usize,
    /// Other reads made, and where their statements went (the `after` app's statistics).
    other_reads: u64,
    replica_reads: u64,
    primary_reads: u64,
    /// Every request's time, connection included.
    latencies: Vec<Duration>,
    /// The same by kind of request: `write` (a `POST`), `follow` (the page after it), `other`
    /// (an other read), `form` (`GET /new`, no database).
    by_kind: BTreeMap<&'static str, Vec<Duration>>,
}

impl Run {
    fn p50(&self) -> Duration {
        p50(&self.latencies)
    }

    /// p50 by kind of request, in ms.
    fn p50_by_kind(&self) -> String {
        let kinds = self.by_kind.iter().map(|(k, v)| format!("{k} {:.2}", ms(p50(v))));
        kinds.collect::<Vec<_>>().join(", ")
    }

    fn replica_share(&self) -> f64 {
        let total = self.replica_reads + self.primary_reads;
        if total == 0 { 0.0 } else { self.replica_reads as f64 / total as f64 }
    }
}

fn p50(latencies: &[Duration]) -> Duration {
    let mut all = latencies.to_vec();
    all.sort();
    all.get(all.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What the clients of one run share.
struct Shared {
    /// Other reads take it exclusively, every other request shared.
    gate: RwLock<()>,
    routed: Option<RoutedConnection>,
    run: Mutex<Run>,
}

impl Shared {
    fn new(routed: Option<RoutedConnection>) -> Shared {
        Shared { gate: RwLock::new(()), routed, run: Mutex::new(Run::default()) }
    }

    fn record(&self, f: impl FnOnce(&mut Run)) {
        f(&mut self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }
}

/// Reads the replicas and the primary have served so far.
fn reads(stats: &Stats) -> (u64, u64) {
    (stats.replica_reads(), stats.primary().reads())
}

/// [`CLIENTS`] clients at once, [`ROUNDS`] rounds each; `tag` makes the titles unique.
async fn drive(app: &Served, tag: &str) -> anyhow::Result<Run> {
    let shared = Shared::new(app.routed.clone());
    let clients = (0..CLIENTS).map(|c| {
        let shared = &shared;
        async move {
            let mut client = Client::new(app.port, shared);
            for round in 0..ROUNDS {
                client
                    .round(&format!("{tag}-c{c}-r{round}"))
                    .await
                    .with_context(|| format!("client {c}, round {round} of the {tag} run"))?;
            }
            Ok::<_, anyhow::Error>(())
        }
    });
    futures_util::future::try_join_all(clients).await?;
    Ok(shared.run.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Right after a write, with the replicas late, a read without the session cookie: whether it
/// was stale, [`CONTROL`] times.
async fn control(app: &Served) -> anyhow::Result<usize> {
    let shared = Shared::new(None);
    let mut stale = 0;
    for i in 0..CONTROL {
        let mut client = Client::new(app.port, &shared);
        let title = format!("control-{i}");
        client.post_see_other("/", &format!("title={title}&text=control"), "/").await?;
        client.jar.remove("rwsplit_token");
        let page = client.get_ok("/").await?;
        stale += usize::from(!page.contains(&link(&title)));
    }
    Ok(stale)
}

/// How the list links a post's title.
fn link(title: &str) -> String {
    format!("\">{title}</a>")
}

/// The id of the post `title` in a list page.
fn id_in(page: &str, title: &str) -> Option<i32> {
    let at = page.find(&link(title))?;
    let start = page[..at].rfind("href=\"/")? + "href=\"/".len();
    page[start..at].parse().ok()
}

/// A browser: one cookie jar, a new connection per request.
struct Client<'s> {
    port: u16,
    jar: BTreeMap<String, String>,
    shared: &'s Shared,
}

/// An HTTP response.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl<'s> Client<'s> {
    fn new(port: u16, shared: &'s Shared) -> Client<'s> {
        Client { port, jar: BTreeMap::new(), shared }
    }

    /// One round: create, edit and delete a post titled `title`, following each redirect, with
    /// other reads between.
    async fn round(&mut self, title: &str) -> anyhow::Result<()> {
        let mine = link(title);

        // Create: the list the redirect leads to shows the post, and the flash message once.
        self.get_ok("/new").await?;
        self.post_see_other("/", &format!("title={title}&text=first-{title}"), "/").await?;
        let page = self.get_ok("/").await?;
        let seen = page.contains(&mine);
        let flash = page.contains("<p class=\"flash\">Post created</p>");
        self.shared.record(|r| {
            r.violations += usize::from(!seen);
            r.flash_errors += usize::from(!flash);
        });
        let id = match id_in(&page, title) {
            Some(id) => id,
            None => self.wait_for(title).await?,
        };
        self.other_read("/?page=2").await?;

        // Edit: the edit page the redirect leads to shows the new text.
        let text = format!("edited-{title}");
        self.post_see_other(
            &format!("/{id}"),
            &format!("title={title}&text={text}"),
            &format!("/{id}"),
        )
        .await?;
        let page = self.get_ok(&format!("/{id}")).await?;
        let seen = page.contains(&format!(">{text}</textarea>"));
        let flash = page.contains("<p class=\"flash\">Post updated</p>");
        self.shared.record(|r| {
            r.violations += usize::from(!seen);
            r.flash_errors += usize::from(!flash);
        });
        self.other_read("/").await?;

        // Delete: the list the redirect leads to no longer shows the post.
        self.post_see_other(&format!("/delete/{id}"), "", "/").await?;
        let page = self.get_ok("/").await?;
        let gone = !page.contains(&mine);
        let flash = page.contains("<p class=\"flash\">Post deleted</p>");
        self.shared.record(|r| {
            r.violations += usize::from(!gone);
            r.flash_errors += usize::from(!flash);
        });
        self.other_read("/?page=3").await?;
        Ok(())
    }

    /// After a stale list (a violation, counted): waits until the list shows `title`, for its
    /// id.
    async fn wait_for(&mut self, title: &str) -> anyhow::Result<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(id) = id_in(&self.get_ok("/").await?, title) {
                return Ok(id);
            }
            ensure!(Instant::now() < deadline, "the post {title} never showed in the list");
        }
    }

    /// A list page that does not follow a write of this client's: alone on the server, so
    /// that the app's statistics say where its statements went. It shows no flash message
    /// (the page before it showed it, and cleared it).
    async fn other_read(&mut self, path: &str) -> anyhow::Result<()> {
        let _alone = self.shared.gate.write().await;
        let before = self.shared.routed.as_ref().map(|r| reads(&r.stats()));
        let response = self.send("GET", path, None, "other").await?;
        let after = self.shared.routed.as_ref().map(|r| reads(&r.stats()));
        ensure!(
            response.status == 200,
            "GET {path} answered {}: {}",
            response.status,
            response.body
        );
        let flash = response.body.contains("class=\"flash\"");
        self.shared.record(|r| {
            r.other_reads += 1;
            r.flash_errors += usize::from(flash);
            if let (Some(b), Some(a)) = (before, after) {
                r.replica_reads += a.0 - b.0;
                r.primary_reads += a.1 - b.1;
            }
        });
        Ok(())
    }

    /// `GET path`, which must answer `200`: its body.
    async fn get_ok(&mut self, path: &str) -> anyhow::Result<String> {
        let _shared = self.shared.gate.read().await;
        let kind = if path == "/new" { "form" } else { "follow" };
        let response = self.send("GET", path, None, kind).await?;
        ensure!(
            response.status == 200,
            "GET {path} answered {}: {}",
            response.status,
            response.body
        );
        Ok(response.body)
    }

    /// `POST path` with `form`, which must answer `303 See Other` to `location`.
    async fn post_see_other(
        &mut self,
        path: &str,
        form: &str,
        location: &str,
    ) -> anyhow::Result<()> {
        let _shared = self.shared.gate.read().await;
        let response = self.send("POST", path, Some(form), "write").await?;
        ensure!(
            response.status == 303,
            "POST {path} answered {}: {}",
            response.status,
            response.body
        );
        ensure!(
            response.header("location") == Some(location),
            "POST {path} redirected to {:?}, not {location}",
            response.header("location")
        );
        Ok(())
    }

    /// One request on a new connection, with the jar's cookies; the jar takes the response's.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        form: Option<&str>,
        kind: &'static str,
    ) -> anyhow::Result<Response> {
        let cookies = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        if !cookies.is_empty() {
            request.push_str(&format!("Cookie: {}\r\n", cookies.join("; ")));
        }
        if let Some(form) = form {
            request.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
                form.len()
            ));
        } else {
            request.push_str("\r\n");
        }
        let started = Instant::now();
        let response = tokio::time::timeout(Duration::from_secs(20), exchange(self.port, &request))
            .await
            .map_err(|_| anyhow!("{method} {path}: no answer in 20 s"))??;
        let took = started.elapsed();
        self.shared.record(|r| {
            r.latencies.push(took);
            r.by_kind.entry(kind).or_default().push(took);
        });
        if response.status >= 500 {
            bail!("{method} {path} answered {}: {}", response.status, response.body);
        }
        for (name, value) in &response.headers {
            if name.eq_ignore_ascii_case("set-cookie") {
                self.keep(value);
            }
        }
        Ok(response)
    }

    /// Stores a `Set-Cookie` as a browser does (by name; `Max-Age=0` or less deletes it).
    fn keep(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
            return;
        };
        let removed = parts.filter_map(|a| a.trim().split_once('=')).any(|(k, v)| {
            k.trim().eq_ignore_ascii_case("max-age")
                && v.trim().parse::<i64>().is_ok_and(|s| s <= 0)
        });
        if removed {
            self.jar.remove(name.trim());
        } else {
            self.jar.insert(name.trim().to_owned(), value.trim().to_owned());
        }
    }
}

/// Writes `request` on a new connection to `port` and reads the response to its end.
async fn exchange(port: u16, request: &str) -> anyhow::Result<Response> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let raw = String::from_utf8(raw).context("a UTF-8 response")?;
    let (head, body) = raw.split_once("\r\n\r\n").context("an HTTP response")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("a status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked { dechunk(body)? } else { body.to_owned() };
    Ok(Response { status, headers, body })
}

/// A chunked body's content.
fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("a chunk size")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("a whole chunk")?);
        body = rest.get(size + 2..).context("a chunk's end")?;
    }
}

/// Prints the code lines that differ between `framework`'s `before` and `after` files (blank
/// lines and comments left out) and returns how many were added and removed.
fn print_diff(framework: Framework) -> (usize, usize) {
    let (before, after) = framework.sources();
    let code = |text: &'static str| -> Vec<&'static str> {
        text.lines()
            .filter(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with("//")
            })
            .collect()
    };
    let (a, b) = (code(before), code(after));
    // The longest common subsequence, by dynamic programming (the files are a few hundred
    // lines).
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] =
                if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut added, mut removed) = (0, 0, 0, 0);
    println!("web_posts {}: the move, code lines only:", framework.name());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            println!("  + {}", b[j]);
            added += 1;
            j += 1;
        } else {
            println!("  - {}", a[i]);
            removed += 1;
            i += 1;
        }
    }
    (added, removed)
}
