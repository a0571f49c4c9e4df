//! [`RoutedConfig`] from environment variables (see the README's *Configuration* table).
//!
//! | variable | sets |
//! | --- | --- |
//! | `DATABASE_URL` (required) | the primary's URL |
//! | `DATABASE_REPLICA_URLS` | the replicas' URLs, separated by `,` `;` or whitespace before a `scheme://` |
//! | `DATABASE_<POOL>` | every node's pool setting `<POOL>` |
//! | `DATABASE_PRIMARY_<POOL>` | the primary's |
//! | `DATABASE_REPLICA_<POOL>` | every replica's |
//! | `DATABASE_REPLICA_<n>_<POOL>` | replica `n`'s (1-based, in `DATABASE_REPLICA_URLS` order) |
//! | `DATABASE_REPLICA_POOLING`, `DATABASE_REPLICA_<n>_POOLING` | `direct`, `session`, `transaction` |
//! | `DATABASE_REPLICA_<n>_WEIGHT`, `_ZONE`, `_TAGS` | replica `n`'s weight, zone, tags (`,`-separated) |
//! | `DATABASE_REPLICA_<n>_REPLICATION_ADDRESS` | where the other nodes replicate from it (`host:port`) |
//! | `RWSPLIT_<SETTING>` | a router, policy or monitor setting |
//! | `RWSPLIT_TOPOLOGY_PATRONI` | Patroni REST endpoints (`http://host:port`), separated by `,` `;` or whitespace |
//! | `RWSPLIT_TOPOLOGY_DNS` | a DNS name whose addresses are the replicas (`host:port`) |
//! | `RWSPLIT_TOPOLOGY_TIMEOUT`, `RWSPLIT_TOPOLOGY_INTERVAL` | the topology source's request timeout and poll interval |
//!
//! `<POOL>` is `MAX_CONNECTIONS`, `MIN_CONNECTIONS`, `CONNECT_TIMEOUT`, `ACQUIRE_TIMEOUT`,
//! `IDLE_TIMEOUT`, `MAX_LIFETIME` or `TEST_BEFORE_ACQUIRE`. `<SETTING>` is one of
//! [`SETTINGS`].
//!
//! **Unknown names.** `from_env` owns `RWSPLIT_*`, `DATABASE_PRIMARY_*` and `DATABASE_REPLICA_*`:
//! a name there that it does not read is refused ([`Error::UnknownVariable`], with the nearest
//! name it reads: the one sharing most words with it, then the fewest edits away, so an old
//! name such as `RWSPLIT_REPLICA_URLS` points at `DATABASE_REPLICA_URLS`), except under the
//! prefixes in [`NOT_OURS`] (the testkit's, the examples', this repository's tooling) and the
//! names in [`OTHERS`]. `DATABASE_*` is shared with other tools
//! (`DATABASE_HOST`, `DATABASE_PASSWORD`, `DATABASE_SSL` …): there, only a likely misspelling
//! of a name it reads is refused (`DATABASE_MAX_CONECTIONS`): at most two edits away, and at
//! most one edit per four letters after `DATABASE_`. The rest are left alone.

use std::collections::BTreeMap;

use super::sections::{
    BalancerName, HealthFile, MonitorFile, PolicyFile, RouterFile, parse_primary_reads,
};
use super::{PolicyConfig, PoolConfig, RoutedConfig, TopologyConfig, parse_duration};
use crate::config::builder::split_urls;
use crate::error::{Error, Result};

/// The pool settings, as variable suffixes.
const POOL: &[&str] = &[
    "MAX_CONNECTIONS",
    "MIN_CONNECTIONS",
    "CONNECT_TIMEOUT",
    "ACQUIRE_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_LIFETIME",
    "TEST_BEFORE_ACQUIRE",
];

/// The `RWSPLIT_` settings and the [`RoutedConfig`] field each sets.
pub(crate) const SETTINGS: &[(&str, &str)] = &[
    ("RWSPLIT_BALANCER", "router.balancer"),
    ("RWSPLIT_PREFER_ZONE", "router.prefer_zone"),
    ("RWSPLIT_PRIMARY_READS", "router.primary_reads"),
    ("RWSPLIT_READ_YOUR_WRITES", "policy.read_your_writes"),
    ("RWSPLIT_HEDGED_READS", "policy.hedged_reads"),
    ("RWSPLIT_WAIT_FOR_REPLICA", "policy.wait_for_replica"),
    ("RWSPLIT_CONSISTENCY", "policy.consistency"),
    ("RWSPLIT_STALENESS", "policy.staleness"),
    ("RWSPLIT_STALENESS_BYTES", "policy.staleness_bytes"),
    ("RWSPLIT_READ_RETRIES", "policy.read_retries"),
    ("RWSPLIT_REPLICA_READ_TIMEOUT", "policy.replica_read_timeout"),
    ("RWSPLIT_ON_REPLICA_REFUSAL", "policy.on_replica_refusal"),
    ("RWSPLIT_CONNECT_WAIT", "policy.connect_wait"),
    ("RWSPLIT_PROBE_INTERVAL", "monitor.probe_interval"),
    ("RWSPLIT_PROBE_TIMEOUT", "monitor.probe_timeout"),
    ("RWSPLIT_MAX_PROBE_TIMEOUT", "monitor.max_probe_timeout"),
    ("RWSPLIT_POSITION_INTERVAL", "monitor.position_interval"),
    ("RWSPLIT_POSITION_LINGER", "monitor.position_linger"),
    ("RWSPLIT_IDLE_PROBE_INTERVAL", "monitor.idle_probe_interval"),
    ("RWSPLIT_FAILURE_THRESHOLD", "health.failure_threshold"),
    ("RWSPLIT_RECOVERY_THRESHOLD", "health.recovery_threshold"),
    ("RWSPLIT_MAX_REPLICA_LAG", "router.max_replica_lag"),
    ("RWSPLIT_MAX_REPLICA_LAG_BYTES", "router.max_replica_lag_bytes"),
    ("RWSPLIT_TOPOLOGY_PATRONI", "topology.patroni"),
    ("RWSPLIT_TOPOLOGY_DNS", "topology.dns"),
    ("RWSPLIT_TOPOLOGY_TIMEOUT", "topology.timeout"),
    ("RWSPLIT_TOPOLOGY_INTERVAL", "topology.interval"),
];

/// Prefixes of `RWSPLIT_*` variables that belong to others, which `from_env` leaves alone: the
/// testkit's (`rwsplit-testkit`), the examples', and this repository's tooling (integration
/// tests, benchmarks, the soak, SeaORM's suite, the fuzzer).
pub(crate) const NOT_OURS: &[&str] = &[
    "RWSPLIT_TESTKIT_",
    "RWSPLIT_EXAMPLE_",
    "RWSPLIT_ITEST_",
    "RWSPLIT_BENCH_",
    "RWSPLIT_SOAK_",
    "RWSPLIT_SEAORM_SUITE_",
    "RWSPLIT_FUZZ_",
];

/// `RWSPLIT_*` names `from_env` does not read and leaves alone: rwsplit-axum's signing key, by
/// the name the guide and examples give it (the application reads it).
pub(crate) const OTHERS: &[&str] = &["RWSPLIT_TOKEN_KEY"];

/// The variables, already without empty values.
struct Vars(BTreeMap<String, String>);

impl Vars {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim())
    }

    fn parse<T>(&self, name: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Option<T>> {
        self.get(name).map(|v| parse(v).map_err(|reason| bad(name, reason))).transpose()
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        // The value is not echoed: it is a number or a mistake, but never worth the risk.
        self.parse(name, |v| v.parse().map_err(|_| "is not a whole number in range".to_owned()))
    }

    fn flag(&self, name: &str) -> Result<Option<bool>> {
        self.parse(name, |v| match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err("is not true or false".to_owned()),
        })
    }

    fn pool(&self, prefix: &str) -> Result<PoolConfig> {
        let name = |key: &str| format!("{prefix}{key}");
        Ok(PoolConfig {
            max_connections: self.number(&name("MAX_CONNECTIONS"))?,
            min_connections: self.number(&name("MIN_CONNECTIONS"))?,
            connect_timeout: self.parse(&name("CONNECT_TIMEOUT"), parse_duration)?,
            acquire_timeout: self.parse(&name("ACQUIRE_TIMEOUT"), parse_duration)?,
            idle_timeout: self.parse(&name("IDLE_TIMEOUT"), parse_duration)?,
            max_lifetime: self.parse(&name("MAX_LIFETIME"), parse_duration)?,
            test_before_acquire: self.flag(&name("TEST_BEFORE_ACQUIRE"))?,
        })
    }
}

fn bad(name: &str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig { field: name.to_owned(), reason: reason.into() }
}

/// Reads a [`RoutedConfig`] from `vars` and validates it, naming variables in errors.
pub(super) fn read(vars: BTreeMap<String, String>) -> Result<RoutedConfig> {
    let vars = Vars(vars);
    let urls = split_urls(vars.get("DATABASE_REPLICA_URLS").unwrap_or_default());
    // The names before the primary's URL: an old name for it (`RWSPLIT_PRIMARY_URL`) set alone
    // is refused naming DATABASE_URL, not reported as DATABASE_URL missing.
    check_names(&vars, urls.len())?;
    let primary =
        vars.get("DATABASE_URL").ok_or(Error::MissingEnv { name: "DATABASE_URL" })?.to_owned();

    let mut config = RoutedConfig::new(primary);
    config.pool = vars.pool("DATABASE_")?;
    config.primary.pool = vars.pool("DATABASE_PRIMARY_")?;
    config = read_replicas(&vars, urls, config)?;
    read_sections(&vars, &mut config)?;
    read_topology(&vars, &mut config.topology)?;
    config.validate().map_err(|e| match e {
        Error::InvalidConfig { field, reason } => {
            Error::InvalidConfig { field: variable_of(&field), reason }
        }
        // A URL error names `primary.url` / `replicas[i].url`: say which variable.
        Error::InvalidUrl { node, url, reason } => {
            Error::InvalidUrl { node: variable_of(&node), url, reason }
        }
        other => other,
    })?;
    Ok(config)
}

/// The replicas at `urls`, each with its own settings (`DATABASE_REPLICA_<n>_*`) over the
/// ones for all replicas (`DATABASE_REPLICA_*`).
fn read_replicas(vars: &Vars, urls: Vec<String>, mut config: RoutedConfig) -> Result<RoutedConfig> {
    let all_replicas = vars.pool("DATABASE_REPLICA_")?;
    let all_pooling = vars.parse("DATABASE_REPLICA_POOLING", |v| {
        v.parse::<crate::product::Pooling>().map_err(|e| e.to_string())
    })?;
    for (i, url) in urls.into_iter().enumerate() {
        let prefix = format!("DATABASE_REPLICA_{}_", i + 1);
        config = config.replica(url);
        let r = config.replicas.last_mut().ok_or(Error::PrimaryNotConfigured)?;
        r.pool = vars.pool(&prefix)?.over(&all_replicas);
        if let Some(w) = vars.number(&format!("{prefix}WEIGHT"))? {
            r.weight = w;
        }
        r.zone = vars.get(&format!("{prefix}ZONE")).map(str::to_owned);
        if let Some(tags) = vars.get(&format!("{prefix}TAGS")) {
            r.tags =
                tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(Into::into).collect();
        }
        let own = vars.parse(&format!("{prefix}POOLING"), |v| {
            v.parse::<crate::product::Pooling>().map_err(|e| e.to_string())
        })?;
        if let Some(p) = own.or(all_pooling) {
            r.pooling = p;
        }
        r.replication_address =
            vars.get(&format!("{prefix}REPLICATION_ADDRESS")).map(str::to_owned);
    }
    Ok(config)
}

/// The `[router]`, `[policy]`, `[monitor]` and `[health]` sections, from `RWSPLIT_*`.
fn read_sections(vars: &Vars, config: &mut RoutedConfig) -> Result<()> {
    // Each section as a file writes it, then read into the builder's type the same way.
    let variables = |e: Error| match e {
        Error::InvalidConfig { field, reason } => {
            Error::InvalidConfig { field: variable_of(&field), reason }
        }
        other => other,
    };
    let router = RouterFile {
        balancer: vars.parse("RWSPLIT_BALANCER", BalancerName::parse)?,
        prefer_zone: vars.get("RWSPLIT_PREFER_ZONE").map(str::to_owned),
        primary_reads: vars.parse("RWSPLIT_PRIMARY_READS", parse_primary_reads)?,
        max_replica_lag: vars.parse("RWSPLIT_MAX_REPLICA_LAG", parse_duration)?,
        max_replica_lag_bytes: vars.number("RWSPLIT_MAX_REPLICA_LAG_BYTES")?,
        ..RouterFile::default()
    };
    config.router = router.into_config().map_err(variables)?;
    let policy = PolicyFile {
        read_your_writes: vars.flag("RWSPLIT_READ_YOUR_WRITES")?,
        hedged_reads: vars.flag("RWSPLIT_HEDGED_READS")?,
        wait_for_replica: vars.parse("RWSPLIT_WAIT_FOR_REPLICA", parse_duration)?,
        consistency: vars.get("RWSPLIT_CONSISTENCY").map(str::to_owned),
        staleness: vars.parse("RWSPLIT_STALENESS", parse_duration)?,
        staleness_bytes: vars.number("RWSPLIT_STALENESS_BYTES")?,
        read_retries: vars.number("RWSPLIT_READ_RETRIES")?,
        replica_read_timeout: vars.parse("RWSPLIT_REPLICA_READ_TIMEOUT", parse_duration)?,
        on_replica_refusal: vars
            .parse("RWSPLIT_ON_REPLICA_REFUSAL", super::parse_on_replica_refusal)?,
        connect_wait: vars.parse("RWSPLIT_CONNECT_WAIT", parse_duration)?,
    };
    config.policy = PolicyConfig::try_from(policy).map_err(variables)?;
    let monitor = MonitorFile {
        probe_interval: vars.parse("RWSPLIT_PROBE_INTERVAL", parse_duration)?,
        probe_timeout: vars.parse("RWSPLIT_PROBE_TIMEOUT", parse_duration)?,
        max_probe_timeout: vars.parse("RWSPLIT_MAX_PROBE_TIMEOUT", parse_duration)?,
        position_interval: vars.parse("RWSPLIT_POSITION_INTERVAL", parse_duration)?,
        position_linger: vars.parse("RWSPLIT_POSITION_LINGER", parse_duration)?,
        idle_probe_interval: vars.parse("RWSPLIT_IDLE_PROBE_INTERVAL", parse_duration)?,
        ..MonitorFile::default()
    };
    config.monitor = monitor.into_config().map_err(variables)?;
    let health = HealthFile {
        failure_threshold: vars.number("RWSPLIT_FAILURE_THRESHOLD")?,
        recovery_threshold: vars.number("RWSPLIT_RECOVERY_THRESHOLD")?,
        ..HealthFile::default()
    };
    config.health = health.into_policy().map_err(variables)?;
    Ok(())
}

/// The topology source, from `RWSPLIT_TOPOLOGY_*`.
fn read_topology(vars: &Vars, topology: &mut TopologyConfig) -> Result<()> {
    topology.patroni = vars.get("RWSPLIT_TOPOLOGY_PATRONI").map(|list| {
        list.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect()
    });
    topology.dns = vars.get("RWSPLIT_TOPOLOGY_DNS").map(str::to_owned);
    topology.timeout = vars.parse("RWSPLIT_TOPOLOGY_TIMEOUT", parse_duration)?;
    topology.interval = vars.parse("RWSPLIT_TOPOLOGY_INTERVAL", parse_duration)?;
    Ok(())
}

/// Every name in a namespace `from_env` owns must be one it reads (see the module docs).
fn check_names(vars: &Vars, replicas: usize) -> Result<()> {
    let pool_or = |rest: &str, extra: &[&str]| POOL.contains(&rest) || extra.contains(&rest);
    for name in vars.0.keys() {
        if name.starts_with("RWSPLIT_") {
            let known = SETTINGS.iter().any(|(v, _)| v == name)
                || OTHERS.contains(&name.as_str())
                || NOT_OURS.iter().any(|p| name.starts_with(p));
            if !known {
                return Err(unknown(name, replicas));
            }
        } else if let Some(rest) = name.strip_prefix("DATABASE_PRIMARY_") {
            if !pool_or(rest, &[]) {
                return Err(unknown(name, replicas));
            }
        } else if let Some(rest) = name.strip_prefix("DATABASE_REPLICA_") {
            if let Some((n, key)) = rest.split_once('_')
                && let Ok(n) = n.parse::<usize>()
            {
                if n == 0 || n > replicas {
                    return Err(bad(
                        name,
                        format!(
                            "replica {n} does not exist: DATABASE_REPLICA_URLS lists {replicas} \
                             (numbered from 1)"
                        ),
                    ));
                }
                if !pool_or(key, REPLICA_OWN) {
                    return Err(unknown(name, replicas));
                }
            } else if !pool_or(rest, &["URLS", "POOLING"]) {
                return Err(unknown(name, replicas));
            }
        } else if name.starts_with("DATABASE_") && !known_names(replicas).any(|k| k == *name) {
            // Shared with other tools: only a likely misspelling of a name read here is refused.
            let letters = name.len() - "DATABASE_".len();
            if closest(name, replicas).is_some_and(|(_, d)| d <= 2 && d * 4 <= letters) {
                return Err(unknown(name, replicas));
            }
        }
    }
    Ok(())
}

/// A replica's own settings besides its pool, as `DATABASE_REPLICA_<n>_` suffixes.
const REPLICA_OWN: &[&str] = &["WEIGHT", "ZONE", "TAGS", "POOLING", "REPLICATION_ADDRESS"];

/// Every name `from_env` reads with `replicas` replicas listed.
fn known_names(replicas: usize) -> impl Iterator<Item = String> {
    let fixed = ["DATABASE_URL", "DATABASE_REPLICA_URLS", "DATABASE_REPLICA_POOLING"];
    let pools = ["DATABASE_", "DATABASE_PRIMARY_", "DATABASE_REPLICA_"]
        .into_iter()
        .flat_map(|p| POOL.iter().map(move |k| format!("{p}{k}")));
    let per_replica = (1..=replicas.max(1)).flat_map(|n| {
        POOL.iter().chain(REPLICA_OWN).map(move |k| format!("DATABASE_REPLICA_{n}_{k}"))
    });
    fixed
        .into_iter()
        .map(str::to_owned)
        .chain(pools)
        .chain(per_replica)
        .chain(SETTINGS.iter().map(|(v, _)| (*v).to_owned()))
}

/// The name read here closest in spelling to `name` (in the same namespace, `RWSPLIT_` or
/// `DATABASE_`), and its distance in edits: how a misspelling is told from another tool's name.
fn closest(name: &str, replicas: usize) -> Option<(String, usize)> {
    let space = if name.starts_with("RWSPLIT_") { "RWSPLIT_" } else { "DATABASE_" };
    known_names(replicas)
        .filter(|k| k.starts_with(space))
        .map(|k| {
            let d = edit_distance(name, &k);
            (k, d)
        })
        .min_by_key(|(_, d)| *d)
}

/// The name read here to suggest for the unknown `name`, in either namespace: one ending in the
/// same word first (the setting; the words before it qualify it: `RWSPLIT_PRIMARY_URL` →
/// `DATABASE_URL`, `DATABASE_PRIMARY_WEIGHT` → `DATABASE_REPLICA_1_WEIGHT`), then the one sharing
/// the most words (`RWSPLIT_REPLICA_URLS` → `DATABASE_REPLICA_URLS`, `RWSPLIT_MAX_LAG` →
/// `RWSPLIT_MAX_REPLICA_LAG`), then the fewest words besides, then the fewest edits away
/// (`RWSPLIT_BALANCR` → `RWSPLIT_BALANCER`).
fn nearest(name: &str, replicas: usize) -> Option<String> {
    // The words after the namespace, plurals as singulars (`URLS` is `URL`).
    let words = |n: &str| -> Vec<String> {
        n.split('_')
            .skip(1)
            .filter(|w| !w.is_empty())
            .map(|w| w.trim_end_matches('S').to_owned())
            .collect()
    };
    let own = words(name);
    known_names(replicas)
        .map(|k| {
            let theirs = words(&k);
            let same_last = own.last().is_some() && theirs.last() == own.last();
            let shared = theirs.iter().filter(|w| own.contains(w)).count();
            let others = if shared > 0 { theirs.len() - shared } else { 0 };
            let d = edit_distance(name, &k);
            (!same_last, std::cmp::Reverse(shared), others, d, k)
        })
        .min()
        .map(|(.., k)| k)
}

fn unknown(name: &str, replicas: usize) -> Error {
    Error::UnknownVariable { name: name.to_owned(), nearest: nearest(name, replicas) }
}

/// Levenshtein distance (insertions, deletions, substitutions) between two ASCII names: a
/// dozen lines rather than a dependency for every application, for names under 50 bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb)).min(above + 1).min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The variable that sets the [`RoutedConfig`] field at `path` (`replicas[1].pool.max_connections`
/// → `DATABASE_REPLICA_2_MAX_CONNECTIONS`), for validation errors; the path if none does.
fn variable_of(path: &str) -> String {
    let upper = |s: &str| s.replace("pool.", "").to_ascii_uppercase();
    if path == "primary.url" {
        return "DATABASE_URL".to_owned();
    }
    if let Some(rest) = path.strip_prefix("replicas[")
        && let Some((i, field)) = rest.split_once("].")
        && let Ok(i) = i.parse::<usize>()
    {
        if field == "url" {
            return format!("DATABASE_REPLICA_URLS (replica {})", i + 1);
        }
        return format!("DATABASE_REPLICA_{}_{}", i + 1, upper(field));
    }
    if let Some(field) = path.strip_prefix("primary.pool.") {
        return format!("DATABASE_PRIMARY_{}", upper(field));
    }
    if let Some(field) = path.strip_prefix("pool.") {
        return format!("DATABASE_{}", upper(field));
    }
    if let Some(rest) = path.strip_prefix("topology.patroni[")
        && let Some(i) = rest.strip_suffix(']').and_then(|i| i.parse::<usize>().ok())
    {
        return format!("RWSPLIT_TOPOLOGY_PATRONI (endpoint {})", i + 1);
    }
    SETTINGS
        .iter()
        .find(|(_, p)| *p == path)
        .map_or_else(|| path.to_owned(), |(v, _)| (*v).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("", "", 0)]
    #[case("ab", "ab", 0)]
    #[case("balancr", "balancer", 1)]
    #[case("balancer", "balancr", 1)]
    #[case("probe_interval", "probe_intreval", 2)]
    #[case("kitten", "sitting", 3)]
    #[case("abc", "", 3)]
    fn edit_distance_counts_edits(#[case] a: &str, #[case] b: &str, #[case] d: usize) {
        assert_eq!(edit_distance(a, b), d);
    }
}
