//! Where an example keeps its data: a namespace of its own, which it creates at the start and
//! drops at the end, so that pointed at an existing database (`DATABASE_URL`) it never touches
//! what it did not create.
//!
//! - PostgreSQL: a schema (`rwsplit_quickstart` …) in the database the URLs name. Every node's
//!   sessions work in it through the URL's startup options (`options=-c search_path=<schema>`,
//!   which sqlx appends rwsplit's own options to), so nothing outside it is visible, and
//!   migrations and tables land in it. A pooler may not pass that parameter on: PgBouncer
//!   refuses it (`unsupported startup parameter: options`), or with `ignore_startup_parameters
//!   = options` drops it, and the sessions would work in `public` of a database that is not
//!   the example's. So nothing rests on it unchecked (below).
//! - MariaDB: a database of that name on the same server, which the URLs' path is changed to.
//!   The server refuses a connection to a database that does not exist rather than ignoring
//!   it, but a proxy in front of it may keep a default database of its own: checked the same
//!   way.
//!
//! [`run`] refuses to start if the namespace exists (it may be someone else's), creates it on
//! the primary, waits until every replica listed has it, and checks that a session opened with
//! each node's URL as the body will get it works in the namespace (`current_schema()`,
//! `DATABASE()`) — the primary, which takes the writes, and the replicas too: reads there
//! would otherwise see someone else's tables of the same names (the examples print rows), and
//! a replica promoted during the run takes the writes through the same URL. A replica that
//! does not answer is not checked (the router does not use it until it answers). If a session
//! is elsewhere, it refuses to start, naming the node and the likely cause, before the body
//! creates anything. Then it runs the example's body with a [`RoutedConfig`] whose URLs point
//! into the namespace, and drops it — `DROP SCHEMA … CASCADE`, or `DROP DATABASE` — over a
//! plain connection to the primary: after the body returns, when it fails, when the check
//! refuses, and on Ctrl-C or SIGTERM. Nothing else is dropped or truncated.
//!
//! [`from_env`] reads the nodes and every other setting as `RoutedConnection::from_env` does
//! (`DATABASE_URL`, `DATABASE_REPLICA_URLS`, `DATABASE_*`, `RWSPLIT_*`).

#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use rwsplit_sea_orm::RoutedConfig;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};

/// How long a replica may take to show a namespace the primary created.
const REPLICA_WAIT: Duration = Duration::from_secs(30);

/// The server a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `postgres://`, `postgresql://`: the namespace is a schema.
    Postgres,
    /// `mysql://`, `mariadb://`: the namespace is a database.
    MariaDb,
}

impl Kind {
    /// The kind of server `url` names, by its scheme.
    pub fn of(url: &str) -> anyhow::Result<Kind> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => Ok(Kind::Postgres),
            Some("mysql" | "mariadb") => Ok(Kind::MariaDb),
            _ => bail!("the primary's URL is neither postgres:// nor mysql://"),
        }
    }

    /// What the namespace is called on this server.
    pub fn namespace(self) -> &'static str {
        match self {
            Kind::Postgres => "schema",
            Kind::MariaDb => "database",
        }
    }
}

/// The nodes from the environment, as `RoutedConnection::from_env` reads them; `None` without
/// `DATABASE_URL`.
pub fn from_env() -> anyhow::Result<Option<RoutedConfig>> {
    if std::env::var_os("DATABASE_URL").is_none() {
        return Ok(None);
    }
    Ok(Some(RoutedConfig::from_env()?))
}

/// The nodes of a cluster the example started itself.
pub fn nodes(primary: String, replicas: Vec<String>) -> anyhow::Result<RoutedConfig> {
    Ok(RoutedConfig::from_vars([
        ("DATABASE_URL", primary),
        ("DATABASE_REPLICA_URLS", replicas.join(",")),
    ])?)
}

/// `url` made to work in namespace `name`: on PostgreSQL the same database with `search_path`
/// set to the schema at connection start (after any `options` the URL has, so it wins); on
/// MariaDB the URL's database replaced.
pub fn url_in(kind: Kind, url: &str, name: &str) -> String {
    match kind {
        Kind::Postgres => {
            let (base, fragment) = url.find('#').map_or((url, ""), |at| url.split_at(at));
            let sep = match base.find('?') {
                None => "?",
                Some(_) if base.ends_with('?') || base.ends_with('&') => "",
                Some(_) => "&",
            };
            format!("{base}{sep}options=-c%20search_path%3D{name}{fragment}")
        }
        Kind::MariaDb => {
            let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            let tail = tail.strip_prefix('/').unwrap_or(tail);
            let query = tail.find(['?', '#']).map_or("", |at| &tail[at..]);
            format!("{scheme}://{authority}/{name}{query}")
        }
    }
}

/// Runs `body` in namespace `name` of the nodes `config` names, and drops the namespace after
/// (see the module docs). `body` gets `config` with its URLs pointing into the namespace.
pub async fn run<T>(
    name: &str,
    config: RoutedConfig,
    body: impl AsyncFnOnce(RoutedConfig) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let own = Own::create(name, &config).await?;
    println!(
        "working in {} {name} of its own on the primary (created now, dropped at the end)",
        own.kind.namespace()
    );
    let mut inside = config;
    inside.primary.url = url_in(own.kind, &inside.primary.url, name);
    for r in &mut inside.replicas {
        r.url = url_in(own.kind, &r.url, name);
    }
    // A body that waits for Ctrl-C itself (a serving mode) hears it too and ends normally: it
    // gets a moment to, after which the signal ends it.
    let body = body(inside);
    tokio::pin!(body);
    let result = tokio::select! {
        biased;
        result = &mut body => result,
        signal = stopped() => {
            match tokio::time::timeout(std::time::Duration::from_secs(5), &mut body).await {
                Ok(result) => result,
                Err(_) => Err(anyhow!("stopped by {signal}")),
            }
        }
    };
    match (result, own.remove().await) {
        (Ok(value), Ok(())) => Ok(value),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
        (Err(e), Err(dropping)) => Err(e.context(format!("and then {dropping:#}"))),
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM, with the signal's name.
async fn stopped() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return "Ctrl-C";
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// A namespace this process created, on the primary at `primary` (its URL as configured).
#[derive(Debug)]
struct Own {
    kind: Kind,
    name: String,
    primary: String,
}

impl Own {
    /// Creates namespace `name` on `config`'s primary, refusing if it exists, and waits until
    /// every listed replica has it.
    async fn create(name: &str, config: &RoutedConfig) -> anyhow::Result<Own> {
        anyhow::ensure!(
            !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name:?}: a namespace name is lowercase letters, digits and `_`"
        );
        let kind = Kind::of(&config.primary.url)?;
        let what = kind.namespace();
        let primary = plain(&config.primary.url).await.context("connecting to the primary")?;
        if exists(&primary, kind, name).await? {
            primary.close().await.ok();
            bail!(taken(kind, name));
        }
        let create = match kind {
            Kind::Postgres => format!("CREATE SCHEMA \"{name}\""),
            Kind::MariaDb => format!("CREATE DATABASE `{name}`"),
        };
        let created = primary.execute_unprepared(&create).await;
        primary.close().await.ok();
        if let Err(e) = created {
            return Err(match refusal(kind, &e) {
                // Created by someone else between the check and here.
                Some(Refusal::Exists) => anyhow!(taken(kind, name)),
                Some(Refusal::Privilege) => anyhow!(no_privilege(kind, name)),
                None => anyhow!(e).context(format!("creating {what} {name} on the primary")),
            });
        }
        let own = Own { kind, name: name.to_owned(), primary: config.primary.url.clone() };
        let ready = async {
            own.wait_replicas(config).await?;
            own.check_inside(config).await
        };
        if let Err(e) = ready.await {
            return Err(match own.remove().await {
                Ok(()) => e,
                Err(dropping) => e.context(format!("and then {dropping:#}")),
            });
        }
        Ok(own)
    }

    /// Waits until every replica `config` lists shows the namespace (streaming replication
    /// carries it over; a read routed to a replica before then would not find it, and on
    /// MariaDB a connection to it would be refused). A replica that cannot be reached is
    /// skipped: the router will not use it either until it answers.
    async fn wait_replicas(&self, config: &RoutedConfig) -> anyhow::Result<()> {
        let deadline = Instant::now() + REPLICA_WAIT;
        for (i, replica) in config.replicas.iter().enumerate() {
            let Ok(conn) = plain(&replica.url).await else {
                eprintln!("replica {} does not answer: not waiting for it", i + 1);
                continue;
            };
            let mut seen = false;
            while !seen && Instant::now() < deadline {
                seen = exists(&conn, self.kind, &self.name).await.unwrap_or(false);
                if !seen {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            conn.close().await.ok();
            anyhow::ensure!(
                seen,
                "{} {} did not reach replica {} within {:?} (is it replicating?)",
                self.kind.namespace(),
                self.name,
                i + 1,
                REPLICA_WAIT
            );
        }
        Ok(())
    }

    /// Checks that a session opened with each node's URL made to work in the namespace
    /// ([`url_in`], as the body's connections are) does work in it: `current_schema()` on
    /// PostgreSQL, `DATABASE()` on MariaDB. The primary must answer; a replica that does not
    /// is skipped, as in [`Own::wait_replicas`].
    async fn check_inside(&self, config: &RoutedConfig) -> anyhow::Result<()> {
        let url = url_in(self.kind, &config.primary.url, &self.name);
        let primary = plain(&url).await.with_context(|| {
            format!("connecting to the primary to work in {} {}", self.kind.namespace(), self.name)
        })?;
        let what = self.kind.namespace();
        let found = current(&primary, self.kind).await;
        primary.close().await.ok();
        self.ensure_inside(
            "the primary",
            found.context(format!("asking the primary its {what}"))?,
        )?;
        for (i, replica) in config.replicas.iter().enumerate() {
            let node = format!("replica {}", i + 1);
            let Ok(conn) = plain(&url_in(self.kind, &replica.url, &self.name)).await else {
                eprintln!("{node} does not answer: not checking where its sessions work");
                continue;
            };
            let found = current(&conn, self.kind).await;
            conn.close().await.ok();
            self.ensure_inside(&node, found.with_context(|| format!("asking {node} its {what}"))?)?;
        }
        Ok(())
    }

    /// The refusal when `node`'s session works in `found` rather than in the namespace.
    fn ensure_inside(&self, node: &str, found: Option<String>) -> anyhow::Result<()> {
        let name = &self.name;
        if found.as_deref() == Some(name.as_str()) {
            return Ok(());
        }
        let what = self.kind.namespace();
        let found = found.map_or_else(|| format!("no {what}"), |f| format!("{what} {f}"));
        let stakes = if node == "the primary" {
            "its migration would create its tables among what is not its own"
        } else {
            "its reads there would see tables that are not its own (and, were that replica \
             promoted, its writes would land among them)"
        };
        let (cause, pooler) = match self.kind {
            Kind::Postgres => (
                format!(
                    "a session opened with search_path set to schema {name} works in {found} \
                     (current_schema()): the search_path startup parameter (`options=-c \
                     search_path={name}`, which the example adds to the URL) did not reach the \
                     server. Is a pooler in front of it dropping `options` (PgBouncer's \
                     ignore_startup_parameters = options)?"
                ),
                ", or at a pooler that passes `options` on",
            ),
            Kind::MariaDb => (
                format!(
                    "a session opened with database {name} in the URL works in {found} \
                     (DATABASE()): the database the example puts in the URL did not reach the \
                     server. Is a proxy in front of it keeping a default database of its own?"
                ),
                "",
            ),
        };
        bail!(
            "on {node}, {cause} The example works only in a {what} of its own, and {stakes}: \
             so it stops before creating anything, and drops only the {what} {name} it \
             created. Point DATABASE_URL and DATABASE_REPLICA_URLS at the servers \
             themselves{pooler}."
        )
    }

    /// Drops the namespace, and only it, over a connection of its own to the primary.
    async fn remove(&self) -> anyhow::Result<()> {
        let (what, name) = (self.kind.namespace(), &self.name);
        let statements = match self.kind {
            // A statement still running in the schema (a task the body left behind) holds
            // locks the drop waits for: not for ever.
            Kind::Postgres => [
                "SET lock_timeout = '10s'".to_owned(),
                format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"),
            ],
            Kind::MariaDb => [
                "SET SESSION lock_wait_timeout = 10".to_owned(),
                format!("DROP DATABASE IF EXISTS `{name}`"),
            ],
        };
        let run = async {
            let primary = plain(&self.primary).await?;
            for sql in &statements {
                primary.execute_unprepared(sql).await?;
            }
            primary.close().await?;
            Ok::<_, DbErr>(())
        };
        run.await.with_context(|| {
            let drop = match self.kind {
                Kind::Postgres => format!("DROP SCHEMA {name} CASCADE"),
                Kind::MariaDb => format!("DROP DATABASE {name}"),
            };
            format!("dropping {what} {name} on the primary failed: drop it yourself (`{drop}`)")
        })?;
        println!("dropped {what} {name}");
        Ok(())
    }
}

/// A plain connection (one, unrouted, statements not logged) to `url`.
async fn plain(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(1)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(opts).await
}

/// Whether namespace `name` exists on the server `conn` reaches.
async fn exists(conn: &DatabaseConnection, kind: Kind, name: &str) -> Result<bool, DbErr> {
    let (backend, sql) = match kind {
        Kind::Postgres => (
            DbBackend::Postgres,
            format!("SELECT 1 AS x FROM pg_namespace WHERE nspname = '{name}'"),
        ),
        Kind::MariaDb => (
            DbBackend::MySql,
            format!("SELECT 1 AS x FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"),
        ),
    };
    Ok(conn.query_one_raw(sea_orm::Statement::from_string(backend, sql)).await?.is_some())
}

/// Where the session `conn` holds works: its current schema (PostgreSQL: the first schema of
/// its `search_path` that exists) or database (MariaDB); `None` when there is none.
async fn current(conn: &DatabaseConnection, kind: Kind) -> Result<Option<String>, DbErr> {
    let (backend, sql) = match kind {
        Kind::Postgres => (DbBackend::Postgres, "SELECT CAST(current_schema() AS text) AS s"),
        Kind::MariaDb => (DbBackend::MySql, "SELECT CAST(DATABASE() AS CHAR) AS s"),
    };
    let row = conn.query_one_raw(sea_orm::Statement::from_string(backend, sql)).await?;
    Ok(row.map(|r| r.try_get::<Option<String>>("", "s")).transpose()?.flatten())
}

/// Why the server refused to create the namespace, when it is one the user can act on.
enum Refusal {
    /// It exists.
    Exists,
    /// The user lacks the privilege to create it.
    Privilege,
}

fn refusal(kind: Kind, e: &DbErr) -> Option<Refusal> {
    use sea_orm::RuntimeErr::SqlxError;
    let (DbErr::Exec(SqlxError(e)) | DbErr::Query(SqlxError(e))) = e else { return None };
    let db = e.as_database_error()?;
    match kind {
        // SQLSTATE: duplicate_schema, insufficient_privilege.
        Kind::Postgres => match db.code()?.as_ref() {
            "42P06" => Some(Refusal::Exists),
            "42501" => Some(Refusal::Privilege),
            _ => None,
        },
        // ER_DB_CREATE_EXISTS; ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR,
        // ER_SPECIFIC_ACCESS_DENIED_ERROR.
        Kind::MariaDb => {
            match db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>()?.number() {
                1007 => Some(Refusal::Exists),
                1044 | 1045 | 1227 => Some(Refusal::Privilege),
                _ => None,
            }
        }
    }
}

/// The refusal when the namespace exists.
fn taken(kind: Kind, name: &str) -> String {
    let (what, drop) = match kind {
        Kind::Postgres => ("schema", format!("DROP SCHEMA {name} CASCADE")),
        Kind::MariaDb => ("database", format!("DROP DATABASE {name}")),
    };
    format!(
        "{what} {name} already exists on the primary: it may be someone else's, so this example \
         leaves it alone and stops. It works only in a {what} it creates itself, and drops that \
         {what} at the end. If {name} is a leftover of this example (a run that was killed), \
         drop it yourself (`{drop}`) and run the example again."
    )
}

/// The refusal when the user may not create the namespace.
fn no_privilege(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Postgres => format!(
            "creating schema {name} on the primary: permission denied. The user in DATABASE_URL \
             needs the CREATE privilege on its database (`GRANT CREATE ON DATABASE <database> \
             TO <user>`); the example works only in a schema of its own, which it drops at the \
             end."
        ),
        Kind::MariaDb => format!(
            "creating database {name} on the primary: access denied. The user in DATABASE_URL \
             needs the CREATE privilege on it, and DROP to remove it at the end (GRANT ALL \
             PRIVILEGES ON {name}.* TO <user>); the example works only in a database of its \
             own."
        ),
    }
}
