//! A replica with the router's view of it: weight, zone and tags.

use std::fmt;

use sea_orm::ConnectOptions;

use crate::product::Pooling;

/// A replica: its connection options and what the router's balancers and rules may use to
/// choose it — a weight ([`WeightedRoundRobin`](crate::advanced::WeightedRoundRobin)), a zone
/// ([`ZonePreference`](crate::advanced::ZonePreference)) and tags ([`TableRule`](crate::advanced::TableRule),
/// [`TagRule`](crate::advanced::TagRule), [`RouterConfig::dedicated_tag`](crate::advanced::RouterConfig::dedicated_tag)).
/// A URL or `ConnectOptions` converts into one with weight 1, no zone and no tags, so
/// [`RoutedConnectionBuilder::replica`](crate::RoutedConnectionBuilder::replica) takes either.
///
/// ```no_run
/// # async fn demo() -> Result<(), rwsplit_sea_orm::Error> {
/// use rwsplit_sea_orm::advanced::{RoundRobin, RouterConfig, TableRule, ZonePreference};
/// use rwsplit_sea_orm::{Replica, RoutedConnection};
///
/// let db = RoutedConnection::builder()
///     .primary("postgres://app@db-1/app")
///     .replica(Replica::new("postgres://app@db-2/app").zone("eu-west-1a").weight(2))
///     .replica(Replica::new("postgres://app@db-3/app").zone("eu-west-1b").tag("analytics"))
///     .router(
///         RouterConfig::default()
///             .balancer(ZonePreference::new("eu-west-1a", RoundRobin::default()))
///             .rule(TableRule::only_tagged(["events"], "analytics")),
///     )
///     .connect()
///     .await?;
/// # drop(db);
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct Replica {
    pub(crate) options: ConnectOptions,
    pub(crate) placement: Placement,
    /// Where the other nodes replicate it from (`host:port`), if not its URL's host and port.
    pub(crate) replication_address: Option<String>,
    pub(crate) pooling: Pooling,
}

/// Where a node stands for the router: weight, zone, tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    pub(crate) weight: u32,
    pub(crate) zone: Option<Box<str>>,
    pub(crate) tags: Vec<Box<str>>,
}

impl Default for Placement {
    fn default() -> Self {
        Placement { weight: 1, zone: None, tags: Vec::new() }
    }
}

impl Replica {
    /// A replica at `options` (a URL or SeaORM `ConnectOptions`): weight 1, no zone, no tags.
    pub fn new(options: impl Into<ConnectOptions>) -> Replica {
        Replica {
            options: options.into(),
            placement: Placement::default(),
            replication_address: None,
            pooling: Pooling::Direct,
        }
    }

    /// Its share for [`WeightedRoundRobin`](crate::advanced::WeightedRoundRobin): a replica of weight 3
    /// gets three reads for every one of a replica of weight 1 (default 1).
    pub fn weight(mut self, weight: u32) -> Self {
        self.placement.weight = weight;
        self
    }

    /// Its zone (an availability zone, a data centre), for
    /// [`ZonePreference`](crate::advanced::ZonePreference).
    pub fn zone(mut self, zone: impl Into<Box<str>>) -> Self {
        self.placement.zone = Some(zone.into());
        self
    }

    /// Adds a tag, for [`TableRule`](crate::advanced::TableRule) and [`TagRule`](crate::advanced::TagRule)
    /// (`only_tagged`, `prefer_tagged`) and [`RouterConfig::dedicated_tag`](crate::advanced::RouterConfig::dedicated_tag).
    pub fn tag(mut self, tag: impl Into<Box<str>>) -> Self {
        self.placement.tags.push(tag.into());
        self
    }

    /// What stands between the application and this replica (default [`Pooling::Direct`]):
    /// behind PgBouncer, its pool mode. It decides how the replica's sessions are made read-only
    /// and whether its pools may cache prepared statements; see [`Pooling`].
    pub fn pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = pooling;
        self
    }
}

impl Replica {
    /// Where the other nodes replicate from it, `host:port`, when that is not its URL's host
    /// and port (the default): e.g. the application reaches it through NAT, a published
    /// container port or a proxy, and the replicas over a network of their own.
    /// [`AutoFailover`](crate::advanced::AutoFailover) re-points the other replicas at this address when
    /// it promotes this replica. Checked by
    /// [`connect`](crate::RoutedConnectionBuilder::connect) ([`Error::InvalidUrl`](crate::Error::InvalidUrl)
    /// names the replica).
    pub fn replication_address(mut self, address: impl Into<String>) -> Self {
        self.replication_address = Some(address.into());
        self
    }
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SeaORM's `ConnectOptions` Debug prints the URL with its password: never use it.
        f.debug_struct("Replica")
            .field("url", &crate::observe::redact::node_name_redacted(self.options.get_url()))
            .field("weight", &self.placement.weight)
            .field("zone", &self.placement.zone)
            .field("tags", &self.placement.tags)
            .field(
                "replication_address",
                &self.replication_address.as_deref().map(crate::observe::redact::address_redacted),
            )
            .field("pooling", &self.pooling)
            .finish()
    }
}

impl From<ConnectOptions> for Replica {
    fn from(options: ConnectOptions) -> Replica {
        Replica::new(options)
    }
}

impl From<&str> for Replica {
    fn from(url: &str) -> Replica {
        Replica::new(url.to_owned())
    }
}

impl From<String> for Replica {
    fn from(url: String) -> Replica {
        Replica::new(url)
    }
}

impl From<&String> for Replica {
    fn from(url: &String) -> Replica {
        Replica::new(url.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_a_replica_of_weight_one_and_its_debug_hides_the_password() {
        let r = Replica::from("postgres://app:hunter2@db-2:5432/app").zone("a").tag("x").weight(3);
        assert_eq!(
            r.placement,
            Placement { weight: 3, zone: Some("a".into()), tags: vec!["x".into()] }
        );
        let debug = format!("{r:?}");
        assert!(!debug.contains("hunter2") && debug.contains("db-2"), "{debug}");
        assert_eq!(Replica::from(String::from("postgres://h/db")).placement, Placement::default());
    }
}
