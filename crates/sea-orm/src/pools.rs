//! Building a node's pools: the one place the builder ([`connect`](crate::RoutedConnectionBuilder::connect))
//! and topology discovery ([`discover`](crate::discover)) both make a node's SeaORM connections.
//! Nothing connects here that the options do not ask for: a replica's pools are lazy.

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::connection::Node;
use crate::deadline::Acquire;
use crate::pooling::Pooling;
use crate::product::Product;

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
/// options set one.
pub(crate) async fn open_replica(
    name: String,
    mut opts: ConnectOptions,
    product: Product,
    acquire: Acquire,
    pooling: Pooling,
) -> Result<Node, DbErr> {
    opts.connect_lazy(true);
    let mut writer = opts.clone();
    with_acquire_timeout(&mut writer, acquire.write);
    let writer = Database::connect(writer).await?;
    with_acquire_timeout(&mut opts, acquire.read);
    product.make_read_only(&mut opts, pooling);
    let record_stmt = opts.get_record_stmt_in_spans();
    let conn = Database::connect(opts).await?;
    Ok(Node::with_writer(name, conn, writer).owned().recording(record_stmt))
}

/// Sets the pool's acquire timeout, unless the options already have one of their own.
fn with_acquire_timeout(opts: &mut ConnectOptions, timeout: Duration) {
    if opts.get_acquire_timeout().is_none() && opts.get_connect_timeout().is_none() {
        opts.acquire_timeout(crate::deadline::cap(timeout));
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
        let node = open_replica("r".into(), opts, Product::Postgres, acquire, Pooling::Direct)
            .await
            .unwrap();
        assert_eq!(acquire_timeout(node.user_writer()), Duration::from_secs(writer));
        assert_eq!(acquire_timeout(node.user_conn()), Duration::from_secs(reader));
    }
}
