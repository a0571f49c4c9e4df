//! Building a node's pools: the one place the builder ([`connect`](crate::RoutedConnectionBuilder::connect))
//! and topology discovery ([`discover`](crate::connection::discover)) both make a node's SeaORM connections.
//! Nothing connects here that the options do not ask for: a replica's pools are lazy, its read
//! pool opening at once only the `min_connections` its options set ([`crate::product::warm`]).

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::nodes::Node;
use crate::product::Pooling;
use crate::product::Product;
use crate::send::deadline::Acquire;

/// The primary's pool (reads and writes share it), with the adapter's acquire timeout for a pool
/// that writes unless the options set one. Connects at once unless the options are lazy.
pub(crate) async fn open_primary(
    mut opts: ConnectOptions,
    acquire: Acquire,
) -> Result<DatabaseConnection, DbErr> {
    with_acquire_timeout(&mut opts, acquire.write);
    Database::connect(opts).await
}

/// A replica's node from its options (prepared for its `pooling`; nothing connects yet): a
/// read-only pool and a lazy writable one that opens connections only if the node is promoted,
/// with the adapter's acquire timeouts for reads and for writes ([`Acquire`]) unless the
/// options set one. `checks_clients`: its server ends a gone client's statement by itself
/// when told to ([`crate::Server::checks_clients`]), and the read pool's sessions are told.
pub(crate) async fn open_replica(
    name: String,
    mut opts: ConnectOptions,
    product: Product,
    acquire: Acquire,
    pooling: Pooling,
    checks_clients: bool,
) -> Result<Node, DbErr> {
    opts.connect_lazy(true);
    let mut writer = opts.clone();
    with_acquire_timeout(&mut writer, acquire.write);
    let writer = Database::connect(writer).await?;
    with_acquire_timeout(&mut opts, acquire.read);
    ping_only_after_idle(&mut opts, pooling);
    product.make_read_only(&mut opts, pooling, checks_clients);
    let record_stmt = opts.get_record_stmt_in_spans();
    let min = opts.get_min_connections().unwrap_or(0);
    let conn = Database::connect(opts).await?;
    crate::product::warm(&conn, min);
    Ok(Node::with_writer(name, conn, writer).owned().recording(record_stmt))
}

/// How long a replica's pooled connection may sit idle before the pool pings it on its next
/// use ([`ping_only_after_idle`]).
pub(crate) const REPLICA_PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A replica's read pool pings a connection before handing it out only when it has been idle
/// for [`REPLICA_PING_AFTER_IDLE`], not before every use as SeaORM's default
/// (`test_before_acquire`) does: that ping is a round trip on every read. A connection idle that
/// long may have been dropped by the server, a proxy or a firewall; a hot one is used as it is,
/// and a read that finds it broken is retried on the next node (reads are safe to retry) while
/// the monitor watches the node. Options that turned the ping off, or chose their own idle
/// threshold (`test_before_acquire_if_idle_for`, `Duration::ZERO` to ping every time), keep
/// their choice; so does [`Pooling::Transaction`], whose `BEGIN` is the ping.
fn ping_only_after_idle(opts: &mut ConnectOptions, pooling: Pooling) {
    if pooling != Pooling::Transaction
        && opts.get_test_before_acquire()
        && opts.get_test_before_acquire_if_idle_for().is_none()
    {
        opts.test_before_acquire_if_idle_for(REPLICA_PING_AFTER_IDLE);
    }
}

/// Sets the pool's acquire timeout, unless the options already have one of their own.
fn with_acquire_timeout(opts: &mut ConnectOptions, timeout: Duration) {
    if opts.get_acquire_timeout().is_none() && opts.get_connect_timeout().is_none() {
        opts.acquire_timeout(crate::send::deadline::cap(timeout));
    }
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use std::time::Duration;

    use rstest::rstest;

    use super::*;

    fn acquire_timeout(db: &DatabaseConnection) -> Duration {
        db.get_postgres_connection_pool().options().get_acquire_timeout()
    }

    /// (the builder's acquire timeout if set; the primary's, a replica's writer's and its
    /// read-only pool's, in seconds). Unset: pools that write wait as plain SeaORM's do (sqlx's
    /// 30 s), a replica's reads 5 s before they move on; set, every pool the same.
    #[rstest]
    #[case::defaults(None, 30, 30, 5)]
    #[case::set(Some(7), 7, 7, 7)]
    #[tokio::test]
    async fn pools_that_write_wait_as_seaorms_and_replica_reads_move_on(
        #[case] set: Option<u64>,
        #[case] primary: u64,
        #[case] writer: u64,
        #[case] reader: u64,
    ) {
        let acquire = set.map_or_else(Acquire::default, |s| Acquire {
            write: Duration::from_secs(s),
            read: Duration::from_secs(s),
        });
        let url = "postgres://u:p@127.0.0.1:1/db";
        let mut opts = ConnectOptions::new(url);
        opts.connect_lazy(true);
        let p = open_primary(opts.clone(), acquire).await.unwrap();
        assert_eq!(acquire_timeout(&p), Duration::from_secs(primary));
        let node =
            open_replica("r".into(), opts, Product::POSTGRES, acquire, Pooling::Direct, false)
                .await
                .unwrap();
        assert_eq!(acquire_timeout(node.user_writer()), Duration::from_secs(writer));
        assert_eq!(acquire_timeout(node.user_conn()), Duration::from_secs(reader));
    }

    /// (the replica's pooling, the options' `test_before_acquire`, their idle threshold in ms;
    /// the read pool's `test_before_acquire` and threshold after): a ping after 1 s idle instead
    /// of at every use, unless the options chose otherwise or the `BEGIN` is the ping.
    #[rstest]
    #[case::default(Pooling::Direct, true, None, false, Some(1000))]
    #[case::session(Pooling::Session, true, None, false, Some(1000))]
    #[case::transaction(Pooling::Transaction, true, None, true, None)]
    #[case::ping_turned_off(Pooling::Direct, false, None, false, None)]
    #[case::own_threshold(Pooling::Direct, true, Some(0), false, Some(0))]
    fn replica_reads_ping_only_after_idle(
        #[case] pooling: Pooling,
        #[case] test: bool,
        #[case] idle_ms: Option<u64>,
        #[case] want_test: bool,
        #[case] want_idle_ms: Option<u64>,
    ) {
        let mut opts = ConnectOptions::new("postgres://u:p@127.0.0.1:1/db");
        opts.test_before_acquire(test);
        if let Some(ms) = idle_ms {
            opts.test_before_acquire_if_idle_for(Duration::from_millis(ms));
        }
        ping_only_after_idle(&mut opts, pooling);
        assert_eq!(opts.get_test_before_acquire(), want_test);
        assert_eq!(
            opts.get_test_before_acquire_if_idle_for(),
            want_idle_ms.map(Duration::from_millis)
        );
    }

    /// The pools themselves: a replica's read pool hands out a hot connection without a ping;
    /// its writable pool (used after a promotion) and the primary's keep SeaORM's default.
    #[tokio::test]
    async fn only_a_replicas_read_pool_skips_the_ping() {
        let mut opts = ConnectOptions::new("postgres://u:p@127.0.0.1:1/db");
        opts.connect_lazy(true);
        let test = |db: &DatabaseConnection| {
            db.get_postgres_connection_pool().options().get_test_before_acquire()
        };
        let p = open_primary(opts.clone(), Acquire::default()).await.unwrap();
        let node = open_replica(
            "r".into(),
            opts,
            Product::POSTGRES,
            Acquire::default(),
            Pooling::Direct,
            true,
        )
        .await
        .unwrap();
        assert!(test(&p));
        assert!(test(node.user_writer()));
        assert!(!test(node.user_conn()));
    }

    /// (whether the server ends a gone client's statement when told; a replica read pool's
    /// startup options under `Pooling::Direct`): read-only always, the client check only where
    /// the server has it (a server without it would refuse the connection).
    #[rstest]
    #[case::checks(
        true,
        "-c default_transaction_read_only=on -c client_connection_check_interval=250"
    )]
    #[case::cannot(false, "-c default_transaction_read_only=on")]
    #[tokio::test]
    async fn a_replicas_read_sessions_are_read_only_and_check_their_client(
        #[case] checks_clients: bool,
        #[case] startup: &str,
    ) {
        let mut opts = ConnectOptions::new("postgres://u:p@127.0.0.1:1/db");
        opts.connect_lazy(true);
        let node = open_replica(
            "r".into(),
            opts,
            Product::POSTGRES,
            Acquire::default(),
            Pooling::Direct,
            checks_clients,
        )
        .await
        .unwrap();
        let options = node.user_conn().get_postgres_connection_pool().connect_options();
        assert_eq!(options.get_options(), Some(startup));
    }
}
