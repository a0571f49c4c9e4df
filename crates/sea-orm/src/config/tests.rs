use std::time::Duration;

use rstest::rstest;
use rwsplit_core::Staleness;

use super::*;
use crate::observe::redact::tests::{NASTY, assert_no_secret, encode};

fn env(pairs: &[(&str, &str)]) -> Result<RoutedConfig> {
    RoutedConfig::from_vars(pairs.iter().map(|(k, v)| (*k, *v)))
}

const BASE: (&str, &str) = ("DATABASE_URL", "postgres://app:pw@db-1/app");
const TWO: (&str, &str) =
    ("DATABASE_REPLICA_URLS", "postgres://app:pw@db-2/app,postgres://app:pw@db-3/app");

#[test]
fn the_minimal_environment_is_a_primary() {
    let c = env(&[BASE]).unwrap();
    assert_eq!(c.primary.url, "postgres://app:pw@db-1/app");
    assert!(c.replicas.is_empty());
    assert_eq!(c.pool, PoolConfig::default());
    assert!(matches!(env(&[]), Err(Error::MissingEnv { name: "DATABASE_URL" })));
    assert!(matches!(env(&[("DATABASE_URL", "  ")]), Err(Error::MissingEnv { .. })));
}

/// Where each pool variable lands: every node, the primary, every replica, one replica; the
/// more specific wins.
#[rstest]
#[case(&[("DATABASE_MAX_CONNECTIONS", "7")], Some(7), [Some(7), Some(7)])]
#[case(&[("DATABASE_PRIMARY_MAX_CONNECTIONS", "9")], Some(9), [None, None])]
#[case(&[("DATABASE_REPLICA_MAX_CONNECTIONS", "4")], None, [Some(4), Some(4)])]
#[case(&[("DATABASE_REPLICA_2_MAX_CONNECTIONS", "3")], None, [None, Some(3)])]
#[case(
    &[("DATABASE_MAX_CONNECTIONS", "10"), ("DATABASE_REPLICA_MAX_CONNECTIONS", "4"),
      ("DATABASE_REPLICA_1_MAX_CONNECTIONS", "2")],
    Some(10),
    [Some(2), Some(4)]
)]
fn pool_variables_layer(
    #[case] vars: &[(&str, &str)],
    #[case] primary: Option<u32>,
    #[case] replicas: [Option<u32>; 2],
) {
    let mut all = vec![BASE, TWO];
    all.extend_from_slice(vars);
    let c = env(&all).unwrap();
    let effective = |p: &PoolConfig| p.over(&c.pool).max_connections;
    assert_eq!(effective(&c.primary.pool), primary);
    assert_eq!([effective(&c.replicas[0].pool), effective(&c.replicas[1].pool)], replicas);
}

#[rstest]
#[case("DATABASE_CONNECT_TIMEOUT", "250ms", Duration::from_millis(250))]
#[case("DATABASE_CONNECT_TIMEOUT", "5s", Duration::from_secs(5))]
#[case("DATABASE_CONNECT_TIMEOUT", "1m 30s", Duration::from_secs(90))]
#[case("DATABASE_CONNECT_TIMEOUT", "2", Duration::from_secs(2))]
#[case("DATABASE_CONNECT_TIMEOUT", "0.5", Duration::from_millis(500))]
fn durations_are_human_or_seconds(
    #[case] var: &str,
    #[case] value: &str,
    #[case] expected: Duration,
) {
    let c = env(&[BASE, (var, value)]).unwrap();
    assert_eq!(c.pool.connect_timeout, Some(expected));
}

#[test]
fn replica_placement_and_policy_from_the_environment() {
    let c = env(&[
        BASE,
        TWO,
        ("DATABASE_REPLICA_1_WEIGHT", "3"),
        ("DATABASE_REPLICA_1_ZONE", "eu-west-1a"),
        ("DATABASE_REPLICA_2_TAGS", "analytics, reports,"),
        ("DATABASE_REPLICA_2_REPLICATION_ADDRESS", "10.0.0.3:5432"),
        ("DATABASE_REPLICA_POOLING", "session"),
        ("DATABASE_REPLICA_2_POOLING", "transaction"),
        ("RWSPLIT_BALANCER", "weighted_round_robin"),
        ("RWSPLIT_PREFER_ZONE", "eu-west-1a"),
        ("RWSPLIT_WAIT_FOR_REPLICA", "20ms"),
        ("RWSPLIT_CONSISTENCY", "bounded_staleness"),
        ("RWSPLIT_STALENESS", "2s"),
        ("RWSPLIT_READ_YOUR_WRITES", "off"),
        ("RWSPLIT_PROBE_INTERVAL", "100ms"),
        ("RWSPLIT_IDLE_PROBE_INTERVAL", "5s"),
        ("RWSPLIT_MAX_PROBE_TIMEOUT", "8s"),
        ("RWSPLIT_MAX_REPLICA_LAG_BYTES", "1048576"),
    ])
    .unwrap();
    let (a, b) = (&c.replicas[0], &c.replicas[1]);
    assert_eq!((a.weight, a.zone.as_deref(), a.pooling), (3, Some("eu-west-1a"), Pooling::Session));
    assert_eq!(
        (b.weight, b.tags.clone(), b.pooling),
        (1, vec!["analytics".to_owned(), "reports".to_owned()], Pooling::Transaction)
    );
    assert_eq!(b.replication_address.as_deref(), Some("10.0.0.3:5432"));
    let balancer = c.router.balancer_value();
    assert!(balancer.uses_weights() && balancer.preferred_zone() == Some("eu-west-1a"));
    assert_eq!(
        c.policy.consistency,
        Some(Consistency::BoundedStaleness(Staleness::time(Duration::from_secs(2))))
    );
    assert_eq!(c.policy.read_your_writes, Some(false));
    assert_eq!(c.monitor.probe_interval_value(), Duration::from_millis(100));
    assert_eq!(c.monitor.idle_probe_interval_value(), Duration::from_secs(5));
    assert_eq!(c.monitor.max_probe_timeout_value(), Duration::from_secs(8));
    assert_eq!(c.router.max_replica_lag_value(), Some(Staleness::bytes(1 << 20)));
    let _builder = c.into_builder().unwrap();
}

/// Bad variables: the error names the variable (and never shows its value).
#[rstest]
#[case(&[("DATABASE_REPLICA_3_WEIGHT", "2")], "DATABASE_REPLICA_3_WEIGHT", "replica 3 does not exist")]
#[case(&[("DATABASE_REPLICA_0_ZONE", "a")], "DATABASE_REPLICA_0_ZONE", "does not exist")]
#[case(&[("DATABASE_REPLICA_2_MAX_CONNECTIONS", "lots")], "DATABASE_REPLICA_2_MAX_CONNECTIONS", "not a whole number")]
#[case(&[("DATABASE_REPLICA_2_MAX_CONNECTIONS", "0")], "DATABASE_REPLICA_2_MAX_CONNECTIONS", "at least 1")]
#[case(&[("DATABASE_REPLICA_1_MIN_CONNECTIONS", "5"), ("DATABASE_MAX_CONNECTIONS", "2")], "DATABASE_REPLICA_1_MIN_CONNECTIONS", "more than max_connections")]
#[case(&[("DATABASE_REPLICA_1_WEIGHT", "-1")], "DATABASE_REPLICA_1_WEIGHT", "not a whole number")]
#[case(&[("DATABASE_REPLICA_1_WEIGHT", "2")], "DATABASE_REPLICA_1_WEIGHT", "weighted_round_robin")]
#[case(&[("DATABASE_IDLE_TIMEOUT", "soon")], "DATABASE_IDLE_TIMEOUT", "not a duration")]
#[case(&[("DATABASE_ACQUIRE_TIMEOUT", "0s")], "DATABASE_ACQUIRE_TIMEOUT", "more than zero")]
#[case(&[("DATABASE_REPLICA_1_POOLING", "statement")], "DATABASE_REPLICA_1_POOLING", "unknown pooling mode")]
#[case(&[("RWSPLIT_BALANCER", "fastest")], "RWSPLIT_BALANCER", "unknown balancer")]
#[case(&[("RWSPLIT_PREFER_ZONE", "mars")], "RWSPLIT_PREFER_ZONE", "no replica is in zone")]
#[case(&[("RWSPLIT_CONSISTENCY", "bounded_staleness")], "RWSPLIT_CONSISTENCY", "needs policy.staleness")]
#[case(&[("RWSPLIT_CONSISTENCY", "fast")], "RWSPLIT_CONSISTENCY", "unknown consistency `fast`")]
#[case(&[("RWSPLIT_CONSISTENCY", "strong"), ("RWSPLIT_STALENESS", "1s")], "RWSPLIT_STALENESS", "only means something")]
#[case(&[("RWSPLIT_STALENESS", "1s")], "RWSPLIT_STALENESS", "only means something")]
#[case(&[("RWSPLIT_READ_YOUR_WRITES", "maybe")], "RWSPLIT_READ_YOUR_WRITES", "not true or false")]
#[case(&[("RWSPLIT_FAILURE_THRESHOLD", "0")], "RWSPLIT_FAILURE_THRESHOLD", "at least 1")]
fn bad_variables_are_named(
    #[case] vars: &[(&str, &str)],
    #[case] field: &str,
    #[case] reason: &str,
) {
    let mut all = vec![BASE, TWO];
    all.extend_from_slice(vars);
    let err = env(&all).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{text}");
    assert!(text.contains(&format!("{field}: ")) && text.contains(reason), "{text}");
    assert!(!text.contains("pw"), "{text}");
}

#[test]
fn a_bad_replica_url_names_its_place_in_the_list_without_the_password() {
    let err = env(&[
        BASE,
        ("DATABASE_REPLICA_URLS", "postgres://a:pw@db-2/app,mysql://a:pw2@db-3:port/app"),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("DATABASE_REPLICA_URLS (replica 2)") && text.contains("invalid port"),
        "{text}"
    );
    assert!(!text.contains("pw"), "{text}");
}

/// Serde: paths name the field and the node; a typo anywhere is an error.
#[rstest]
#[case(
    r#"primary = { url = "postgres://db-1/app", pool = { max_connections = 0 } }"#,
    "primary.pool.max_connections: must be at least 1"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[[replicas]]\nurl = \"postgres://db-2/app\"\n[[replicas]]\nurl = \"postgres://db-3/app\"\npool = { max_connections = 0 }",
    "replicas[1].pool.max_connections: must be at least 1"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[[replicas]]\nurl = \"postgres://db-2/app\"\nweight = 4",
    "replicas[0].weight: 4 is ignored: the router's balancer reads no weights"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[[replicas]]\nurl = \"postgres://db-2/app\"\ntags = [\" \"]",
    "replicas[0].tags[0]: is empty"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[pool]\nmin_connections = 3\n[[replicas]]\nurl = \"postgres://db-2/app\"\npool = { max_connections = 2 }",
    "replicas[0].pool.min_connections: 3 is more than max_connections (2)"
)]
fn invalid_configs_name_the_field(#[case] text: &str, #[case] message: &str) {
    let config: RoutedConfig = toml::from_str(text).unwrap();
    let err = config.into_builder().unwrap_err();
    assert!(err.to_string().contains(message), "{err}");
}

#[rstest]
#[case("primary = { url = \"postgres://db-1/app\", weight = 2 }", "unknown field `weight`")]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[[replicas]]\nurl = \"postgres://db-2/app\"\nwieght = 2",
    "unknown field `wieght`"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[pool]\nmax_conections = 2",
    "unknown field `max_conections`"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[router]\nbalancer = \"fastest\"",
    "unknown balancer `fastest` (expected one of round_robin, weighted_round_robin, random, least_outstanding, power_of_two_ewma, lowest_lag)"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[policy]\nwait_for_replica = \"soon\"",
    "not a duration"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[policy]\nwait_for_replica = -1",
    "not a duration in seconds"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[monitor]\nprobe_interval = \"1 fortnight\"",
    "not a duration"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[[replicas]]\nurl = \"postgres://db-2/app\"\npooling = \"statement\"",
    "unknown pooling mode"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[health]\nban_base = \"1m\"\nban_max = \"10s\"",
    "health.ban_max: is shorter than health.ban_base"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[monitor]\nfailure_threshold = 3",
    "unknown field `failure_threshold`"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[monitor]\nprobe_interval = 0",
    "monitor.probe_interval: must be more than zero"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[policy]\nconsistency = \"bounded_staleness\"",
    "policy.consistency: bounded_staleness needs policy.staleness"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[policy]\nconsistency = \"read_your_writes\"",
    "policy.consistency: unknown consistency `read_your_writes`"
)]
#[case(
    "primary = { url = \"postgres://db-1/app\" }\n[policy]\nstaleness_bytes = 10",
    "policy.staleness_bytes: only means something with policy.consistency"
)]
#[case("[[replicas]]\nurl = \"postgres://db-2/app\"", "missing field `primary`")]
#[case("primary = { url = \"postgres://db-1/app\" }\nreplica = []", "unknown field `replica`")]
fn typos_and_bad_values_are_refused_by_serde(#[case] text: &str, #[case] message: &str) {
    let err = toml::from_str::<RoutedConfig>(text).unwrap_err();
    assert!(err.to_string().contains(message), "{err}");
}

/// Every field of a full config reaches the builder.
#[test]
fn a_full_config_reaches_the_builder() {
    let config: RoutedConfig = serde_json::from_value(serde_json::json!({
        "primary": { "url": "postgres://app@db-1/app", "pool": { "max_connections": 20 } },
        "replicas": [
            { "url": "postgres://app@db-2/app", "weight": 3, "zone": "a", "tags": ["x"],
              "pooling": "transaction", "replication_address": "n1:5432",
              "pool": { "min_connections": 1, "idle_timeout": "1m" } },
            { "url": "postgres://app@db-3/app", "zone": "b" }
        ],
        "pool": { "acquire_timeout": "2s", "connect_timeout": 1.5, "max_lifetime": "1h",
                  "test_before_acquire": false, "max_connections": 8 },
        "router": { "balancer": "weighted_round_robin", "prefer_zone": "a",
                    "primary_reads": "never", "dedicated_tags": ["x"],
                    "read_only_transactions_on_replicas": false,
                    "max_replica_lag": "30s", "max_replica_lag_bytes": 4096 },
        "policy": { "read_your_writes": false, "wait_for_replica": "20ms",
                    "consistency": "bounded_staleness", "staleness": "1s", "staleness_bytes": 1024,
                    "read_retries": 1, "replica_read_timeout": "3s",
                    "on_replica_refusal": "fail" },
        "monitor": { "probe_interval": "250ms", "probe_timeout": "2s", "probe_jitter": "10ms",
                     "max_probe_timeout": "7s",
                     "position_interval": "5ms", "idle_probe_interval": "4s" },
        "health": { "failure_threshold": 4, "recovery_threshold": 3,
                    "ban_base": "1s", "ban_max": "1m" }
    }))
    .unwrap();
    let b = config.into_builder().unwrap();
    let shown = format!("{b:?}");
    // The builder's Debug shows what reached it.
    for expected in
        ["db-2", "weight: 3", "zone: Some(\"a\")", "Transaction", "n1:5432", "Never", "250ms"]
    {
        assert!(shown.contains(expected), "{expected} missing in {shown}");
    }
    assert_eq!(b.policy.read_retries, 1);
    assert_eq!(b.policy.on_replica_refusal, crate::send::refusal::OnReplicaRefusal::Fail);
    assert!(!b.policy.read_your_writes);
    assert_eq!(b.policy.wait_for_replica, Some(Duration::from_millis(20)));
    assert_eq!(b.policy.timeouts.replica_read, Some(Duration::from_secs(3)));
    assert!(matches!(b.policy.consistency, Consistency::BoundedStaleness(_)));
    assert_eq!(b.policy.monitor.probe_timeout_value(), Duration::from_secs(2));
    assert_eq!(b.policy.monitor.idle_probe_interval_value(), Duration::from_secs(4));
    assert_eq!(b.policy.monitor.max_probe_timeout_value(), Duration::from_secs(7));
}

/// The pool of each node: node over top level, field by field, onto SeaORM's options.
#[test]
fn node_pools_layer_over_the_top_level() {
    let top = PoolConfig {
        max_connections: Some(8),
        acquire_timeout: Some(Duration::from_secs(2)),
        ..PoolConfig::default()
    };
    let own = PoolConfig { max_connections: Some(3), ..PoolConfig::default() };
    let opts = own.over(&top).apply(ConnectOptions::new("postgres://db/app"));
    assert_eq!(opts.get_max_connections(), Some(3));
    assert_eq!(opts.get_acquire_timeout(), Some(Duration::from_secs(2)));
    assert_eq!(opts.get_min_connections(), None);
}

/// Credentials never leak through a config's `Debug` or its errors.
#[test]
fn configs_never_show_passwords() {
    for raw in NASTY {
        let enc = encode(raw);
        let text = format!(
            "primary = {{ url = \"postgres://app:{enc}@db-1/app\" }}\n\
             [[replicas]]\nurl = \"postgres://app:{enc}@db-2/app\"\nweight = 2\n\
             [[replicas]]\nurl = \"postgres://app:{enc}@db-3:port/app\""
        );
        let config: RoutedConfig = toml::from_str(&text).unwrap();
        let shown = format!("{config:?} {config:#?}");
        assert_no_secret(&shown, raw);
        assert_no_secret(&shown, &enc);
        let err = config.into_builder().unwrap_err();
        assert_no_secret(&format!("{err} {err:?}"), raw);
        assert_no_secret(&format!("{err} {err:?}"), &enc);
        let vars = [
            ("DATABASE_URL".to_owned(), format!("postgres://app:{enc}@db-1/app")),
            ("DATABASE_REPLICA_URLS".to_owned(), format!("postgres://app:{enc}@db-2:port/app")),
        ];
        let err = RoutedConfig::from_vars(vars).unwrap_err();
        assert_no_secret(&format!("{err} {err:?}"), raw);
        assert_no_secret(&format!("{err} {err:?}"), &enc);
    }
}

const PRIMARY: &str = "primary = { url = \"postgres://app:pw@db-1/app\" }\n";

fn topology_toml(table: &str) -> Result<RoutedConfig, toml::de::Error> {
    toml::from_str(&format!("{PRIMARY}[topology]\n{table}"))
}

/// The `[topology]` table: a Patroni or a DNS source, durations as everywhere else.
#[rstest]
#[case(
    "patroni = [\"http://10.0.0.1:8008\", \"http://10.0.0.2\"]",
    Some(&["http://10.0.0.1:8008", "http://10.0.0.2"][..]),
    None,
    None,
    None
)]
#[case(
    "patroni = [\"http://10.0.0.1:8008\"]\ntimeout = \"500ms\"\ninterval = 2",
    Some(&["http://10.0.0.1:8008"][..]),
    None,
    Some(Duration::from_millis(500)),
    Some(Duration::from_secs(2))
)]
#[case(
    "dns = \"replicas.internal:5432\"\ninterval = \"1m 30s\"",
    None,
    Some("replicas.internal:5432"),
    None,
    Some(Duration::from_secs(90))
)]
#[case(
    "dns = \"[fd00::7]:5432\"\ntimeout = 0.25",
    None,
    Some("[fd00::7]:5432"),
    Some(Duration::from_millis(250)),
    None
)]
fn topology_tables_parse(
    #[case] table: &str,
    #[case] patroni: Option<&[&str]>,
    #[case] dns: Option<&str>,
    #[case] timeout: Option<Duration>,
    #[case] interval: Option<Duration>,
) {
    let config = topology_toml(table).unwrap();
    let t = &config.topology;
    let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(t.patroni, patroni.map(owned));
    assert_eq!(t.dns.as_deref(), dns);
    assert_eq!((t.timeout, t.interval), (timeout, interval));
    let b = config.into_builder().unwrap();
    let shown = format!("{b:?}");
    assert!(shown.contains("Discovery"), "the source reached the builder: {shown}");
    let manager = b.discovery.as_ref().and_then(|d| d.ha_manager());
    assert_eq!(manager, patroni.map(|_| "Patroni"), "a Patroni source is the HA manager");
    assert!(shown.contains(&format!("topology_interval: {interval:?}")), "{shown}");
}

#[test]
fn without_a_topology_table_there_is_no_source() {
    let config: RoutedConfig = toml::from_str(PRIMARY).unwrap();
    assert_eq!(config.topology, TopologyConfig::default());
    assert!(config.into_builder().unwrap().discovery.is_none());
}

#[rstest]
#[case("patroni = \"http://10.0.0.1:8008\"", "invalid type")]
#[case("dns = [\"a:5432\"]", "invalid type")]
#[case("patroni = [\"http://10.0.0.1:8008\"]\nintervall = \"1s\"", "unknown field `intervall`")]
#[case("dns = \"a:5432\"\ninterval = \"often\"", "not a duration")]
#[case("dns = \"a:5432\"\ntimeout = -1", "not a duration in seconds")]
fn bad_topology_tables_are_refused_by_serde(#[case] table: &str, #[case] message: &str) {
    let err = topology_toml(table).unwrap_err();
    assert!(err.to_string().contains(message), "{err}");
}

/// Everything serde cannot see: the error names the field and the problem, and never the
/// endpoint's credentials.
#[rstest]
#[case(
    "patroni = [\"http://10.0.0.1:8008\"]\ndns = \"replicas.internal:5432\"",
    "topology.dns: cannot be combined with topology.patroni"
)]
#[case("patroni = []", "topology.patroni: is empty")]
#[case(
    "patroni = [\"http://10.0.0.1:8008\", \"https://10.0.0.2:8008\"]",
    "topology.patroni[1]: https is not supported"
)]
#[case(
    "patroni = [\"http://patroni:pw-in-url@10.0.0.1:8008\"]",
    "topology.patroni[0]: credentials in the URL are not supported"
)]
#[case(
    "patroni = [\"https://patroni:pw-in-url@10.0.0.1:8008\"]",
    "topology.patroni[0]: https is not supported"
)]
#[case("patroni = [\"10.0.0.1:8008\"]", "topology.patroni[0]: expected http://host:port")]
#[case("patroni = [\" \"]", "topology.patroni[0]: expected http://host:port")]
#[case(
    "patroni = [\"http://10.0.0.1:8008\"]\ninterval = 0",
    "topology.interval: must be more than zero"
)]
#[case(
    "patroni = [\"http://10.0.0.1:8008\"]\ntimeout = \"0s\"",
    "topology.timeout: must be more than zero"
)]
#[case(
    "dns = \"replicas.internal:5432\"\ninterval = \"0ms\"",
    "topology.interval: must be more than zero"
)]
#[case("interval = \"1s\"", "topology.interval: only means something with topology.patroni")]
#[case("timeout = \"1s\"", "topology.timeout: only means something with topology.patroni")]
#[case("dns = \"\"", "topology.dns: is empty")]
#[case(
    "dns = \"replicas.internal\"",
    "topology.dns: expected host:port (e.g. replicas.internal:5432): no port"
)]
#[case(
    "dns = \"replicas.internal:0\"",
    "topology.dns: expected host:port (e.g. replicas.internal:5432): the port is not a number in 1..=65535"
)]
#[case(
    "dns = \"replicas.internal:pg\"",
    "topology.dns: expected host:port (e.g. replicas.internal:5432): the port is not a number in 1..=65535"
)]
#[case(
    "dns = \":5432\"",
    "topology.dns: expected host:port (e.g. replicas.internal:5432): no host"
)]
#[case(
    "dns = \"fd00::7:5432\"",
    "topology.dns: expected host:port (e.g. replicas.internal:5432): an IPv6 host needs brackets"
)]
#[case("dns = \"postgres://app:pw-in-url@replicas:5432/app\"", "topology.dns: expected host:port")]
fn invalid_topologies_name_the_field(#[case] table: &str, #[case] message: &str) {
    let config = topology_toml(table).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("pw-in-url"), "{shown}");
    let err = config.into_builder().unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{text}");
    assert!(text.contains(message), "{text}");
    assert!(!text.contains("pw-in-url") && !text.contains(":pw@"), "{text}");
}

#[test]
fn a_patroni_source_needs_a_postgres_primary() {
    let config: RoutedConfig = toml::from_str(
        "primary = { url = \"mysql://app:pw@db-1/app\" }\n[topology]\npatroni = [\"http://10.0.0.1:8008\"]",
    )
    .unwrap();
    let err = config.into_builder().unwrap_err();
    assert!(err.to_string().contains("topology.patroni: Patroni runs PostgreSQL"), "{err}");
}

/// The same from the environment: the variables, their parsing, and errors naming them.
#[test]
fn topology_variables_set_the_source() {
    let c = env(&[
        BASE,
        (
            "RWSPLIT_TOPOLOGY_PATRONI",
            " http://10.0.0.1:8008, http://10.0.0.2:8008;http://[fd00::3] ",
        ),
        ("RWSPLIT_TOPOLOGY_TIMEOUT", "750ms"),
        ("RWSPLIT_TOPOLOGY_INTERVAL", "3"),
    ])
    .unwrap();
    let t = &c.topology;
    assert_eq!(
        t.patroni.as_deref(),
        Some(
            &["http://10.0.0.1:8008", "http://10.0.0.2:8008", "http://[fd00::3]"].map(String::from)
                [..]
        )
    );
    assert_eq!(
        (t.dns.as_deref(), t.timeout, t.interval),
        (None, Some(Duration::from_millis(750)), Some(Duration::from_secs(3)))
    );
    let b = c.into_builder().unwrap();
    assert_eq!(b.discovery.as_ref().and_then(|d| d.ha_manager()), Some("Patroni"));

    let c = env(&[BASE, ("RWSPLIT_TOPOLOGY_DNS", "replicas.internal:5432")]).unwrap();
    assert_eq!(c.topology.dns.as_deref(), Some("replicas.internal:5432"));
    let b = c.into_builder().unwrap();
    assert!(b.discovery.as_ref().is_some_and(|d| d.ha_manager().is_none()));
}

#[rstest]
#[case(&[("RWSPLIT_TOPOLOGY_PATRONI", "http://a:8008"), ("RWSPLIT_TOPOLOGY_DNS", "b:5432")], "RWSPLIT_TOPOLOGY_DNS", "cannot be combined")]
#[case(&[("RWSPLIT_TOPOLOGY_PATRONI", " , ;")], "RWSPLIT_TOPOLOGY_PATRONI", "is empty")]
#[case(&[("RWSPLIT_TOPOLOGY_PATRONI", "http://a:8008,https://b:8008")], "RWSPLIT_TOPOLOGY_PATRONI (endpoint 2)", "https is not supported")]
#[case(&[("RWSPLIT_TOPOLOGY_PATRONI", "http://u:pw@a:8008")], "RWSPLIT_TOPOLOGY_PATRONI (endpoint 1)", "credentials")]
#[case(&[("RWSPLIT_TOPOLOGY_DNS", "b:5432"), ("RWSPLIT_TOPOLOGY_INTERVAL", "0")], "RWSPLIT_TOPOLOGY_INTERVAL", "more than zero")]
#[case(&[("RWSPLIT_TOPOLOGY_DNS", "b:5432"), ("RWSPLIT_TOPOLOGY_TIMEOUT", "soon")], "RWSPLIT_TOPOLOGY_TIMEOUT", "not a duration")]
#[case(&[("RWSPLIT_TOPOLOGY_INTERVAL", "1s")], "RWSPLIT_TOPOLOGY_INTERVAL", "only means something")]
#[case(&[("RWSPLIT_TOPOLOGY_DNS", "b")], "RWSPLIT_TOPOLOGY_DNS", "no port")]
fn bad_topology_variables_are_named(
    #[case] vars: &[(&str, &str)],
    #[case] field: &str,
    #[case] reason: &str,
) {
    let mut all = vec![BASE];
    all.extend_from_slice(vars);
    let err = env(&all).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{text}");
    assert!(text.contains(&format!("{field}: ")) && text.contains(reason), "{text}");
    assert!(!text.contains("pw"), "{text}");
}

/// A configured Patroni source and automatic failover (added in code) are refused by
/// `connect()` before anything is connected: Patroni promotes, rwsplit follows.
#[tokio::test]
async fn a_patroni_topology_with_auto_failover_is_refused_before_connecting() {
    let config: RoutedConfig = toml::from_str(
        "primary = { url = \"postgres://app:hunter2@192.0.2.1:5432/app\" }\n\
         [topology]\npatroni = [\"http://192.0.2.1:8008\"]",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = config
        .into_builder()
        .unwrap()
        .auto_failover(rwsplit_monitor::AutoFailover::default())
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FailoverWithHaManager { manager: "Patroni" }), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1), "nothing was connected");
}

/// Automatic failover with a replica behind a pooler is refused before connecting: its lock
/// would sit on a server connection the pooler shares with other clients.
#[rstest]
#[case(crate::Pooling::Session, "session")]
#[case(crate::Pooling::Transaction, "transaction")]
#[tokio::test]
async fn auto_failover_through_a_pooler_is_refused_before_connecting(
    #[case] pooling: crate::Pooling,
    #[case] named: &str,
) {
    let started = std::time::Instant::now();
    let err = RoutedConnection::builder()
        .primary("postgres://app:hunter2@192.0.2.1:5432/app")
        .replica("postgres://app:hunter2@192.0.2.2:5432/app")
        .replica(crate::Replica::new("postgres://app:hunter2@192.0.2.3:6432/app").pooling(pooling))
        .auto_failover(rwsplit_monitor::AutoFailover::default())
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::FailoverThroughPooler { node, pooling } if node == "replica 2" && *pooling == named),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1), "nothing was connected");
}

/// A name in a namespace `from_env` owns that it does not read is refused, naming the nearest
/// name it reads; the value is never shown.
#[rstest]
#[case("RWSPLIT_TOPOLOGY_PATRONY", Some("RWSPLIT_TOPOLOGY_PATRONI"))]
#[case("RWSPLIT_BALANCR", Some("RWSPLIT_BALANCER"))]
#[case("RWSPLIT_WAIT_FOR_REPLICAS", Some("RWSPLIT_WAIT_FOR_REPLICA"))]
#[case("RWSPLIT_MAX_REPLICA_LAG_MS", Some("RWSPLIT_MAX_REPLICA_LAG"))]
#[case("DATABASE_REPLICA_1_WIEGHT", Some("DATABASE_REPLICA_1_WEIGHT"))]
#[case("DATABASE_PRIMARY_WEIGHT", Some("DATABASE_REPLICA_1_WEIGHT"))]
#[case("DATABASE_REPLICA_MAX_CONECTIONS", Some("DATABASE_REPLICA_MAX_CONNECTIONS"))]
#[case("DATABASE_MAX_CONECTIONS", Some("DATABASE_MAX_CONNECTIONS"))]
#[case("DATABASE_REPLICA_URL", Some("DATABASE_REPLICA_URLS"))]
// Old names of a crate never released: errors pointing at the name read now.
#[case("RWSPLIT_REPLICA_URLS", Some("DATABASE_REPLICA_URLS"))]
#[case("RWSPLIT_PRIMARY_URL", Some("DATABASE_URL"))]
#[case("RWSPLIT_MAX_LAG", Some("RWSPLIT_MAX_REPLICA_LAG"))]
#[case("RWSPLIT_MAX_LAG_BYTES", Some("RWSPLIT_MAX_REPLICA_LAG_BYTES"))]
fn unknown_variables_are_refused_with_the_nearest_name(
    #[case] name: &str,
    #[case] nearest: Option<&str>,
) {
    let err = env(&[BASE, TWO, (name, "secret-value")]).unwrap_err();
    let text = err.to_string();
    match &err {
        Error::UnknownVariable { name: n, nearest: found } => {
            assert_eq!(n, name);
            assert_eq!(found.as_deref(), nearest, "{text}");
        }
        other => panic!("{other}"),
    }
    assert!(text.contains(name) && !text.contains("secret-value"), "{text}");
    if let Some(nearest) = nearest {
        assert!(text.contains(&format!("did you mean {nearest}?")), "{text}");
    }
}

/// The old name of the primary's URL, set alone, is refused naming the one read now, rather
/// than reported as DATABASE_URL missing.
#[test]
fn the_old_primary_variable_alone_names_database_url() {
    let err = env(&[("RWSPLIT_PRIMARY_URL", "postgres://app:secret-value@db-1/app")]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownVariable { name, nearest: Some(n) }
            if name == "RWSPLIT_PRIMARY_URL" && n == "DATABASE_URL"),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("did you mean DATABASE_URL?") && !text.contains("secret"), "{text}");
}

/// Names that are not `from_env`'s are left alone: other tools' `DATABASE_*`, the testkit's,
/// the examples' and the repository's tooling's prefixes, and rwsplit-axum's key.
#[rstest]
#[case("DATABASE_HOST")]
#[case("DATABASE_PASSWORD")]
#[case("DATABASE_POOL_SIZE")]
#[case("DATABASE_SSL")]
#[case("DATABASE_USER")]
#[case("DATABASE_PORT")]
#[case("DATABASE_NAME")]
#[case("RWSPLIT_TESTKIT_PG_BIN")]
#[case("RWSPLIT_TESTKIT_ANYTHING")]
#[case("RWSPLIT_EXAMPLE_METRICS_ADDR")]
#[case("RWSPLIT_ITEST_CLUSTER_POSTGRES")]
#[case("RWSPLIT_BENCH_URL")]
#[case("RWSPLIT_SOAK_MINUTES")]
#[case("RWSPLIT_SEAORM_SUITE_MODE")]
#[case("RWSPLIT_FUZZ_SECONDS")]
#[case("RWSPLIT_TOKEN_KEY")]
fn names_of_others_are_left_alone(#[case] name: &str) {
    env(&[BASE, TWO, (name, "x")]).unwrap();
}

/// `DATABASE_URL` with the old `RWSPLIT_REPLICA_URLS` is an error naming the variable read now,
/// not a primary-only connection; the old lag key in a file is an unknown field.
#[test]
fn old_names_are_refused_naming_the_new_one() {
    let err = env(&[BASE, ("RWSPLIT_REPLICA_URLS", "postgres://r1/app")]).unwrap_err();
    assert!(err.to_string().contains("did you mean DATABASE_REPLICA_URLS?"), "{err}");
    let old = toml::from_str::<RoutedConfig>(
        "primary = { url = \"postgres://p/app\" }\n[monitor]\nmax_lag = \"30s\"\n",
    );
    assert!(old.unwrap_err().to_string().contains("unknown field `max_lag`"));
}

/// One type per concept: each section of a file reads into the type the builder takes, equal
/// (as `Debug` shows it, setters recorded included) to that type made with its setters in code.
#[test]
fn each_section_is_the_builders_own_type() {
    use rwsplit_core::{PrimaryReads, WeightedRoundRobin, ZonePreference};
    let config: RoutedConfig = toml::from_str(
        r#"
        primary = { url = "postgres://db-1/app" }
        [router]
        balancer = "weighted_round_robin"
        prefer_zone = "a"
        primary_reads = "never"
        max_replica_lag = "30s"
        [monitor]
        probe_interval = "250ms"
        position_linger = "1s"
        [health]
        failure_threshold = 5
        ban_max = "1m"
        [policy]
        consistency = "bounded_staleness"
        staleness_bytes = 4096
        "#,
    )
    .unwrap();
    let router = RouterConfig::default()
        .balancer(ZonePreference::new("a", Box::new(WeightedRoundRobin::default()) as Box<_>))
        .primary_reads(PrimaryReads::Never)
        .max_replica_lag(Staleness::time(Duration::from_secs(30)));
    assert_eq!(format!("{:?}", config.router), format!("{router:?}"));
    let monitor = MonitorConfig::default()
        .probe_interval(Duration::from_millis(250))
        .position_linger(Duration::from_secs(1));
    assert_eq!(config.monitor, monitor);
    let health = HealthPolicy::default().failure_threshold(5).ban_max(Duration::from_secs(60));
    assert_eq!(config.health, health);
    assert_eq!(
        config.policy.consistency,
        Some(Consistency::BoundedStaleness(Staleness::bytes(4096)))
    );
}

/// `connect()` against a primary it cannot reach: the cause is logged at once (not after the
/// wait, not never), and `connect()` gives up after `connect_wait` with an error naming the
/// cause and the setting, never the password. Refused (a closed port), a name that does not
/// resolve, and a server that accepts TCP but never answers (a black hole: the listener never
/// accepts).
#[rstest]
#[case::refused("127.0.0.1:{closed}", "connection refused", "cannot connect to the primary yet")]
#[case::unresolvable(
    "no-such-host.invalid:5432",
    "a network error",
    "cannot connect to the primary yet"
)]
#[case::silent("127.0.0.1:{silent}", "the connection timed out", "has not answered a connection")]
#[tokio::test]
async fn connect_to_an_unreachable_primary_says_why_at_once_and_gives_up_after_the_wait(
    #[case] address: &str,
    #[case] cause: &str,
    #[case] logged: &str,
) {
    let (subscriber, logs) = crate::tests_hardening::capture(tracing::Level::INFO);
    let _guard = tracing::subscriber::set_default(subscriber);
    let closed =
        std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port();
    let silent = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let address = address
        .replace("{closed}", &closed.to_string())
        .replace("{silent}", &silent.local_addr().unwrap().port().to_string());
    let wait = Duration::from_millis(1500);
    let started = std::time::Instant::now();
    let connecting = tokio::spawn(
        RoutedConnection::builder()
            .primary(format!("postgres://app:hunter2@{address}/app"))
            .connect_wait(wait)
            .connect(),
    );
    // Logged within the first attempt (a silent node: after a second of silence).
    let soon = if logged.contains("answered") { 1_300 } else { 300 };
    tokio::time::sleep(Duration::from_millis(soon)).await;
    let early = logs.text();
    assert!(early.contains(logged) && early.contains("WARN"), "logged at once: {early}");
    let err = connecting.await.unwrap().expect_err("unreachable");
    let took = started.elapsed();
    assert!(took >= wait && took < wait + Duration::from_secs(2), "gave up after {took:?}");
    let text = err.to_string();
    eprintln!("{address}: connect() gave up after {took:?}: {text}");
    assert!(matches!(err, Error::PrimaryUnreachable { gave_up_after: Some(_), .. }), "{text}");
    assert!(text.contains(cause) && text.contains("`connect_wait`"), "{text}");
    assert!(!text.contains("hunter2") && !logs.text().contains("hunter2"), "{text}");
}

/// The wait is a setting of each kind: builder, file, environment; 5 s unset.
#[test]
fn connect_wait_is_set_in_code_a_file_or_the_environment() {
    let wait = |b: RoutedConnectionBuilder| b.policy.timeouts.connect_wait;
    assert_eq!(wait(RoutedConnection::builder()), Duration::from_secs(5));
    let b = RoutedConnection::builder().connect_wait(Duration::from_secs(30));
    assert_eq!(wait(b), Duration::from_secs(30));
    let file: RoutedConfig = toml::from_str(
        "primary = { url = \"postgres://app@db-1/app\" }\n[policy]\nconnect_wait = \"45s\"",
    )
    .unwrap();
    assert_eq!(wait(file.into_builder().unwrap()), Duration::from_secs(45));
    let vars = env(&[BASE, ("RWSPLIT_CONNECT_WAIT", "2m")]).unwrap();
    assert_eq!(wait(vars.into_builder().unwrap()), Duration::from_secs(120));
}

type B = RoutedConnectionBuilder;
type Setter = fn(B) -> B;

/// A file of a primary and one replica, each with `primary_pool` and `replica_pool` inside
/// its table (`, pool = { … }` or nothing), then `rest`.
fn two_nodes(primary_pool: &str, replica_pool: &str, rest: &str) -> RoutedConnectionBuilder {
    let text = format!(
        "primary = {{ url = \"postgres://p/app\"{primary_pool} }}\n\
         replicas = [{{ url = \"postgres://r/app\"{replica_pool} }}]\n{rest}"
    );
    toml::from_str::<RoutedConfig>(&text).unwrap().into_builder().unwrap()
}

/// Which acquire timeout each pool gets (in seconds: the primary's, then the replica's writer
/// and read pools), by the one rule: a node's own (its `pool`, or `ConnectOptions` given in
/// code) over every node's; among every node's, code (`.acquire_timeout(d)`) over the file's
/// `[pool]`; at one level, `acquire_timeout` over `connect_timeout` (SeaORM hands either to sqlx
/// as the acquire timeout).
#[cfg(feature = "postgres")]
#[rstest]
#[case::defaults("", "", "", |b: B| b, [30, 30, 5])]
#[case::every_pool_from_the_file("", "", "[pool]\nacquire_timeout = \"2s\"", |b: B| b, [2, 2, 2])]
#[case::code_over_the_file(
    "", "", "[pool]\nacquire_timeout = \"2s\"",
    |b: B| b.acquire_timeout(Duration::from_secs(1)),
    [1, 1, 1]
)]
#[case::the_files_connect_timeout("", "", "[pool]\nconnect_timeout = \"3s\"", |b: B| b, [3, 3, 3])]
#[case::code_over_the_files_connect_timeout(
    "", "", "[pool]\nconnect_timeout = \"3s\"",
    |b: B| b.acquire_timeout(Duration::from_secs(1)),
    [1, 1, 1]
)]
#[case::acquire_over_connect_at_one_level(
    "", "", "[pool]\nconnect_timeout = \"3s\"\nacquire_timeout = \"2s\"", |b: B| b, [2, 2, 2]
)]
#[case::a_nodes_own_over_the_file(
    ", pool = { acquire_timeout = \"4s\" }", "", "[pool]\nacquire_timeout = \"2s\"", |b: B| b,
    [4, 2, 2]
)]
#[case::a_nodes_own_over_code(
    ", pool = { acquire_timeout = \"4s\" }", "", "",
    |b: B| b.acquire_timeout(Duration::from_secs(1)),
    [4, 1, 1]
)]
#[case::a_nodes_own_connect_timeout_over_every_nodes_acquire_timeout(
    "", ", pool = { connect_timeout = \"3s\" }", "[pool]\nacquire_timeout = \"2s\"", |b: B| b,
    [2, 3, 3]
)]
#[case::connect_options_given_in_code_over_code(
    "", "", "[pool]\nacquire_timeout = \"2s\"",
    |b: B| {
        let mut own = ConnectOptions::new("postgres://p/app");
        own.acquire_timeout(Duration::from_secs(4));
        b.primary(own).acquire_timeout(Duration::from_secs(1))
    },
    [4, 1, 1]
)]
#[tokio::test]
async fn one_rule_gives_each_pool_its_acquire_timeout(
    #[case] primary_pool: &str,
    #[case] replica_pool: &str,
    #[case] rest: &str,
    #[case] code: Setter,
    #[case] seconds: [u64; 3],
) {
    let b = code(two_nodes(primary_pool, replica_pool, rest));
    assert_eq!(b.acquire_timeouts().await, seconds.map(Duration::from_secs));
}

/// A file of a primary and two replicas, in zones `a` and `b`, then `sections`.
fn zoned(sections: &str) -> B {
    let text = format!(
        "primary = {{ url = \"postgres://p/app\" }}\n\
         replicas = [{{ url = \"postgres://r1/app\", zone = \"a\" }}, \
                     {{ url = \"postgres://r2/app\", zone = \"b\" }}]\n{sections}"
    );
    toml::from_str::<RoutedConfig>(&text).unwrap().into_builder().unwrap()
}

fn code() -> B {
    RoutedConnection::builder().primary("postgres://p/app").replica("postgres://r1/app")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The probe interval `connect()` would use.
fn probe_interval(b: B) -> String {
    format!("{:?}", b.resolve().policy.monitor.probe_interval_value())
}

/// Whether read-only transactions may run on replicas, as `connect()` would route them.
fn read_only_transactions(b: B) -> String {
    let router = format!("{:?}", b.resolve().router);
    let (_, rest) = router.split_once("read_only_transactions_on_replicas: ").unwrap();
    rest.split([',', ' ']).next().unwrap().to_owned()
}

/// The zone the resolved balancer prefers.
fn preferred_zone(b: B) -> String {
    format!("{:?}", b.resolve().router.balancer_value().preferred_zone())
}

/// The catch-up wait of a read: with `call`, the call's own (`db.wait_for_replica(d)`), else
/// the connection's.
fn read_wait(b: B, call: Option<Duration>) -> String {
    use crate::connection::Handle as _;
    let mock = || sea_orm::MockDatabase::new(sea_orm::DbBackend::Postgres).into_connection();
    let db =
        RoutedConnection::from_connections_with(mock(), vec![mock()], b.resolve().policy).unwrap();
    let wait = match call {
        Some(d) => db.inner.wait_of(&db.wait_for_replica(d).ctx()),
        None => db.inner.wait_of(&db.ctx()),
    };
    format!("{wait:?}")
}

/// One rule, for every pair of ways to set one thing (docs/guide/configuration.md, *Which
/// setting wins*): the more specific wins, whatever the order of the calls — a call's own
/// argument over the builder's dedicated setter, over the same setting inside a whole struct
/// (`RouterConfig`, `MonitorConfig`), over the file or the environment, over the default.
/// (Pools: `one_rule_gives_each_pool_its_acquire_timeout`.)
#[rstest]
// probe_interval: the builder's setter, a MonitorConfig's, the file's [monitor].
#[case::interval_setter_then_struct(
    || probe_interval(code().probe_interval(secs(2)).monitor(rwsplit_monitor::MonitorConfig::default().probe_interval(secs(9)))),
    "2s"
)]
#[case::interval_struct_then_setter(
    || probe_interval(code().monitor(rwsplit_monitor::MonitorConfig::default().probe_interval(secs(9))).probe_interval(secs(2))),
    "2s"
)]
#[case::interval_file(|| probe_interval(zoned("[monitor]\nprobe_interval = \"7s\"")), "7s")]
#[case::interval_struct_over_file(
    || probe_interval(zoned("[monitor]\nprobe_interval = \"7s\"").monitor(rwsplit_monitor::MonitorConfig::default().probe_interval(secs(3)))),
    "3s"
)]
#[case::interval_setter_over_file(
    || probe_interval(zoned("[monitor]\nprobe_interval = \"7s\"").probe_interval(secs(2))),
    "2s"
)]
#[case::interval_other_monitor_keys_keep_the_files(
    || probe_interval(zoned("[monitor]\nprobe_interval = \"7s\"").monitor(rwsplit_monitor::MonitorConfig::default().probe_timeout(secs(3)))),
    "7s"
)]
// read_only_transactions_on_replicas: the builder's setter, a RouterConfig's, the file's [router].
#[case::transactions_setter_then_struct(
    || read_only_transactions(code().read_only_transactions_on_replicas(false).router(RouterConfig::default().read_only_transactions_on_replicas(true))),
    "false"
)]
#[case::transactions_struct_then_setter(
    || read_only_transactions(code().router(RouterConfig::default().read_only_transactions_on_replicas(true)).read_only_transactions_on_replicas(false)),
    "false"
)]
#[case::transactions_file(
    || read_only_transactions(zoned("[router]\nread_only_transactions_on_replicas = false")),
    "false"
)]
#[case::transactions_struct_over_file(
    || read_only_transactions(zoned("[router]\nread_only_transactions_on_replicas = false").router(RouterConfig::default().read_only_transactions_on_replicas(true))),
    "true"
)]
#[case::transactions_setter_over_file(
    || read_only_transactions(zoned("[router]\nread_only_transactions_on_replicas = false").read_only_transactions_on_replicas(true)),
    "true"
)]
// prefer_zone: the file's, and a balancer given in code, with or without a zone of its own.
#[case::zone_kept_around_a_balancer_in_code(
    || preferred_zone(zoned("[router]\nprefer_zone = \"a\"").router(RouterConfig::default().balancer(rwsplit_core::LeastOutstanding::default()))),
    "Some(\"a\")"
)]
#[case::zone_given_in_code_over_file(
    || preferred_zone(zoned("[router]\nprefer_zone = \"a\"").router(RouterConfig::default().balancer(rwsplit_core::ZonePreference::new("b", rwsplit_core::RoundRobin::default())))),
    "Some(\"b\")"
)]
// wait_for_replica: the default, the file's [policy], the builder's, a call's own.
#[case::wait_default(|| read_wait(code(), None), "Some(10ms)")]
#[case::wait_file(|| read_wait(zoned("[policy]\nwait_for_replica = \"20ms\""), None), "Some(20ms)")]
#[case::wait_builder_over_file(
    || read_wait(zoned("[policy]\nwait_for_replica = \"20ms\"").wait_for_replica(Duration::from_millis(30)), None),
    "Some(30ms)"
)]
#[case::wait_call_over_builder(
    || read_wait(code().wait_for_replica(Duration::from_millis(30)), Some(Duration::from_millis(5))),
    "Some(5ms)"
)]
#[case::wait_call_zero_over_builder(
    || read_wait(code().wait_for_replica(Duration::from_millis(30)), Some(Duration::ZERO)),
    "None"
)]
// The environment: from_env reads its fixed names only; APP__… is the `config` crate's, which
// it never reads (nor is it refused: not a name of its own).
#[case::env_fixed_names_only(
    || {
        let c = env(&[
            BASE,
            TWO,
            ("DATABASE_REPLICA_1_ZONE", "a"),
            ("DATABASE_REPLICA_2_ZONE", "b"),
            ("RWSPLIT_PREFER_ZONE", "a"),
            ("APP__ROUTER__PREFER_ZONE", "b"),
        ])
        .unwrap();
        format!("{:?}", c.router.balancer_value().preferred_zone())
    },
    "Some(\"a\")"
)]
// TopologyConfig / PatroniSource: code's source and interval over the file's.
#[case::topology_source_given_in_code_over_file(
    || {
        let b = zoned("[topology]\ndns = \"replicas.internal:5432\"")
            .topology(rwsplit_monitor::PatroniSource::new(["http://10.0.0.1:8008"]).unwrap());
        format!("{:?}", b.discovery.and_then(|d| d.ha_manager()))
    },
    "Some(\"Patroni\")"
)]
#[case::topology_interval_given_in_code_over_file(
    || {
        let b = zoned("[topology]\ndns = \"replicas.internal:5432\"\ninterval = \"2s\"")
            .topology_interval(secs(5));
        format!("{:?}", b.topology_interval)
    },
    "Some(5s)"
)]
// ReplicaConfig / Replica: lists add, never replace.
#[case::replicas_add(
    || zoned("").replica(Replica::new("postgres://r3/app").zone("a")).replicas.len().to_string(),
    "3"
)]
#[tokio::test]
async fn one_rule_says_which_setting_wins(#[case] look: fn() -> String, #[case] winner: &str) {
    assert_eq!(look(), winner);
}
