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
//! connection's life, so an entry never goes stale.

use dashmap::DashMap;
use rwsplit_core::{Classifier, Detached, Dialect};

/// The most texts kept.
pub(crate) const MAX_ENTRIES: usize = 512;
/// The longest text kept, in bytes.
pub(crate) const MAX_SQL: usize = 2048;

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
}

impl Classified {
    pub(crate) fn new(classifier: Classifier, dialect: Dialect) -> Classified {
        Classified { classifier, dialect, entries: DashMap::default() }
    }

    /// `sql`'s classification (detached: [`Detached::attach`] it to `sql`) and operation
    /// name: from the table, or classified now (and kept).
    pub(crate) fn get(&self, sql: &str) -> Entry {
        if let Some(e) = self.entries.get(sql) {
            return *e;
        }
        let entry = Entry {
            classification: self.classifier.explain(sql, self.dialect).detach(sql),
            operation: crate::telemetry::operation_name(sql),
        };
        if sql.len() <= MAX_SQL {
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
            self.entries.insert(sql.into(), entry);
        }
        entry
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
    use rwsplit_core::{Access, Classifier, Dialect, Hint};

    use super::{Classified, MAX_ENTRIES, MAX_SQL};

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
}
