//! README.md's "Moving an axum app over", as a test: the app of `examples/axum_migration`,
//! `before` on plain SeaORM and `after` moved over as the README says, each served by a
//! process of its own with its environment (`DATABASE_URL`, `DATABASE_REPLICA_URLS`,
//! `RWSPLIT_TOKEN_KEY`), on a real PostgreSQL primary and two replicas that apply WAL 300 ms
//! late. Through HTTP: a client that POSTs a note and then GETs the list, on a new connection
//! each time and carrying the cookie it was given, always sees its note on `after`; a client
//! without the cookie is the control (the replicas' lag is real). A tidy test
//! (`readme_migration_is_the_diff`) checks that the two files differ by what the README shows.
//!
//! ```sh
//! cargo test -p rwsplit-examples --test axum_migration
//! ```
//!
//! It needs PostgreSQL's server binaries (`apt-get install postgresql`).

#[path = "../axum_migration/mod.rs"]
mod axum_migration;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use rwsplit_testkit::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which app the child process serves (`before` or `after`). Not under `RWSPLIT_` or
/// `DATABASE_`: those are the library's.
const APP: &str = "AXUM_MIGRATION_APP";

/// The child process: serves the app `$AXUM_MIGRATION_APP` names on a loopback port, prints the
/// port, and serves until killed. Ignored in a plain run; the tests below start it.
#[tokio::test]
#[ignore = "the app's own process: the tests below run it with its environment"]
async fn app_process() -> anyhow::Result<()> {
    let which = std::env::var(APP).context("AXUM_MIGRATION_APP is before or after")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?.port());
    match which.as_str() {
        "before" => axum_migration::before::main(listener).await,
        "after" => axum_migration::after::main(listener).await,
        other => bail!("no app {other}"),
    }
}

/// A child process, killed when dropped.
struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Starts `which` in a process of its own with `env`, and returns it with the port it serves.
fn start(which: &str, env: &[(&str, String)]) -> anyhow::Result<(App, u16)> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["--exact", "app_process", "--ignored", "--nocapture", "--test-threads=1"])
        .env(APP, which)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let app = App(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints `test app_process ... ` before it, on the same line.
            if let Some((_, port)) = line.split_once("listening on ") {
                tx.send(port.trim().parse::<u16>().ok()).ok();
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .ok()
        .flatten()
        .with_context(|| format!("the {which} app did not start serving"))?;
    Ok((app, port))
}

/// One HTTP/1.1 exchange on a fresh connection: status, `Set-Cookie` (name=value), body.
async fn http(
    port: u16,
    method: &str,
    body: Option<&str>,
    cookie: Option<&str>,
) -> anyhow::Result<(u16, Option<String>, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let body = body.unwrap_or_default();
    let req = format!(
        "{method} /notes HTTP/1.1\r\nHost: localhost\r\n{cookie}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
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
    let set_cookie = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("set-cookie"))
        .and_then(|(_, v)| v.trim().split(';').next().map(str::to_owned));
    Ok((status, set_cookie, body.to_owned()))
}

/// POSTs a note, then GETs the list on a new connection (with the cookie the POST set, if
/// `with_cookie`): whether the list has the note.
async fn write_then_read(port: u16, text: &str, with_cookie: bool) -> anyhow::Result<bool> {
    let (status, cookie, body) =
        http(port, "POST", Some(&format!(r#"{{"text":"{text}"}}"#)), None).await?;
    if status != 200 {
        bail!("POST /notes answered {status}: {body}");
    }
    let cookie = if with_cookie { Some(cookie.context("the layer's cookie")?) } else { None };
    let (status, _, body) = http(port, "GET", None, cookie.as_deref()).await?;
    if status != 200 {
        bail!("GET /notes answered {status}: {body}");
    }
    Ok(body.contains(&format!(r#""text":"{text}""#)))
}

#[tokio::test]
async fn the_moved_app_reads_its_writes_through_http_on_lagging_replicas() -> anyhow::Result<()> {
    let cluster = Cluster::builder()
        .name("axum-migration")
        .replicas(2)
        .start()
        .await
        .context("starting a primary and 2 replicas (is PostgreSQL installed?)")?;
    let env = [
        ("DATABASE_URL", cluster.primary_url()),
        ("DATABASE_REPLICA_URLS", cluster.replica_urls().join(",")),
        ("RWSPLIT_TOKEN_KEY", "a test key of at least thirty-two bytes".to_owned()),
    ];

    // Before: plain SeaORM on the primary (it migrates the schema).
    let (before, port) = start("before", &env)?;
    for i in 0..3 {
        assert!(write_then_read(port, &format!("before {i}"), false).await?, "before {i}");
    }
    drop(before);
    cluster.wait_caught_up(0, Duration::from_secs(10)).await?;
    for r in cluster.replicas() {
        r.set_apply_delay(Duration::from_millis(300)).await?;
    }

    // After: the same app on the router and the layer.
    let (_after, port) = start("after", &env)?;
    for i in 0..20 {
        let text = format!("after {i}");
        assert!(write_then_read(port, &text, true).await?, "a stale read of {text}");
    }
    // The control: without the cookie, the replicas' lag shows.
    let mut stale = 0;
    for i in 0..10 {
        stale += usize::from(!write_then_read(port, &format!("control {i}"), false).await?);
    }
    assert!(stale > 0, "no read without the cookie was stale: the replicas do not lag");
    for r in cluster.replicas() {
        r.clear_apply_delay().await.ok();
    }
    Ok(())
}
