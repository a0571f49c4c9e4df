//! Functions whose calls make a statement a write: side effects or session state.
//!
//! The built-in list is [`DEFAULT_WRITE_FUNCTIONS`]. A name ending in `*` matches every
//! function whose name starts with what comes before it. Matching is ASCII-case-insensitive
//! on the last component of a possibly schema-qualified or quoted name, and the list is the
//! union for all dialects (a PostgreSQL name never harms MySQL and vice versa).

/// The built-in list of functions that force a statement to the primary, sorted.
///
/// PostgreSQL (every function of `pg_catalog` that is volatile or not parallel-safe was reviewed
/// on PostgreSQL 15; the verdicts are in `pg_catalog_functions.txt` next to this file, which a
/// test checks against this list, and which says how to redo the review for a new major
/// version). Names of older and newer versions are included:
/// - sequences: `nextval`, `setval`, and the session's `currval`, `lastval`;
///   `pg_sequence_last_value` (a standby's value runs ahead of the primary's);
/// - locks: `pg_advisory_*`, `pg_try_advisory_*` (locks live on one server);
/// - writes to tables, indexes and catalogues: `brin_summarize_new_values`,
///   `brin_summarize_range`, `brin_desummarize_range`, `gin_clean_pending_list`,
///   `pg_import_system_collations`, `pg_extension_config_dump`, `pg_nextoid`,
///   `pg_stop_making_pinned_objects`, `binary_upgrade_*`, `pg_restore_relation_stats`,
///   `pg_restore_attribute_stats`, `pg_clear_relation_stats`, `pg_clear_attribute_stats`;
///   large objects: `lo_creat`, `lo_create`, `lo_import`, `lo_export`, `lo_unlink`, `lo_put`,
///   `lo_from_bytea`, `lo_open`, `lo_close`, `lo_truncate`, `lo_truncate64`, `lo_lseek`,
///   `lo_lseek64`, `lo_tell`, `lo_tell64`, `lowrite`, `loread` (not `lo_get`);
/// - WAL, replication slots and origins: `pg_current_wal_lsn`, `pg_current_wal_insert_lsn`,
///   `pg_current_wal_flush_lsn`, `pg_current_xlog_location`, `pg_current_xlog_insert_location`,
///   `pg_switch_wal`, `pg_switch_xlog`, `pg_create_restore_point`, `pg_log_standby_snapshot`,
///   `pg_logical_emit_message`, `pg_create_*`, `pg_copy_logical_replication_slot`,
///   `pg_copy_physical_replication_slot`, `pg_drop_replication_slot`,
///   `pg_replication_slot_advance`, `pg_sync_replication_slots`, `pg_logical_slot_*` (getting
///   changes consumes them; peeking reads the primary's slot), `pg_replication_origin_*`;
/// - session and transaction state: `set_config`, `setseed`, `pg_export_snapshot`,
///   `pg_backend_pid`, `txid_current`, `txid_current_if_assigned`, `pg_current_xact_id`,
///   `pg_current_xact_id_if_assigned`, `cursor_to_xml*` (reads an open cursor), `pg_backup_start`,
///   `pg_backup_stop`, `pg_start_backup`, `pg_stop_backup` (a backup belongs to a session);
/// - query text run inside: `query_to_xml*`, `ts_stat`, `ts_rewrite`, and the `dblink*`
///   extension (may run anything on another server);
/// - administration: `pg_notify`, `pg_terminate_backend`, `pg_cancel_backend`,
///   `pg_log_backend_memory_contexts` (process ids are per server), `pg_reload_conf`,
///   `pg_rotate_logfile*`, `pg_promote`, `pg_stat_reset*`, `pg_stat_statements_reset`,
///   `pg_wal_replay_pause`, `pg_wal_replay_resume` (and their `xlog` names: they act on the
///   server they run on, so pick the replica with `db.replica()`; the primary refuses them).
///
/// MySQL and MariaDB:
/// - named locks: `get_lock`, `release_lock`, `release_all_locks`, `is_used_lock`, `is_free_lock`;
/// - session results: `last_insert_id`, `found_rows`, `row_count`, `connection_id`;
/// - replication waits: `master_pos_wait`, `source_pos_wait`, `master_gtid_wait`,
///   `wait_for_executed_gtid_set`, `wait_until_sql_thread_after_gtids`;
/// - MariaDB sequences `nextval`, `lastval`, `setval` (shared with PostgreSQL above).
///
/// Deliberately absent: `sleep`/`pg_sleep`, `uuid_short`, `random`/`rand`, `now`, `lo_get`:
/// they have no effect another server could observe, so a replica may run them. Functions of
/// other extensions are not listed: add those that write, lock or run query text with
/// [`Classifier::with_write_functions`](super::Classifier::with_write_functions) (e.g.
/// `tablefunc`'s `crosstab*`, whose name would put every `COALESCE` through the list scan).
pub const DEFAULT_WRITE_FUNCTIONS: &[&str] = &[
    "binary_upgrade_*",
    "brin_desummarize_range",
    "brin_summarize_new_values",
    "brin_summarize_range",
    "connection_id",
    "currval",
    "cursor_to_xml*",
    "dblink*",
    "found_rows",
    "get_lock",
    "gin_clean_pending_list",
    "is_free_lock",
    "is_used_lock",
    "last_insert_id",
    "lastval",
    "lo_close",
    "lo_creat",
    "lo_create",
    "lo_export",
    "lo_from_bytea",
    "lo_import",
    "lo_lseek",
    "lo_lseek64",
    "lo_open",
    "lo_put",
    "lo_tell",
    "lo_tell64",
    "lo_truncate",
    "lo_truncate64",
    "lo_unlink",
    "loread",
    "lowrite",
    "master_gtid_wait",
    "master_pos_wait",
    "nextval",
    "pg_advisory_*",
    "pg_backend_pid",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_cancel_backend",
    "pg_clear_attribute_stats",
    "pg_clear_relation_stats",
    "pg_copy_logical_replication_slot",
    "pg_copy_physical_replication_slot",
    "pg_create_*",
    "pg_create_restore_point",
    "pg_current_wal_flush_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_lsn",
    "pg_current_xact_id",
    "pg_current_xact_id_if_assigned",
    "pg_current_xlog_insert_location",
    "pg_current_xlog_location",
    "pg_drop_replication_slot",
    "pg_export_snapshot",
    "pg_extension_config_dump",
    "pg_import_system_collations",
    "pg_log_backend_memory_contexts",
    "pg_log_standby_snapshot",
    "pg_logical_emit_message",
    "pg_logical_slot_*",
    "pg_nextoid",
    "pg_notify",
    "pg_promote",
    "pg_reload_conf",
    "pg_replication_origin_*",
    "pg_replication_slot_advance",
    "pg_restore_attribute_stats",
    "pg_restore_relation_stats",
    "pg_rotate_logfile*",
    "pg_sequence_last_value",
    "pg_start_backup",
    "pg_stat_reset*",
    "pg_stat_statements_reset",
    "pg_stop_backup",
    "pg_stop_making_pinned_objects",
    "pg_switch_wal",
    "pg_switch_xlog",
    "pg_sync_replication_slots",
    "pg_terminate_backend",
    "pg_try_advisory_*",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_xlog_replay_pause",
    "pg_xlog_replay_resume",
    "query_to_xml*",
    "release_all_locks",
    "release_lock",
    "row_count",
    "set_config",
    "setseed",
    "setval",
    "source_pos_wait",
    "ts_rewrite",
    "ts_stat",
    "txid_current",
    "txid_current_if_assigned",
    "wait_for_executed_gtid_set",
    "wait_until_sql_thread_after_gtids",
];

/// A prefilter: for each first byte (folded to 32 buckets), a bit per name length (63 = longer).
type Filter = [u64; 32];

const fn bucket(b: u8) -> usize {
    ((b | 0x20) & 0x1f) as usize
}

const fn len_bit(len: usize) -> u64 {
    1 << if len >= 63 { 63 } else { len }
}

const fn add_to_filter(mut f: Filter, name: &[u8]) -> Filter {
    if name.is_empty() {
        return f;
    }
    let last = name.len() - 1;
    if name[last] == b'*' {
        // A prefix: every length from the prefix's on.
        if last == 0 {
            let mut i = 0;
            while i < 32 {
                f[i] = u64::MAX;
                i += 1;
            }
            return f;
        }
        let mut bits = 0u64;
        let mut l = last;
        while l < 64 {
            bits |= len_bit(l);
            l += 1;
        }
        f[bucket(name[0])] |= bits;
    } else {
        f[bucket(name[0])] |= len_bit(name.len());
    }
    f
}

const fn default_filter() -> Filter {
    let mut f = [0u64; 32];
    let mut i = 0;
    while i < DEFAULT_WRITE_FUNCTIONS.len() {
        f = add_to_filter(f, DEFAULT_WRITE_FUNCTIONS[i].as_bytes());
        i += 1;
    }
    f
}

static DEFAULT_FILTER: Filter = default_filter();

/// For each first-byte bucket, the range of [`DEFAULT_WRITE_FUNCTIONS`] starting with it (the
/// list is sorted, so each bucket's names are contiguous; a test checks it).
static DEFAULT_RANGES: [(usize, usize); 32] = {
    let mut r = [(0usize, 0usize); 32];
    let mut i = 0;
    while i < DEFAULT_WRITE_FUNCTIONS.len() {
        let b = bucket(DEFAULT_WRITE_FUNCTIONS[i].as_bytes()[0]);
        if r[b].1 == 0 {
            r[b].0 = i;
        }
        r[b].1 = i + 1;
        i += 1;
    }
    r
};

#[inline(always)]
fn may_match(filter: &Filter, name: &[u8]) -> bool {
    match name.first() {
        Some(&b) => filter[bucket(b)] & len_bit(name.len()) != 0,
        None => false,
    }
}

/// `pattern` is lowercase ASCII, possibly ending in `*`.
#[inline]
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_last() {
        Some((b'*', prefix)) => {
            name.len() >= prefix.len()
                && eq_lower(name.get(..prefix.len()).unwrap_or_default(), prefix)
        }
        _ => eq_lower(name, pattern),
    }
}

/// `name` equals lowercase `pattern`, ignoring ASCII case.
#[inline(always)]
fn eq_lower(name: &[u8], pattern: &[u8]) -> bool {
    name.len() == pattern.len()
        && name.iter().zip(pattern).all(|(a, b)| a.to_ascii_lowercase() == *b)
}

/// The set of write functions a classifier checks calls against.
#[derive(Clone, Debug)]
pub(crate) struct FunctionSet {
    defaults: bool,
    /// The prefilter of the added names.
    filter: Filter,
    /// The prefilter of every name checked: the added ones and, if on, the defaults.
    any: Filter,
    extra: Vec<Box<[u8]>>,
}

impl FunctionSet {
    pub(crate) const fn new() -> Self {
        Self { defaults: true, filter: [0; 32], any: default_filter(), extra: Vec::new() }
    }

    pub(crate) fn add(&mut self, name: &str) {
        let name = name.trim();
        // Calls are matched on the last component of the name.
        let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
        if name.is_empty() {
            return;
        }
        let lower: Box<[u8]> = name.bytes().map(|b| b.to_ascii_lowercase()).collect();
        self.filter = add_to_filter(self.filter, &lower);
        self.any = add_to_filter(self.any, &lower);
        self.extra.push(lower);
    }

    pub(crate) fn clear_defaults(&mut self) {
        self.defaults = false;
        self.any = self.filter;
    }

    /// Whether a call to `name` makes the statement a write. The prefilters are inline; the
    /// list scan (rare: only for plausible names) is not.
    #[inline(always)]
    pub(crate) fn contains(&self, name: &[u8]) -> bool {
        may_match(&self.any, name) && self.scan(name)
    }

    #[inline(never)]
    fn scan(&self, name: &[u8]) -> bool {
        if self.defaults
            && may_match(&DEFAULT_FILTER, name)
            && let Some(&first) = name.first()
            && let Some(&(start, end)) = DEFAULT_RANGES.get(bucket(first))
            && let Some(candidates) = DEFAULT_WRITE_FUNCTIONS.get(start..end)
        {
            for p in candidates {
                if matches(p.as_bytes(), name) {
                    return true;
                }
            }
        }
        if may_match(&self.filter, name) {
            for p in &self.extra {
                if matches(p, name) {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_case_insensitively() {
        let s = FunctionSet::new();
        for name in [
            "nextval",
            "NEXTVAL",
            "pg_advisory_xact_lock_shared",
            "PG_TRY_ADVISORY_LOCK",
            "GET_LOCK",
        ] {
            assert!(s.contains(name.as_bytes()), "{name}");
        }
        for name in
            ["count", "COUNT", "exists", "max", "pg_sleep", "sleep", "lo_get", "coalesce", ""]
        {
            assert!(!s.contains(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn user_names_and_prefixes() {
        let mut s = FunctionSet::new();
        s.add("My_Side_Effect");
        s.add("audit_*");
        assert!(s.contains(b"my_side_effect"));
        assert!(s.contains(b"AUDIT_LOG"));
        assert!(s.contains(b"audit_"));
        assert!(!s.contains(b"audit"));
        s.clear_defaults();
        assert!(!s.contains(b"nextval"));
        assert!(s.contains(b"my_side_effect"));
    }

    /// Every function of the reviewed catalogue (`pg_catalog_functions.txt`) is on the list
    /// or off it as its verdict says.
    #[test]
    fn the_list_agrees_with_the_reviewed_catalogue() {
        let s = FunctionSet::new();
        let mut checked = 0;
        for line in include_str!("pg_catalog_functions.txt").lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name, verdict) = line.split_once(' ').unwrap();
            let verdict = verdict.trim();
            let listed = s.contains(name.as_bytes());
            let primary = !matches!(verdict, "read" | "internal");
            assert_eq!(listed, primary, "{name}: verdict `{verdict}`, on the list: {listed}");
            checked += 1;
        }
        assert_eq!(checked, 229);
    }

    /// The list is sorted, so that each first letter's names are contiguous (`DEFAULT_RANGES`).
    #[test]
    fn the_list_is_sorted_and_unique() {
        assert!(DEFAULT_WRITE_FUNCTIONS.windows(2).all(|w| w[0] < w[1]));
        for (i, name) in DEFAULT_WRITE_FUNCTIONS.iter().enumerate() {
            let (start, end) = DEFAULT_RANGES[bucket(name.as_bytes()[0])];
            assert!((start..end).contains(&i), "{name}");
        }
    }

    #[test]
    fn every_default_is_lowercase_ascii() {
        for name in DEFAULT_WRITE_FUNCTIONS {
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'*')
            );
        }
    }
}
