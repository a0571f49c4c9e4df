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
//! Why the shape rather than the functions or views it names: the shape is exact. The
//! statement that was refused, with any values, goes to the primary, and nothing else does; a
//! view or table it reads is not made primary-only for every other statement that reads it,
//! and nothing has to guess which of the names in it wrote (`SELECT f(x) FROM v`: the
//! function, the view, or a function the view calls). The cost is one refusal per shape
//! rather than per function, which for an ORM's statements (one text per query, values bound)
//! is one refusal per query that writes.

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// `db.operation.name` ([`operation_name`](crate::telemetry::operation_name)).
    pub(crate) operation: &'static str,
}

/// The cache (see the module docs).
#[derive(Debug)]
pub(crate) struct Classified {
    classifier: Classifier,
    dialect: Dialect,
    entries: DashMap<Box<str>, Entry, foldhash::fast::RandomState>,
    /// Shapes replicas refused (see the module docs).
    learned: RwLock<HashSet<Box<str>, foldhash::fast::RandomState>>,
    /// Whether `learned` has anything: a read's classification consults it only then.
    any_learned: AtomicBool,
}

impl Classified {
    pub(crate) fn new(classifier: Classifier, dialect: Dialect) -> Classified {
        Classified {
            classifier,
            dialect,
            entries: DashMap::default(),
            learned: RwLock::default(),
            any_learned: AtomicBool::new(false),
        }
    }

    /// `sql`'s classification (detached: [`Detached::attach`] it to `sql`) and operation
    /// name: from the table, or classified now (and kept).
    pub(crate) fn get(&self, sql: &str) -> Entry {
        if let Some(e) = self.entries.get(sql) {
            return *e;
        }
        let mut classification = self.classifier.explain(sql, self.dialect).detach(sql);
        if classification.access() == Access::Read
            && self.any_learned.load(Ordering::Acquire)
            && shape(sql, self.dialect).is_some_and(|s| self.is_learned(&s))
        {
            classification = classification.refused();
        }
        let entry = Entry { classification, operation: crate::telemetry::operation_name(sql) };
        if sql.len() <= MAX_SQL {
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
            self.entries.insert(sql.into(), entry);
        }
        entry
    }

    fn is_learned(&self, shape: &str) -> bool {
        self.learned.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(shape)
    }

    /// A replica refused `sql`, classified as a read, because it writes: its shape is a write
    /// from now on (and the cached entry of this text too).
    pub(crate) fn learn(&self, sql: &str) -> Learned {
        let Some(shape) = shape(sql, self.dialect) else { return Learned::NoShape };
        let learned = {
            let mut set = self.learned.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if set.contains(shape.as_str()) {
                Learned::Known(shape)
            } else if set.len() >= MAX_LEARNED {
                Learned::Full(shape)
            } else {
                set.insert(shape.as_str().into());
                Learned::New(shape)
            }
        };
        if !matches!(learned, Learned::Full(_)) {
            self.any_learned.store(true, Ordering::Release);
            if let Some(mut e) = self.entries.get_mut(sql) {
                e.classification = e.classification.refused();
            }
        }
        learned
    }

    /// How many shapes were learned.
    pub(crate) fn learned(&self) -> usize {
        self.learned.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
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

    use super::{Classified, Learned, MAX_ENTRIES, MAX_LEARNED, MAX_SQL};

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
        let cache = Classified::new(Classifier::default(), Dialect::Postgres);
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
        let cache = Classified::new(classifier, Dialect::Postgres);
        for _ in 0..2 {
            assert_eq!(cache.get("SELECT bump(1)").classification.access(), Access::Write);
        }
    }

    #[test]
    fn the_table_is_bounded() {
        let cache = Classified::new(Classifier::default(), Dialect::Postgres);
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
        let cache = Classified::new(Classifier::default(), Dialect::Postgres);
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
        let cache = Classified::new(Classifier::default(), Dialect::Postgres);
        for i in 0..MAX_LEARNED {
            assert!(matches!(cache.learn(&format!("SELECT f{i}()")), Learned::New(_)));
        }
        let full = cache.learn("SELECT one_too_many()");
        assert_eq!(full, Learned::Full("select one_too_many ( ) ".into()));
        assert_eq!(cache.get("SELECT one_too_many()").classification.access(), Access::Read);
        assert_eq!(cache.learned(), MAX_LEARNED);
        let long = format!("SELECT f('{}')", "x".repeat(10)) + &" + 1".repeat(MAX_SQL);
        assert_eq!(cache.learn(&long), Learned::NoShape);
    }
}
