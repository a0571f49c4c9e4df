//! Replication positions on the wire: what the primary has written after a write (the causal
//! token), and waiting for a replica to replay up to a token.
//!
//! Capture costs one round trip on the primary per write. SeaORM's drivers give no way to have
//! the server send its position with the write's own reply (MariaDB can put `last_gtid` in the
//! OK packet with `session_track_system_variables`, MySQL the GTID with `session_track_gtids`,
//! but sqlx does not expose session-state tracking), so the position is asked for right after
//! the write, off the request path. Any connection of the primary's would do (once the write
//! has committed, the server-wide position is at or past it); it is asked on the write's own
//! ([`On::Taken`]), which is then given back to the pool. [`Writable`] is the nodes as
//! read-your-writes reads positions on them ([`Writers`]).

use std::time::Duration;

use rwsplit_core::{CausalToken, NodeId};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult, Statement};

use crate::consistency::Writers;
use crate::nodes::registry::Nodes;
use crate::observe::counters::{Count, Counters};
use crate::product::{OneRow, Product, Waited};
use crate::routing_error::{RoutingError, read_on};

/// Where the primary's position is read
/// ([`Product::capture`](crate::product::Product::capture): a token at or past every write
/// that has committed): any connection of the primary's pool, or the connection a write has
/// just committed on, before it goes back to the pool. Reading it there saves an acquire per
/// write, and a second connection per instance for a sequential workload: sqlx tests each
/// returned connection with a ping on a task of its own, so the statement right after a write
/// would find no idle one and open another.
pub(crate) enum On<'a> {
    /// A connection of the pool's, acquired for the statement.
    Pool(&'a DatabaseConnection),
    /// A connection taken from the pool already.
    Taken(&'a mut crate::send::sending::Taken),
}

impl OneRow for On<'_> {
    async fn one_row(&mut self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            On::Pool(conn) => conn.query_one_raw(stmt).await,
            On::Taken(taken) => taken.query_one(stmt).await,
        }
    }
}

/// Whether the replica behind `conn` has replayed up to `token`, waiting in the server up to
/// `max` ([`crate::product::wait_for`]; `max` capped by [`crate::send::deadline::cap`]).
pub(crate) async fn wait_for(
    conn: &DatabaseConnection,
    token: &CausalToken,
    max: Duration,
) -> Result<Waited, DbErr> {
    crate::product::wait_for(conn, token, crate::send::deadline::cap(max)).await
}

/// The nodes' writable pools as read-your-writes reads positions on them ([`Writers`]): the
/// registry, the product whose SQL reads a position, and the counters each read moves.
pub(crate) struct Writable<'a> {
    nodes: &'a Nodes,
    product: Product,
    counters: &'a Counters,
}

impl<'a> Writable<'a> {
    /// Position reads on `nodes`' writable pools with `product`'s SQL, counted in `counters`.
    pub(crate) fn new(nodes: &'a Nodes, product: Product, counters: &'a Counters) -> Self {
        Writable { nodes, product, counters }
    }
}

impl Writers for Writable<'_> {
    fn node_count(&self) -> usize {
        self.nodes.count()
    }

    fn name_of(&self, node: NodeId) -> Option<String> {
        self.nodes.name_of(node)
    }

    async fn read_position<'a>(
        &'a self,
        node: NodeId,
        taken: Option<&'a mut crate::send::sending::Taken>,
    ) -> Result<CausalToken, DbErr> {
        let n = self.nodes.hold(node).ok_or_else(|| {
            let name = self.nodes.removed_name(node);
            DbErr::from(RoutingError::node_removed(node, name.as_deref()))
        })?;
        let cached = n.system_id();
        let mut on = match taken {
            Some(t) => On::Taken(t),
            None => On::Pool(n.writer()),
        };
        match self.product.capture(&mut on, cached).await {
            Ok((token, system_id)) => {
                n.set_system_id(system_id);
                self.counters.bump(Count::Captures);
                Ok(token)
            }
            Err(e) => {
                self.counters.bump(Count::CaptureFailures);
                Err(read_on(e, n.name()))
            }
        }
    }
}
