//! One monitor per cluster per process: every [`RoutedConnection`] of a process
//! that points at the same nodes with the same monitor settings, on the same tokio runtime,
//! shares one [`Monitor`] — its probe loops, its connections and the [`TopologyState`] they feed
//! — instead of each paying for its own. Dropping the last connection stops it.
//!
//! Two connections share when their keys ([`Key`]) are equal: the same product; the same
//! nodes in the same order, each by its full URL (host, port, database, user, password:
//! compared in memory, never logged or hashed into anything that leaves the process) and
//! whether it is probed through transaction pooling; the same [`MonitorConfig`], health policy
//! and automatic failover; the same runtime (a monitor's loops live on the runtime that
//! started them and die with it). Not shared:
//! - connections that follow a topology source: each applies the members it finds to its own
//!   node registry, and their ids would diverge;
//! - connections wrapped with [`from_connections`](crate::RoutedConnection::from_connections): the
//!   monitor opens its connections from the application's pools, which only that connection
//!   knows;
//! - connections to other databases of the same servers (one per tenant). Role, replay
//!   position and health belong to the server, but a probe connects to one database as one
//!   user: sharing across them would let one tenant's dropped database or revoked grant mark
//!   the server down for every tenant. Their cost is per database, not per connection.
//!
//! [`RoutedConnection`]: crate::RoutedConnection
//! [`RoutedConnection::from_connections`]: crate::RoutedConnection::from_connections

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use rwsplit_core::{HealthPolicy, NodeId};
use rwsplit_monitor::{AutoFailover, Flavor, Monitor, MonitorConfig, OnProbe, TopologyState};

use crate::nodes::probe::ProbeFrom;
use crate::nodes::replica::Placement;

/// What makes two connections' monitors interchangeable (see the module docs). No `Debug`: its
/// URLs hold credentials.
#[derive(PartialEq, Eq)]
pub(crate) struct Key {
    runtime: tokio::runtime::Id,
    flavor: Flavor,
    /// Per node, in id order: probed through transaction pooling, its URL, and its placement
    /// (the state's snapshot carries weights, zones and tags to the router).
    nodes: Vec<(bool, String, Placement)>,
    monitor: MonitorConfig,
    health: HealthPolicy,
    failover: Option<AutoFailover>,
}

impl Key {
    /// The key of a connection with these nodes and settings, on the current runtime; `None`
    /// when it cannot share (outside a runtime, or a node probed from the application's own
    /// pool).
    pub(crate) fn of<'a>(
        flavor: Flavor,
        nodes: impl IntoIterator<Item = (&'a ProbeFrom, &'a Placement)>,
        monitor: MonitorConfig,
        health: HealthPolicy,
        failover: Option<&AutoFailover>,
    ) -> Option<Key> {
        let runtime = tokio::runtime::Handle::try_current().ok()?.id();
        let nodes = nodes
            .into_iter()
            .map(|(from, placement)| match from {
                ProbeFrom::Options(o) => Some((false, o.get_url().to_owned(), placement.clone())),
                ProbeFrom::Framed(o) => Some((true, o.get_url().to_owned(), placement.clone())),
                ProbeFrom::Given(_) => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Key { runtime, flavor, nodes, monitor, health, failover: failover.cloned() })
    }
}

/// Objects shared across a process's connections, by key, held weakly: an object lives while
/// a connection holds it, and entries whose object is gone are dropped at the next lookup. The
/// running monitors (below) and each database's learned shapes
/// ([`LearnedShapes`](crate::routing::classified::LearnedShapes)) are kept in one each.
pub(crate) struct Registry<K, V>(Mutex<Vec<(K, Weak<V>)>>);

impl<K: PartialEq, V> Registry<K, V> {
    pub(crate) const fn new() -> Self {
        Registry(Mutex::new(Vec::new()))
    }

    /// The live object under `key` (`true`: it was there), else `make()`'s, registered under
    /// `key` (`false`). `make` runs under the registry's lock: two connections asking at once
    /// get one object.
    pub(crate) fn get_or_insert(&self, key: K, make: impl FnOnce() -> Arc<V>) -> (Arc<V>, bool) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|(_, v)| v.strong_count() > 0);
        if let Some(v) = all.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.upgrade()) {
            return (v, true);
        }
        let v = make();
        all.push((key, Arc::downgrade(&v)));
        (v, false)
    }
}

/// The monitors running in this process, by key.
static RUNNING: Registry<Key, Shared> = Registry::new();

/// A monitor and the connections listening to its probes.
pub(crate) struct Shared {
    monitor: Monitor,
    listeners: Arc<Listeners>,
}

/// The probe callbacks of the connections sharing one monitor.
#[derive(Default)]
struct Listeners {
    next: AtomicU64,
    list: Mutex<Vec<(u64, OnProbe)>>,
}

impl Listeners {
    fn call(&self, node: NodeId, seen: Option<&rwsplit_monitor::Observation>) {
        // Called without the lock: a callback may take a while (it sweeps scopes).
        let list: Vec<OnProbe> = {
            let list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
            list.iter().map(|(_, f)| Arc::clone(f)).collect()
        };
        for f in list {
            f(node, seen);
        }
    }
}

/// The monitor for `key`: the running one if there is one (`joined`), else one started by
/// `start` on a new state from `state` (with `key`, registered for the next connection; without,
/// this connection's alone). `start` gets the callback that fans each probe out to every
/// connection listening.
pub(crate) fn acquire(
    key: Option<Key>,
    state: impl FnOnce() -> Arc<TopologyState>,
    start: impl FnOnce(Arc<TopologyState>, OnProbe) -> Monitor,
) -> Acquired {
    let make = || {
        let listeners = Arc::new(Listeners::default());
        let fan_out = Arc::clone(&listeners);
        let monitor = start(state(), Arc::new(move |node, seen| fan_out.call(node, seen)));
        Arc::new(Shared { monitor, listeners })
    };
    let (shared, joined) = match key {
        Some(key) => RUNNING.get_or_insert(key, make),
        None => (make(), false),
    };
    Acquired { shared, joined }
}

/// What [`acquire`] found or started.
pub(crate) struct Acquired {
    shared: Arc<Shared>,
    /// Whether it was running already (another connection's).
    pub(crate) joined: bool,
}

impl Acquired {
    /// The state its loops feed.
    pub(crate) fn state(&self) -> Arc<TopologyState> {
        Arc::clone(self.shared.monitor.state())
    }

    /// Listens to its probes with `on_probe` until the handle is dropped.
    pub(crate) fn listen(self, on_probe: OnProbe) -> MonitorHandle {
        let id = self.shared.listeners.next.fetch_add(1, Ordering::Relaxed);
        self.shared
            .listeners
            .list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, on_probe));
        MonitorHandle { shared: self.shared, id, joined: self.joined }
    }
}

/// How long the start waits for every replica's first answer before it settles for the
/// primary's and one replica's ([`MonitorHandle::first_answers`]): replicas that answer do so
/// in milliseconds; one that has not by then is held out of rotation until it does.
const FIRST_ANSWERS: Duration = Duration::from_millis(300);

/// One connection's hold on a (possibly shared) monitor: its probe callback stays registered
/// while it lives, and the monitor runs while any handle does.
pub(crate) struct MonitorHandle {
    shared: Arc<Shared>,
    id: u64,
    /// Whether the monitor was running when this connection came (another connection's).
    joined: bool,
}

impl MonitorHandle {
    /// Calls this connection's callback with every node's latest probe, as if each had just
    /// been probed: a connection that joins a running monitor (or whose first probes raced its
    /// construction) learns what the probes so far saw.
    pub(crate) fn replay(&self) {
        let f = {
            let list = self.shared.listeners.list.lock().unwrap_or_else(PoisonError::into_inner);
            list.iter().find(|(id, _)| *id == self.id).map(|(_, f)| Arc::clone(f))
        };
        let Some(f) = f else { return };
        for (node, seen) in self.shared.monitor.state().latest() {
            if seen.is_some() {
                f(node, seen.as_ref());
            }
        }
    }

    /// Waits, at most `max`, until the monitor has had an answer from every node of `ids`, or
    /// has probed every node once, or — after [`FIRST_ANSWERS`] — has had an answer from the
    /// primary (id 0) and one replica (so the first reads know a replica's role and position,
    /// and one frozen replica does not hold the start up). Returns the replicas that have not
    /// answered by then: the caller holds them out of rotation until they do. A connection on
    /// another connection's monitor waits for that monitor's first round; its nodes were
    /// dealt with then.
    pub(crate) async fn first_answers(&self, ids: &[NodeId], max: Duration) -> Vec<NodeId> {
        let m = &self.shared.monitor;
        if self.joined {
            m.first_round(max).await;
            return Vec::new();
        }
        let state = m.state();
        let primary = NodeId::new(0);
        let started = tokio::time::Instant::now();
        let deadline = started + max;
        let enough = started + FIRST_ANSWERS.min(max);
        loop {
            // Made before the look: an answer published in between still wakes it.
            let published = state.published();
            let mut published = std::pin::pin!(published);
            published.as_mut().enable();
            let answered = |i: &NodeId| state.answered(*i);
            let replica = ids.len() == 1 || ids.iter().filter(|&&i| i != primary).any(answered);
            let now = tokio::time::Instant::now();
            if ids.iter().all(answered) || (now >= enough && state.answered(primary) && replica) {
                break;
            }
            let round = m.first_round(Duration::ZERO);
            if round.await {
                break;
            }
            let round = m.first_round(max);
            let wake = if now < enough { enough } else { deadline };
            tokio::select! {
                () = &mut published => {}
                _ = round => {}
                () = tokio::time::sleep_until(wake) => {
                    if wake == deadline {
                        break;
                    }
                }
            }
        }
        ids.iter().copied().filter(|&i| i != primary && !state.answered(i)).collect()
    }

    /// How many connections hold this monitor.
    pub(crate) fn holders(&self) -> usize {
        Arc::strong_count(&self.shared)
    }
}

impl std::ops::Deref for MonitorHandle {
    type Target = Monitor;

    fn deref(&self) -> &Monitor {
        &self.shared.monitor
    }
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        let mut list = self.shared.listeners.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|(id, _)| *id != self.id);
    }
}

impl std::fmt::Debug for MonitorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorHandle")
            .field("monitor", &self.shared.monitor)
            .field("holders", &self.holders())
            .finish()
    }
}
