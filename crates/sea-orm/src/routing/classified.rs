//! Classification cached by statement text.
//!
//! SeaORM sends the same SQL text for every call of the same query (values are bound
//! parameters), so an application's statements are a small set of texts classified over and
//! over. [`Classified`] keeps each text's [`Detached`] classification and its
//! `db.operation.name`, so a statement seen before costs one hash and one comparison of its
//! text instead of a pass of the lexer (about 2,000 instructions for a 200-byte `SELECT`).
//!
//! Bounded: at most [`MAX_ENTRIES`] texts of at most [`MAX_SQL`] bytes each (longer ones are
//! classified every time and never kept). When it is full the whole table is dropped and
//! fills again with what runs next: a workload with more distinct hot texts than the bound
//! classifies some of them twice, never more memory. The classifier is fixed for a
//! connection's life; what changes an entry is a replica's refusal (below).
//!
//! **Learned writes.** A statement classified as a read that a replica refused because it
//! writes (a user function or view that writes: what the text cannot show) is remembered by its
//! [`shape`] (the text with its values taken out) in a second table of at most [`MAX_LEARNED`]
//! shapes, never dropped: a statement of that shape is a write from then on
//! ([`Detached::refused`]), so it goes to the primary without a refusal first. The table is
//! consulted only when a text is classified (a miss in the cache above) as a read, and only
//! once something was learned: until then a read pays nothing for it.
//!
//! The table belongs to the database, not to one connection ([`LearnedShapes::of`]): every
//! connection of the process whose configured primary is the same `host:port/database` with
//! the same dialect shares it, so what one learned, the others route to the primary without a
//! refusal of their own (functions and views belong to a database, whatever user or pool
//! calls them). Other databases of the same servers (one per tenant) have tables of their own:
//! a tenant's function that writes says nothing of another tenant's function of that name.
//! Connections made of the application's own pools
//! ([`from_connections`](crate::RoutedConnection::from_connections)), which have no address to
//! compare, keep a table of their own. A shape learned moves the table's generation on; each
//! connection's cache drops its texts when it sees the generation move (one atomic load per
//! statement), so a text cached as a read before its shape was learned is not refused again.
//! (A text classified while the shape was being learned may still be cached as a read once:
//! its next refusal finds the shape known and mends the entry.)
//!
//! Why the shape rather than the functions or views it names: the shape is exact. The
//! statement that was refused, with any values, goes to the primary, and nothing else does; a
//! view or table it reads is not made primary-only for every other statement that reads it,
//! and nothing has to guess which of the names in it wrote (`SELECT f(x) FROM v`: the
//! function, the view, or a function the view calls). The cost is one refusal per shape
//! rather than per function, which for an ORM's statements (one text per query, values bound)
//! is one refusal per query that writes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use dashmap::DashMap;
use rwsplit_core::{Access, Classifier, Detached, Dialect, shape};

/// The most texts kept.
pub(crate) const MAX_ENTRIES: usize = 512;
/// The longest text kept, in bytes.
pub(crate) const MAX_SQL: usize = 2048;
/// The most shapes learned from replicas' refusals (each at most
/// [`MAX_SHAPE`](rwsplit_core::MAX_SHAPE) bytes: 2 MiB at most in all).
pub(crate) const MAX_LEARNED: usize = 1024;

/// What [`Classified::learn`] did with a refused statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Learned {
    /// Its shape is new: statements of this shape go to the primary from now on.
    New(String),
    /// Its shape was learned already (a statement of it planned before it was learned).
    Known(String),
    /// Its shape is new, but the table is full: not learned.
    Full(String),
    /// It has no shape (longer than `MAX_SHAPE`): not learned.
    NoShape,
}

impl Learned {
    /// The shape, if it has one.
    pub(crate) fn shape(&self) -> Option<&str> {
        match self {
            Learned::New(s) | Learned::Known(s) | Learned::Full(s) => Some(s),
            Learned::NoShape => None,
        }
    }
}

/// What is kept of one text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) classification: Detached,
    /// `db.operation.name` ([`operation_name`](crate::observe::telemetry::operation_name)).
    pub(crate) operation: &'static str,
}

impl Entry {
    /// Whether the statement was classified as a read (the router may send it to a replica).
    pub(crate) fn reads(&self) -> bool {
        self.classification.access() != rwsplit_core::Access::Write
    }
}

/// The shapes replicas of one database refused, shared by the connections to it in this
/// process (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct LearnedShapes {
    set: RwLock<HashSet<Box<str>, foldhash::fast::RandomState>>,
    /// How many shapes were learned (each bumps it once, under `set`'s lock): a connection's
    /// cache drops its texts when it moves.
    generation: AtomicU64,
    /// The table filled up and that was logged (once).
    full_logged: AtomicBool,
}

/// Each database's table, by dialect and the configured primary's `host:port/database`.
static LEARNED: crate::nodes::shared::Registry<(Dialect, String), LearnedShapes> =
    crate::nodes::shared::Registry::new();

impl LearnedShapes {
    /// The table of the database `database` (its primary's `host:port/database`, never
    /// credentials) in `dialect`, shared with every other connection to it in the process; a
    /// table of its own for `None` (no address to compare).
    pub(crate) fn of(dialect: Dialect, database: Option<&str>) -> Arc<LearnedShapes> {
        match database {
            Some(database) => LEARNED.get_or_insert((dialect, database.to_owned()), Arc::default).0,
            None => Arc::default(),
        }
    }

    fn contains(&self, shape: &str) -> bool {
        self.set.read().unwrap_or_else(PoisonError::into_inner).contains(shape)
    }
}

/// The cache (see the module docs).
#[derive(Debug)]
pub(crate) struct Classified {
    classifier: Classifier,
    dialect: Dialect,
    entries: DashMap<Box<str>, Entry, foldhash::fast::RandomState>,
    /// Shapes replicas refused (see the module docs), shared with the database's other
    /// connections.
    learned: Arc<LearnedShapes>,
    /// The generation of `learned` the entries were classified at.
    seen: AtomicU64,
}

impl Classified {
    pub(crate) fn new(
        classifier: Classifier,
        dialect: Dialect,
        learned: Arc<LearnedShapes>,
    ) -> Classified {
        Classified {
            classifier,
            dialect,
            entries: DashMap::default(),
            learned,
            seen: AtomicU64::new(0),
        }
    }

    /// `sql`'s classification (detached: [`Detached::attach`] it to `sql`) and operation
    /// name: from the table, or classified now (and kept).
    pub(crate) fn get(&self, sql: &str) -> Entry {
        let generation = self.learned.generation.load(Ordering::Acquire);
        if generation != self.seen.load(Ordering::Relaxed) {
            // A shape was learned (here or by another connection to the database): texts
            // cached as reads before may be of it.
            self.entries.clear();
            self.seen.store(generation, Ordering::Relaxed);
        } else if let Some(e) = self.entries.get(sql) {
            return *e;
        }
        let mut classification = self.classifier.explain(sql, self.dialect).detach(sql);
        if classification.access() == Access::Read
            && generation > 0
            && shape(sql, self.dialect).is_some_and(|s| self.learned.contains(&s))
        {
            classification = classification.refused();
        }
        let entry =
            Entry { classification, operation: crate::observe::telemetry::operation_name(sql) };
        if sql.len() <= MAX_SQL {
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
            self.entries.insert(sql.into(), entry);
        }
        entry
    }

    /// A replica refused `sql`, classified as a read, because it writes: its shape is a write
    /// from now on (and the cached entry of this text too).
    pub(crate) fn learn(&self, sql: &str) -> Learned {
        let Some(shape) = shape(sql, self.dialect) else { return Learned::NoShape };
        let learned = {
            let mut set = self.learned.set.write().unwrap_or_else(PoisonError::into_inner);
            if set.contains(shape.as_str()) {
                Learned::Known(shape)
            } else if set.len() >= MAX_LEARNED {
                Learned::Full(shape)
            } else {
                set.insert(shape.as_str().into());
                // Under the lock: a cache that sees the generation move finds the shape.
                self.learned.generation.fetch_add(1, Ordering::AcqRel);
                Learned::New(shape)
            }
        };
        if !matches!(learned, Learned::Full(_))
            && let Some(mut e) = self.entries.get_mut(sql)
        {
            e.classification = e.classification.refused();
        }
        learned
    }

    /// Whether `learned` is the first [`Learned::Full`] of the database's table (it is
    /// logged once, at WARN: from then on, new shapes are refused on every call).
    pub(crate) fn first_full(&self, learned: &Learned) -> bool {
        matches!(learned, Learned::Full(_))
            && !self.learned.full_logged.swap(true, Ordering::AcqRel)
    }

    /// How many shapes were learned for this connection's database (by any of its
    /// connections in the process).
    pub(crate) fn learned(&self) -> usize {
        usize::try_from(self.learned.generation.load(Ordering::Acquire)).unwrap_or(usize::MAX)
    }

    /// How many texts are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use rwsplit_core::{Access, Classifier, Dialect, Hint, Reason};

    use std::sync::Arc;

    use super::{Classified, Learned, LearnedShapes, MAX_ENTRIES, MAX_LEARNED, MAX_SQL};

    /// A cache with a learned table of its own.
    fn own(classifier: Classifier) -> Classified {
        Classified::new(classifier, Dialect::Postgres, Arc::default())
    }

    #[rstest]
    #[case::select(
        "SELECT \"t\".\"id\" FROM \"t\" WHERE \"t\".\"id\" = $1",
        Access::Read,
        None,
        "SELECT"
    )]
    #[case::insert("INSERT INTO t VALUES ($1) RETURNING id", Access::Write, None, "INSERT")]
    #[case::locking("SELECT * FROM t FOR UPDATE", Access::Write, None, "SELECT")]
    #[case::hint("/*rwsplit:primary*/ SELECT 1", Access::Write, Some(Hint::Primary), "SELECT")]
    #[case::tagged(
        "/* rwsplit:replica, tag=reports */ SELECT 1",
        Access::Read,
        Some(Hint::Replica),
        "SELECT"
    )]
    fn a_cached_text_classifies_as_a_fresh_one(
        #[case] sql: &str,
        #[case] access: Access,
        #[case] hint: Option<Hint>,
        #[case] operation: &str,
    ) {
        let cache = own(Classifier::default());
        let fresh = Classifier::default().explain(sql, Dialect::Postgres);
        let first = cache.get(sql);
        let again = sql.to_owned();
        let second = cache.get(&again);
        assert_eq!(cache.len(), 1, "kept once");
        for (c, op) in [
            (first.classification.attach(sql), first.operation),
            (second.classification.attach(&again), second.operation),
        ] {
            assert_eq!(c, fresh);
            assert_eq!(c.access(), access);
            assert_eq!(c.hint(), hint);
            assert_eq!(op, operation);
        }
    }

    #[test]
    fn the_write_list_of_the_connections_classifier_is_used() {
        let classifier = Classifier::default().with_write_functions(["bump"]);
        let cache = own(classifier);
        for _ in 0..2 {
            assert_eq!(cache.get("SELECT bump(1)").classification.access(), Access::Write);
        }
    }

    #[test]
    fn the_table_is_bounded() {
        let cache = own(Classifier::default());
        let long = format!("SELECT '{}'", "x".repeat(MAX_SQL));
        assert_eq!(cache.get(&long).classification.access(), Access::Read);
        assert_eq!(cache.len(), 0, "a text over {MAX_SQL} bytes is not kept");
        for i in 0..(3 * MAX_ENTRIES) {
            let sql = format!("SELECT {i}");
            assert_eq!(cache.get(&sql).classification.access(), Access::Read);
            assert!(cache.len() <= MAX_ENTRIES);
        }
    }

    #[test]
    fn a_refused_shape_is_a_write_from_then_on_whatever_its_values() {
        let cache = own(Classifier::default());
        let first = "SELECT bump('a', 1)";
        assert_eq!(cache.get(first).classification.access(), Access::Read);
        assert_eq!(cache.learn(first), Learned::New("select bump ( ? ) ".into()));
        // The cached text, a new text of the same shape, and after the cache is dropped.
        assert_eq!(cache.get(first).classification.access(), Access::Write);
        let other = "select  BUMP('b', 2) /* another call */";
        let c = cache.get(other).classification;
        assert_eq!((c.access(), c.attach(other).reason()), (Access::Write, Reason::Refused));
        assert_eq!(cache.learn(other), Learned::Known("select bump ( ? ) ".into()));
        for i in 0..=MAX_ENTRIES {
            cache.get(&format!("SELECT {i}"));
        }
        assert_eq!(cache.get(first).classification.access(), Access::Write);
        // Other statements are untouched.
        assert_eq!(cache.get("SELECT other('a')").classification.access(), Access::Read);
        assert_eq!(cache.learned(), 1);
    }

    #[test]
    fn the_learned_table_is_bounded() {
        let cache = own(Classifier::default());
        for i in 0..MAX_LEARNED {
            assert!(matches!(cache.learn(&format!("SELECT f{i}()")), Learned::New(_)));
        }
        let full = cache.learn("SELECT one_too_many()");
        assert_eq!(full, Learned::Full("select one_too_many ( ) ".into()));
        assert!(cache.first_full(&full), "the first one is logged");
        assert!(!cache.first_full(&cache.learn("SELECT two_too_many()")), "once");
        assert_eq!(cache.get("SELECT one_too_many()").classification.access(), Access::Read);
        assert_eq!(cache.learned(), MAX_LEARNED);
        let long = format!("SELECT f('{}')", "x".repeat(10)) + &" + 1".repeat(MAX_SQL);
        assert_eq!(cache.learn(&long), Learned::NoShape);
    }

    #[test]
    fn a_text_cached_as_a_read_is_a_write_once_its_shape_is_learned() {
        let cache = own(Classifier::default());
        let cached = "SELECT bump('x')";
        assert_eq!(cache.get(cached).classification.access(), Access::Read);
        assert!(matches!(cache.learn("SELECT bump('y')"), Learned::New(_)));
        assert_eq!(cache.get(cached).classification.access(), Access::Write);
        assert_eq!(cache.get("SELECT 1").classification.access(), Access::Read);
    }

    #[test]
    fn connections_to_one_database_share_what_they_learned() {
        let shared = |dialect, db| LearnedShapes::of(dialect, db);
        let (a, b) = (
            Classified::new(
                Classifier::default(),
                Dialect::Postgres,
                shared(Dialect::Postgres, Some("h:5432/app")),
            ),
            Classified::new(
                Classifier::default(),
                Dialect::Postgres,
                shared(Dialect::Postgres, Some("h:5432/app")),
            ),
        );
        let tenant = Classified::new(
            Classifier::default(),
            Dialect::Postgres,
            shared(Dialect::Postgres, Some("h:5432/tenant")),
        );
        let other_dialect = Classified::new(
            Classifier::default(),
            Dialect::MySql,
            shared(Dialect::MySql, Some("h:5432/app")),
        );
        let unnamed = Classified::new(
            Classifier::default(),
            Dialect::Postgres,
            shared(Dialect::Postgres, None),
        );
        let call = "SELECT bump(1)";
        for c in [&a, &b, &tenant, &other_dialect, &unnamed] {
            assert_eq!(c.get(call).classification.access(), Access::Read);
        }
        assert!(matches!(a.learn(call), Learned::New(_)));
        // `b` had the text cached as a read: it is a write now, without a refusal of its own.
        assert_eq!(b.get(call).classification.access(), Access::Write);
        assert_eq!(b.learned(), 1);
        assert_eq!(b.learn(call), Learned::Known("select bump ( ? ) ".into()));
        for c in [&tenant, &other_dialect, &unnamed] {
            assert_eq!(c.get(call).classification.access(), Access::Read);
            assert_eq!(c.learned(), 0);
        }
        // The last holder gone, the table goes: a new connection starts afresh.
        drop((a, b));
        let again = shared(Dialect::Postgres, Some("h:5432/app"));
        assert_eq!(Classified::new(Classifier::default(), Dialect::Postgres, again).learned(), 0);
    }
}
