//! Replication positions on the wire: what the primary has written after a write (the causal
//! token), and waiting for a replica to replay up to a token.
//!
//! Capture costs one round trip on the primary per write. SeaORM's drivers give no way to have
//! the server send its position with the write's own reply (MariaDB can put `last_gtid` in the
//! OK packet with `session_track_system_variables`, MySQL the GTID with `session_track_gtids`,
//! but sqlx does not expose session-state tracking), so the position is asked for after the
//! write, when the write's scope needs it (see `Causality::after_write`), on any connection of
//! the primary's writable pool: once the write has committed, the server-wide position is at
//! or past it. One round trip and no more: the read takes a connection idle in the pool
//! without the pool's check (`test_before_acquire`'s ping, which would be a second round trip
//! before it, and the pool's `before_acquire` hook). sqlx pings every connection as it is given
//! back, so an idle one was checked when last used; one broken since fails or hangs the read
//! (bounded by the pool's acquire timeout), which is then sent again on a connection the pool
//! checks — it writes nothing. [`Writable`] is the nodes as read-your-writes reads positions
//! on them ([`Writers`]).

use std::time::Duration;

use rwsplit_core::{CausalToken, NodeId};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult, Statement};

use crate::consistency::{Purpose, Writers};
use crate::nodes::registry::Nodes;
use crate::observe::counters::{Count, Counters};
use crate::product::{OneRow, Product, Waited};
use crate::routing_error::{RoutingError, read_on};
use crate::send::sending;

/// Where the primary's position is read
/// ([`Product::capture`](crate::product::Product::capture): a token at or past every write
/// that has committed, in one or two statements): a connection taken from the primary's
/// writable pool for all of them, or, for a pool no connection can be taken from (a mock), the
/// pool itself. Taken once: sqlx tests each returned connection with a ping on a task of its
/// own, so a second statement acquiring from the pool right after the first would find no
/// idle connection and open another. A read in a task of its own gives the connection back
/// before it ends, for the same reason: a sequential writer's next statement then finds it
/// idle (a task's read that ended with a drop could leave it pinging past the next write).
enum On<'a> {
    /// A pool, acquired from for each statement.
    Pool(&'a DatabaseConnection),
    /// A connection taken from the pool for the capture.
    Taken(crate::send::sending::Taken),
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

    async fn read_position(&self, node: NodeId, purpose: Purpose) -> Result<CausalToken, DbErr> {
        let began = std::time::Instant::now();
        let n = self.nodes.hold(node).ok_or_else(|| {
            let name = self.nodes.removed_name(node);
            DbErr::from(RoutingError::node_removed(node, name.as_deref()))
        })?;
        let cached = n.system_id();
        let writer = n.writer();
        // An idle connection first, unchecked (see the module docs); else, or if the read
        // fails or hangs there, a connection the pool checks.
        let floor = purpose == Purpose::Floor;
        let idle = match sending::take_idle(writer) {
            Some((taken, bound)) => {
                crate::observe::telemetry::position_read(floor);
                let mut on = On::Taken(taken);
                let read = self.product.capture(&mut on, cached);
                match tokio::time::timeout(crate::send::deadline::cap(bound), read).await {
                    Ok(Ok(captured)) => Some((on, captured)),
                    _ => None,
                }
            }
            None => None,
        };
        let (mut on, captured) = match idle {
            Some((on, captured)) => (on, Ok(captured)),
            None => {
                let mut on = if sending::can_take(writer) {
                    match sending::take(writer).await {
                        Ok(taken) => On::Taken(taken),
                        Err(e) => {
                            self.counters.bump(Count::CaptureFailures);
                            return Err(read_on(e, n.name()));
                        }
                    }
                } else {
                    On::Pool(writer)
                };
                crate::observe::telemetry::position_read(floor);
                let captured = self.product.capture(&mut on, cached).await;
                (on, captured)
            }
        };
        if purpose == Purpose::WriteInBackground
            && let On::Taken(taken) = &mut on
        {
            taken.give_back().await;
        }
        match captured {
            Ok((token, system_id)) => {
                n.set_system_id(system_id);
                if floor {
                    self.counters.bump(Count::FloorReads);
                } else {
                    self.counters.bump(Count::Captures);
                    let took = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                    self.counters.add(Count::CaptureMicros, took);
                }
                Ok(token)
            }
            Err(e) => {
                self.counters.bump(Count::CaptureFailures);
                Err(read_on(e, n.name()))
            }
        }
    }
}
