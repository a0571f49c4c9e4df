//! Building a `RoutedConnection` against real servers, good setups and bad.

use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_sea_orm::advanced::{Health, HealthPolicy};
use rwsplit_sea_orm::{Error, RoutedConnection};
use rwsplit_testkit::DbKind;
use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use sea_orm_migration::MigratorTrait;

use crate::blog::{author, migration::Migrator};
use crate::support::{own_cluster, routed, served, server_port, shared};

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    l.local_addr().unwrap().port()
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn replica_sessions_are_read_only_even_where_the_server_is_not(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "ro", 1).await;
    let tdb = cluster.create_database("ro").await.unwrap();
    let db = routed(&tdb, false).await;
    Migrator::up(db.primary(), None).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    if kind == DbKind::MariaDb {
        // A misconfigured replica that accepts writes from the application user.
        cluster.replicas()[0].execute("mysql", "SET GLOBAL read_only = OFF").await.unwrap();
    }
    let err = db
        .replica()
        .unwrap()
        .execute_unprepared("INSERT INTO author (name) VALUES ('diverged')")
        .await
        .expect_err("a write through a replica session fails");
    let text = err.to_string().to_lowercase();
    assert!(text.contains("read-only") || text.contains("read only"), "{text}");
    assert_eq!(
        author::Entity::find().all(db.replica().unwrap()).await.unwrap().len(),
        0,
        "nothing diverged"
    );
}

#[tokio::test]
async fn nodes_of_different_databases_are_refused() {
    let pg = shared(DbKind::Postgres);
    let maria = shared(DbKind::MariaDb);
    let err = RoutedConnection::builder()
        .primary(pg.primary_url())
        .replica(maria.replica_urls()[0].clone())
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BackendMismatch { .. }), "{err}");
    assert!(err.to_string().contains("every node must run the same database"), "{err}");
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn without_replicas_everything_runs_on_the_primary(#[case] kind: DbKind) {
    let cluster = shared(kind);
    let tdb = cluster.create_database("solo").await.unwrap();
    let db = RoutedConnection::builder().primary(tdb.primary_url()).connect().await.unwrap();
    Migrator::up(db.primary(), None).await.unwrap();
    let (rows, s) = served(&db, || author::Entity::find().all(&db)).await;
    assert!(rows.unwrap().is_empty());
    assert!(s.primary_only(), "{s:?}");
    assert_eq!(server_port(&db, "").await, cluster.primary().port());
}

#[tokio::test]
async fn an_unreachable_primary_is_a_clear_error() {
    let url = format!("postgres://postgres:secret@127.0.0.1:{}/postgres", closed_port());
    // Plain SeaORM waits out sqlx's acquire timeout (30 s) on a refused connection, in
    // silence; `connect()` gives up after `connect_wait` (5 s by default), naming the cause.
    let started = Instant::now();
    let err = RoutedConnection::builder().primary(url).connect().await.unwrap_err();
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(5) && took < Duration::from_secs(7), "took {took:?}");
    let text = err.to_string();
    assert!(matches!(err, Error::PrimaryUnreachable { .. }), "{text}");
    assert!(text.contains("cannot connect to the primary"), "{text}");
    assert!(text.contains("connection refused") && text.contains("`connect_wait`"), "{text}");
    assert!(!text.contains("secret"), "no credentials in errors: {text}");
    assert!(!format!("{err:?}").contains("secret"), "no credentials in Debug: {err:?}");
}

/// A primary that answers but refuses the login names the server's reason in the error's own
/// text (here a database that does not exist), not only in `source()`.
#[rstest]
#[case::postgres(DbKind::Postgres, "SQLSTATE 3D000")]
#[case::mariadb(DbKind::MariaDb, "error 1049")]
#[tokio::test]
async fn a_refused_login_names_its_cause(#[case] kind: DbKind, #[case] code: &str) {
    let cluster = shared(kind);
    let err = RoutedConnection::builder()
        .primary(cluster.primary().url_for("no_such_database"))
        .connect()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::PrimaryUnreachable { .. }), "{text}");
    assert!(text.contains("the database does not exist") && text.contains(code), "{text}");
    assert!(std::error::Error::source(&err).is_some(), "the driver's error stays the source");
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_replica_down_at_start_is_left_out_then_readmitted(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "degraded", 1).await;
    let tdb = cluster.create_database("degraded").await.unwrap();
    let replica = &cluster.replicas()[0];
    replica.crash().unwrap();

    let started = Instant::now();
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .read_your_writes(false)
        .health_policy(HealthPolicy::default().ban_base(Duration::from_millis(300)))
        .probe_interval(Duration::from_millis(100))
        .connect()
        .await
        .expect("a replica that is down does not stop the application from starting");
    assert!(started.elapsed() < Duration::from_secs(5), "the replica probe is bounded");
    assert_eq!(db.stats().replicas()[0].health(), Health::Down);
    assert_eq!(
        server_port(&db, "").await,
        cluster.primary().port(),
        "reads fall back to the primary"
    );

    replica.restart().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.stats().replicas()[0].health() != Health::Up {
        assert!(Instant::now() < deadline, "the replica was never readmitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server_port(&db, "").await, replica.port(), "reads reach the readmitted replica");
}

/// `url` with its user and password replaced.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}")
}

/// A server that refuses the monitor's connection for lack of room (PostgreSQL
/// 53300, MariaDB 1226 here: the account's connection limit, taken by other sessions) is
/// busy, not dead. While it refuses, the replica keeps its health, no probe counts as failed
/// and nothing changes; once there is room, the monitor connects and reads reach it.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_replica_with_no_room_for_the_monitor_is_busy_not_down(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "busy", 1).await;
    let tdb = cluster.create_database("busy").await.unwrap();
    // An account allowed two connections (the monitor's and the application's pool's).
    let grants = match kind {
        DbKind::Postgres => format!(
            "CREATE ROLE lim LOGIN PASSWORD 'lim' CONNECTION LIMIT 2; \
             GRANT CONNECT ON DATABASE {} TO lim",
            tdb.name()
        ),
        _ => format!(
            "CREATE USER 'lim'@'%' IDENTIFIED BY 'lim' WITH MAX_USER_CONNECTIONS 2; \
             GRANT SELECT ON {}.* TO 'lim'@'%'; GRANT SLAVE MONITOR ON *.* TO 'lim'@'%'",
            tdb.name()
        ),
    };
    cluster.primary().execute(tdb.name(), &grants).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    let replica_url = as_user(&tdb.replica_urls()[0], "lim", "lim");
    // Other sessions hold both of the account's connections to the replica.
    let held =
        [crate::support::connect(&replica_url).await, crate::support::connect(&replica_url).await];

    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replica(replica_url)
        .read_your_writes(false)
        .probe_interval(Duration::from_millis(100))
        .connect()
        .await
        .expect("a busy replica does not stop the application from starting");
    let replica = || db.stats().replicas()[0].clone();
    let changes = replica().changes();
    crate::support::until("ten busy probes", || async { replica().busy_probes() >= 10 }).await;
    let r = replica();
    eprintln!(
        "{kind}: busy probes {}, failed probes {}, health {:?}, changes {}",
        r.busy_probes(),
        r.failed_probes(),
        r.health(),
        r.changes() - changes
    );
    assert_eq!(r.failed_probes(), 0, "a busy server's refusal is not a failed probe");
    assert_ne!(r.health(), Health::Down, "busy, not down");
    assert_eq!(r.changes(), changes, "no change of health or role");

    // Room again: the monitor connects, and reads reach the replica.
    drop(held);
    let port = cluster.replicas()[0].port();
    crate::support::until("a read on the replica", || async {
        replica().position().is_some() && server_port(&db, "").await == port
    })
    .await;
    assert_eq!(replica().failed_probes(), 0);
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn reads_survive_a_replica_killed_under_them(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "killed", 2).await;
    let tdb = cluster.create_database("killed").await.unwrap();
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .read_your_writes(false)
        .probe_interval(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    Migrator::up(db.primary(), None).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    // Warm both replica pools, then kill one: its pooled connections break under the reads.
    for _ in 0..4 {
        author::Entity::find().all(&db).await.unwrap();
    }
    cluster.replicas()[0].crash().unwrap();
    let backend = db.get_database_backend();
    for i in 0..20 {
        let r = db.query_all_raw(Statement::from_string(backend, "SELECT id FROM author")).await;
        assert!(r.is_ok(), "read {i} failed at the application: {r:?}");
    }
    // The failed read marks it suspect at once; the prober confirms it down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.stats().replicas()[0].health() != Health::Down {
        assert!(Instant::now() < deadline, "never marked down: {:?}", db.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = db.stats();
    // A read on the killed replica moved on: retried after its connection broke, or hedged on
    // the other replica while it waited.
    assert!(stats.retries() + stats.hedges().won >= 1, "{stats:?}");
    assert!(stats.replicas()[1].reads() > 0, "the healthy replica kept serving: {stats:?}");
}

/// A `RoutedConfig` (TOML, as an application would ship it) with weights, zones, per-node pools
/// and policy: reads are shared 3:1 by weight, then all go to the preferred zone.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_config_with_weights_and_zones_shares_reads_by_them(#[case] kind: DbKind) {
    let cluster = shared(kind);
    let tdb = cluster.create_database("config").await.unwrap();
    let replicas = tdb.replica_urls();
    let config = |extra: &str| {
        let text = format!(
            r#"
            primary = {{ url = "{p}", pool = {{ max_connections = 4 }} }}
            [[replicas]]
            url = "{r1}"
            weight = 3
            zone = "a"
            pool = {{ max_connections = 2, idle_timeout = "30s" }}
            [[replicas]]
            url = "{r2}"
            zone = "b"
            [pool]
            acquire_timeout = "3s"
            [policy]
            read_your_writes = false
            read_retries = 1
            [monitor]
            probe_interval = "200ms"
            [health]
            failure_threshold = 2
            [router]
            balancer = "weighted_round_robin"
            {extra}
            "#,
            p = tdb.primary_url(),
            r1 = replicas[0],
            r2 = replicas[1],
        );
        let config: rwsplit_sea_orm::RoutedConfig = toml::from_str(&text).unwrap();
        config
    };
    let count_ports = |db: RoutedConnection| async move {
        // Counted once both replicas are in rotation: `connect()` waits a while for each
        // replica's first answer, and on a loaded machine one may come later.
        crate::support::until("both replicas in rotation", || async {
            db.stats()
                .replicas()
                .iter()
                .all(|n| n.health() == rwsplit_sea_orm::advanced::Health::Up)
        })
        .await;
        // A round counts when no probe of a replica failed, found it busy or changed its
        // health meanwhile (on a busy machine one may, and reads then pass it over): at most
        // three rounds.
        let mut per_port = std::collections::BTreeMap::<u16, u32>::new();
        for _ in 0..3 {
            let before = crate::support::probe_verdicts(&db);
            per_port.clear();
            for _ in 0..400 {
                *per_port.entry(server_port(&db, "").await).or_default() += 1;
            }
            if crate::support::probe_verdicts(&db) == before {
                break;
            }
        }
        per_port
    };
    let (r1, r2) = (cluster.replicas()[0].port(), cluster.replicas()[1].port());

    let weighted = count_ports(config("").connect().await.unwrap()).await;
    assert_eq!(
        weighted.keys().copied().collect::<Vec<_>>(),
        {
            let mut ports = vec![r1, r2];
            ports.sort_unstable();
            ports
        },
        "{weighted:?}"
    );
    let share = f64::from(weighted[&r1]) / 400.0;
    assert!((0.70..=0.80).contains(&share), "replica 1 (weight 3) got {share:.2}: {weighted:?}");

    let zoned = count_ports(config("prefer_zone = \"b\"").connect().await.unwrap()).await;
    assert_eq!(zoned.get(&r2), Some(&400), "every read in zone b: {zoned:?}");
}

/// The environment scheme end to end (through `RoutedConfig::from_vars`, the same reader as
/// `from_env`, so the test does not change the process environment): a per-replica weight
/// shares reads 1:3, and a per-replica pool size bounds the connections that replica serves.
#[tokio::test]
async fn the_environment_sets_weights_and_per_replica_pools() {
    let cluster = shared(DbKind::Postgres);
    let tdb = cluster.create_database("envcfg").await.unwrap();
    let replicas = tdb.replica_urls();
    let vars = [
        ("DATABASE_URL", tdb.primary_url()),
        ("DATABASE_REPLICA_URLS", replicas.join(",")),
        ("DATABASE_REPLICA_2_WEIGHT", "3".to_owned()),
        ("DATABASE_REPLICA_MAX_CONNECTIONS", "2".to_owned()),
        ("DATABASE_ACQUIRE_TIMEOUT", "10s".to_owned()),
        ("RWSPLIT_BALANCER", "weighted_round_robin".to_owned()),
        ("RWSPLIT_READ_YOUR_WRITES", "off".to_owned()),
    ];
    let db = rwsplit_sea_orm::RoutedConfig::from_vars(vars).unwrap().connect().await.unwrap();
    let (r1, r2) = (cluster.replicas()[0].port(), cluster.replicas()[1].port());
    let mut per_port = std::collections::BTreeMap::<u16, u32>::new();
    for _ in 0..400 {
        *per_port.entry(server_port(&db, "").await).or_default() += 1;
    }
    let share = f64::from(per_port.get(&r2).copied().unwrap_or(0)) / 400.0;
    assert!((0.70..=0.80).contains(&share), "replica 2 (weight 3) got {share:.2}: {per_port:?}");
    assert!(per_port.get(&r1).is_some_and(|&n| n > 0), "{per_port:?}");

    // Twelve slow reads at once: each replica's pool runs at most two of them at a time.
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let db = db.clone();
        reads.spawn(async move {
            let sql = "SELECT pg_sleep(0.3) /*envcfg*/";
            db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await
        });
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut most = 0_i64;
    for node in cluster.replicas() {
        let mut c = crate::support::connect(&node.url_for(tdb.name())).await;
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE '%/*envcfg*/%' \
             AND query NOT LIKE '%pg_stat_activity%' AND state = 'active'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        most = most.max(active);
    }
    while let Some(r) = reads.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(most, 2, "a replica pool of two ran {most} reads at once");
}

/// The major version of the PostgreSQL binaries `cluster` runs, as `postgres --version` says
/// ("postgres (PostgreSQL) 18.6"); a containers cluster runs its image's, Debian 12's 15.
fn postgres_binaries_major(cluster: &rwsplit_testkit::Cluster) -> u32 {
    let bin = cluster.state().bin_dir;
    if bin.as_os_str().is_empty() {
        return 15;
    }
    let out = std::process::Command::new(bin.join("postgres")).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no version in {text:?}"))
}

/// Every node's server is detected at connect, product and version: MariaDB 10.11 (Debian
/// 12's), and PostgreSQL of the major version its binaries say (`postgres --version`: Debian
/// 12's 15, or the 18 or 16 CI also runs, `cargo xtask itest --pg-wheel 18`). A product rwsplit
/// refuses (MySQL) is covered by the version policy's unit tests: no MySQL server can be had
/// here.
#[rstest]
#[case::postgres(DbKind::Postgres, rwsplit_sea_orm::ServerProduct::PostgreSql, None)]
#[case::mariadb(DbKind::MariaDb, rwsplit_sea_orm::ServerProduct::MariaDb, Some((10, 11)))]
#[tokio::test]
async fn connecting_detects_each_nodes_server_product_and_version(
    #[case] kind: DbKind,
    #[case] product: rwsplit_sea_orm::ServerProduct,
    #[case] version: Option<(u32, u32)>,
) {
    let cluster = shared(kind);
    let version = version.unwrap_or_else(|| (postgres_binaries_major(cluster), 0));
    let tdb = cluster.create_database("server").await.unwrap();
    let db = routed(&tdb, false).await;
    let primary = db.server().expect("the primary's server is known after connect");
    assert_eq!(primary.product(), product, "{primary:?}");
    let (major, minor, _) = primary.version();
    match kind {
        DbKind::Postgres => assert_eq!(major, version.0, "{primary:?}"),
        _ => assert_eq!((major, minor), version, "{primary:?}"),
    }
    let name = primary.product().to_string();
    assert!(primary.description().contains(&name), "{primary:?}");
    let stats = db.stats();
    assert!(!stats.replicas().is_empty());
    for node in std::iter::once(stats.primary()).chain(stats.replicas()) {
        let server =
            node.server().unwrap_or_else(|| panic!("{} not checked at connect", node.name()));
        assert_eq!(server.product(), product, "{}: {server:?}", node.name());
        assert_eq!(server.version().0, major, "{}: {server:?}", node.name());
    }
}

/// The sessions the application's pools hold on `node` for database `db`, as the server counts
/// them (the monitor's and this count's own left out on PostgreSQL, where they carry a name).
async fn sessions(node: &rwsplit_testkit::Node, db: &str) -> i64 {
    use sqlx::{Connection, Row};
    match node.db() {
        DbKind::MariaDb => {
            let url = format!("mysql://root@127.0.0.1:{}/mysql", node.port());
            let mut c = sqlx::MySqlConnection::connect(&url).await.unwrap();
            sqlx::query("SELECT count(*) AS n FROM information_schema.processlist WHERE db = ?")
                .bind(db)
                .fetch_one(&mut c)
                .await
                .unwrap()
                .get::<i64, _>("n")
        }
        _ => {
            let mut c = sqlx::PgConnection::connect(&node.url()).await.unwrap();
            sqlx::query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 \
                 AND application_name <> $2 AND pid <> pg_backend_pid()",
            )
            .bind(db)
            .bind(rwsplit_sea_orm::advanced::MONITOR_APPLICATION)
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get::<i64, _>("n")
        }
    }
}

/// (the replicas' `min_connections`): that many sessions are opened on each replica as
/// `connect()` makes its pools, before any read (the application starts warm: its first reads
/// wait for no new session), and none beyond what `connect()` itself uses without it. The pools
/// are lazy, and sqlx's would open their minimum only after closing an idle connection. The
/// opening runs beside `connect()`'s wait for first answers, which a connection sharing its
/// monitor may not have to do: each case is given up to [`WARM_WITHIN`] after `connect()`.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_replicas_min_connections_are_opened_at_connect(#[case] kind: DbKind) {
    const MIN: u32 = 4;
    let cluster = shared(kind);
    let replica = &cluster.replicas()[0];
    // Each case on a database of its own: a server's sessions are counted by database.
    let mut counts = Vec::new();
    for (name, min) in [("cold", None), ("warm", Some(MIN))] {
        let tdb = cluster.create_database(name).await.unwrap();
        let mut b = RoutedConnection::builder().primary(tdb.primary_url());
        for url in tdb.replica_urls() {
            let mut opts = sea_orm::ConnectOptions::new(url);
            if let Some(n) = min {
                opts.min_connections(n);
            }
            b = b.replica(opts);
        }
        let db = b.connect().await.unwrap();
        let warm = crate::support::eventually(WARM_WITHIN, || async {
            sessions(replica, tdb.name()).await >= i64::from(MIN)
        })
        .await;
        counts.push((warm, sessions(replica, tdb.name()).await));
        drop(db);
    }
    let [(cold, without), (warm, with)] = counts[..] else { unreachable!() };
    assert!(cold.is_none(), "without min_connections: {without} sessions");
    assert!(warm.is_some(), "{with} sessions of {MIN} open {WARM_WITHIN:?} after connect()");
}

/// How long after `connect()` a replica's `min_connections` may take to open.
const WARM_WITHIN: Duration = Duration::from_secs(2);
