//! What the router needs to know about one statement.

use std::time::Instant;

use crate::classify::{Access, Classification, Dialect, Hint, Tables, tables};
use crate::consistency::Consistency;
use crate::node_id::NodeId;

/// An explicit routing override, e.g. from `db.primary()` or `db.replica()` in the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The primary, for reads and writes.
    Primary,
    /// A replica, for reads, whatever the consistency level (writes still go to the primary).
    Replica,
    /// This node, for reads (writes still go to the primary).
    Node(NodeId),
}

/// The transaction the statement runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transaction {
    /// No transaction (autocommit).
    #[default]
    None,
    /// A read-only transaction (`BEGIN READ ONLY`): may run on a replica if the router allows.
    ReadOnly,
    /// A read-write transaction: everything goes to the primary.
    ReadWrite,
}

/// What a read-your-writes read does when no replica is known to have caught up with its token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CatchUp {
    /// Go to the primary at once.
    #[default]
    Primary,
    /// Wait on the replica closest to the token (the caller waits, bounded by its deadline,
    /// e.g. with `WAIT FOR LSN` or `MASTER_GTID_WAIT`), then fall back to the primary.
    Wait,
}

const EVENTUAL: &Consistency = &Consistency::Eventual;

/// The input of [`Router::route`](crate::Router::route) besides the topology.
///
/// ```
/// use std::time::Instant;
/// use rwsplit_core::{CatchUp, Consistency, Dialect, RouteContext, Target, Transaction, explain};
///
/// let sql = "SELECT * FROM events WHERE id = $1";
/// let classification = explain(sql, Dialect::Postgres);
/// let consistency = Consistency::Strong;
/// let ctx = RouteContext::new(&classification, Instant::now())
///     .with_statement(sql, Dialect::Postgres)
///     .with_consistency(&consistency)
///     .with_target(Target::Replica)
///     .with_transaction(Transaction::None)
///     .with_catch_up(CatchUp::Wait)
///     .with_tags(&["analytics"]);
/// assert!(ctx.has_tag("analytics"));
/// assert_eq!(ctx.tables().map(|t| t.collect::<Vec<_>>()), Some(vec!["events"]));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RouteContext<'a> {
    access: Access,
    hint: Option<Hint>,
    statement_tag: Option<&'a str>,
    statement: Option<(&'a str, Dialect)>,
    consistency: &'a Consistency,
    target: Option<Target>,
    transaction: Transaction,
    tags: &'a [&'a str],
    catch_up: CatchUp,
    now: Instant,
}

impl<'a> RouteContext<'a> {
    /// The context of a classified statement at `now`: its access, hint and tag, eventual
    /// consistency, no override, no transaction.
    #[must_use]
    pub fn new(classification: &Classification<'a>, now: Instant) -> Self {
        Self {
            access: classification.access(),
            hint: classification.hint(),
            statement_tag: classification.tag(),
            ..Self::for_access(classification.access(), now)
        }
    }

    /// A context for something that is not SQL text, e.g. starting a read-only transaction.
    #[must_use]
    pub fn for_access(access: Access, now: Instant) -> Self {
        Self {
            access,
            hint: None,
            statement_tag: None,
            statement: None,
            consistency: EVENTUAL,
            target: None,
            transaction: Transaction::None,
            tags: &[],
            catch_up: CatchUp::Primary,
            now,
        }
    }

    /// The SQL text and dialect, for rules that look at tables. Costs nothing unless a rule
    /// calls [`RouteContext::tables`].
    #[must_use]
    pub fn with_statement(mut self, sql: &'a str, dialect: Dialect) -> Self {
        self.statement = Some((sql, dialect));
        self
    }

    /// The consistency the read needs (default [`Consistency::Eventual`]).
    #[must_use]
    pub fn with_consistency(mut self, consistency: &'a Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// An explicit override.
    #[must_use]
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// The transaction the statement runs in.
    #[must_use]
    pub fn with_transaction(mut self, transaction: Transaction) -> Self {
        self.transaction = transaction;
        self
    }

    /// Tags of the calling context (a request type, a job queue …), for rules.
    #[must_use]
    pub fn with_tags(mut self, tags: &'a [&'a str]) -> Self {
        self.tags = tags;
        self
    }

    /// What a read-your-writes read does when no replica has caught up.
    #[must_use]
    pub fn with_catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Read or write.
    #[must_use]
    pub fn access(&self) -> Access {
        self.access
    }

    /// The statement's comment hint.
    #[must_use]
    pub fn hint(&self) -> Option<Hint> {
        self.hint
    }

    /// The statement's `rwsplit:tag=…` comment tag.
    #[must_use]
    pub fn statement_tag(&self) -> Option<&'a str> {
        self.statement_tag
    }

    /// The SQL text, if given.
    #[must_use]
    pub fn sql(&self) -> Option<&'a str> {
        self.statement.map(|(s, _)| s)
    }

    /// The tables the statement names (see [`tables`](crate::tables)), if the text was given.
    #[must_use]
    pub fn tables(&self) -> Option<Tables<'a>> {
        self.statement.map(|(sql, d)| tables(sql, d))
    }

    /// The consistency required.
    #[must_use]
    pub fn consistency(&self) -> &'a Consistency {
        self.consistency
    }

    /// The override, if any.
    #[must_use]
    pub fn target(&self) -> Option<Target> {
        self.target
    }

    /// The transaction state.
    #[must_use]
    pub fn transaction(&self) -> Transaction {
        self.transaction
    }

    /// The context tags.
    #[must_use]
    pub fn tags(&self) -> &'a [&'a str] {
        self.tags
    }

    /// Whether the statement tag or a context tag is `tag`.
    #[must_use]
    pub fn has_tag(&self, tag: &str) -> bool {
        self.statement_tag == Some(tag) || self.tags.contains(&tag)
    }

    /// What to do if no replica has caught up.
    #[must_use]
    pub fn catch_up(&self) -> CatchUp {
        self.catch_up
    }

    /// The time of the decision.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }
}
