//! Building a node's pools: the one place the builder ([`connect`](crate::RoutedConnectionBuilder::connect))
//! and topology discovery ([`discover`](crate::discover)) both make a node's SeaORM connections.
//! Nothing connects here that the options do not ask for: a replica's pools are lazy.

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::connection::Node;
use crate::pooling::Pooling;
use crate::product::Product;

/// The primary's pool (reads and writes share it), with the adapter's acquire timeout unless
/// the options set one. Connects at once unless the options are lazy.
pub(crate) async fn open_primary(
    mut opts: ConnectOptions,
    acquire: Duration,
) -> Result<DatabaseConnection, DbErr> {
    with_acquire_timeout(&mut opts, acquire);
    Database::connect(opts).await
}

/// A replica's node from its options (prepared for its `pooling`; nothing connects yet): a
/// read-only pool and a lazy writable one that opens connections only if the node is promoted,
/// both with the adapter's acquire timeout unless the options set one.
pub(crate) async fn open_replica(
    name: String,
    mut opts: ConnectOptions,
    product: Product,
    acquire: Duration,
    pooling: Pooling,
) -> Result<Node, DbErr> {
    opts.connect_lazy(true);
    with_acquire_timeout(&mut opts, acquire);
    let writer = Database::connect(opts.clone()).await?;
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
