//! Time limits on the request path: a per-statement deadline for replica reads, the pools'
//! acquire timeout, and the caller's own deadline
//! ([`RoutedConnection::deadline`](crate::RoutedConnection::deadline)), which bounds read
//! retries.
//!
//! A SIGSTOPped (hung) server keeps its TCP port open: connecting succeeds and the statement
//! then waits forever. A read waiting on a replica therefore also watches the monitor: once the
//! monitor marks the replica down (its probes time out; with the defaults within about 4.5 s),
//! the read gives up there and is retried on the next candidate, like a refused connection.
//! That needs no statement deadline, so a long report on a healthy replica is never cut short.
//! A fixed replica deadline
//! ([`replica_read_timeout`](crate::RoutedConnectionBuilder::replica_read_timeout)) bounds reads
//! tighter for applications that want it: on expiry the read is given up there and moves on.
//! Nothing is counted against the replica for it — a slow answer may be load, and the monitor,
//! probing on connections of its own, is what judges whether the node is hung.

use std::future::Future;
use std::time::{Duration, Instant};

use sea_orm::DbErr;

use crate::routing_error::{DownReason, RoutingError, TimeLimit, UnknownReason};

/// The request-path time limits, and `connect()`'s wait for the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// The most one read may wait for a replica (connection acquisition included) before it is
    /// given up there and retried on the next candidate.
    pub(crate) replica_read: Option<Duration>,
    /// The pools' acquire timeouts, unless a node's `ConnectOptions` set their own.
    pub(crate) acquire: Acquire,
    /// How long `connect()` keeps trying to reach the primary ([`DEFAULT_CONNECT_WAIT`]).
    pub(crate) connect_wait: Duration,
}

/// How long `connect()` keeps trying to reach a primary that refuses connections, has a name
/// that does not resolve or does not answer, by default: long enough for a server restarting,
/// short enough that a wrong address is an error a person sees while still looking. Apps that
/// start before their database set it longer.
pub(crate) const DEFAULT_CONNECT_WAIT: Duration = Duration::from_secs(5);

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            replica_read: None,
            acquire: Acquire::default(),
            connect_wait: DEFAULT_CONNECT_WAIT,
        }
    }
}

/// How long a statement waits for a pooled connection: on a pool that writes (the primary's;
/// a replica's lazy writer, used once it is promoted) and on a replica's read-only pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acquire {
    pub(crate) write: Duration,
    pub(crate) read: Duration,
}

impl Default for Acquire {
    fn default() -> Self {
        Acquire { write: DEFAULT_WRITE_ACQUIRE_TIMEOUT, read: DEFAULT_READ_ACQUIRE_TIMEOUT }
    }
}

/// The default acquire timeout of a pool that writes: sqlx's, which plain SeaORM keeps (30 s).
/// A statement there has nowhere else to go (a write, or a read's last candidate), so it
/// waits as long as it would without rwsplit; a pool the application saturates fails no
/// sooner than it did before.
pub(crate) const DEFAULT_WRITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The default acquire timeout of a replica's read-only pool: a read that gets no connection
/// there in 5 s moves on to its next candidate (the primary last).
pub(crate) const DEFAULT_READ_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The longest time the adapter waits for anything (30 years): longer durations, up to
/// `Duration::MAX`, mean "no limit" and are capped to this so that no `Instant` arithmetic and
/// no driver timeout overflows.
pub(crate) const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `d`, at most [`FOREVER`]: for durations handed to drivers and servers.
pub(crate) fn cap(d: Duration) -> Duration {
    d.min(FOREVER)
}

/// `now + d`, saturating: `Instant + Duration::MAX` overflows (and panics).
pub(crate) fn saturating_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).or_else(|| now.checked_add(FOREVER)).unwrap_or(now)
}

/// [`saturating_after`] from now.
pub(crate) fn after(d: Duration) -> Instant {
    saturating_after(Instant::now(), d)
}

/// The deadline the calling task set with
/// [`RoutedConnection::deadline`](crate::RoutedConnection::deadline), if any.
pub(crate) fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// How long the monitor takes to reach a verdict on a node: it marks one down at three
/// failed probes, so three probe intervals and probe timeouts (4.5 s at the defaults).
pub(crate) fn verdict(m: &rwsplit_monitor::MonitorConfig) -> Duration {
    m.probe_interval_value().saturating_add(m.probe_timeout_value()).saturating_mul(3)
}

/// `until`, or the caller's deadline ([`current`]) if sooner.
pub(crate) fn or_deadline(until: tokio::time::Instant) -> tokio::time::Instant {
    match current() {
        Some(d) => until.min(tokio::time::Instant::from_std(d)),
        None => until,
    }
}

/// How long one attempt of a read may take, and which limit that is: on a replica the replica
/// read timeout, everywhere the time left before the caller's deadline; the shorter of the
/// two (the deadline on a tie). `None`: unbounded.
pub(crate) fn attempt_limit(
    on_replica: bool,
    timeouts: &Timeouts,
    deadline: Option<Instant>,
    now: Instant,
) -> Option<(Duration, TimeLimit)> {
    let own = if on_replica { timeouts.replica_read } else { None };
    let own = own.map(|d| (d, TimeLimit::ReplicaReadTimeout));
    let left = deadline.map(|d| (d.saturating_duration_since(now), TimeLimit::Deadline));
    match (own, left) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The error a read that ran out of time on `node` fails with: `after`, the `limit` that
/// passed. The read moves on; the node is not marked (the monitor judges it).
pub(crate) fn timed_out(node: &str, (after, limit): (Duration, TimeLimit)) -> DbErr {
    RoutingError::TimedOut { node: node.to_owned(), after, limit, attempts: 1 }.into()
}

/// The error a read fails with when the monitor marked its node down while it waited.
pub(crate) fn marked_down(node: &str) -> DbErr {
    down(node, DownReason::MarkedDown)
}

/// The error of a read not sent to `node` because the monitor had it marked down already.
pub(crate) fn already_down(node: &str) -> DbErr {
    down(node, DownReason::AlreadyDown)
}

fn down(node: &str, reason: DownReason) -> DbErr {
    RoutingError::NodeDown { node: node.to_owned(), attempts: 1, reason, source: None }.into()
}

/// The error a write fails with when the monitor marked the primary down after it was sent
/// (see [`sending`](crate::send::sending)): it may or may not have committed.
pub(crate) fn write_outcome_unknown(node: &str) -> DbErr {
    RoutingError::WriteOutcomeUnknown {
        node: node.to_owned(),
        reason: UnknownReason::MarkedDown,
        source: None,
    }
    .into()
}

/// Runs `fut` with the calling task's deadline `within` from now, or the enclosing one if that
/// is sooner ([`RoutedConnection::deadline`](crate::RoutedConnection::deadline)).
pub(crate) async fn within<F: Future>(within: Duration, fut: F) -> F::Output {
    // `Duration::MAX` means no deadline to speak of, not an overflow panic.
    let at = after(within);
    // A nested, later deadline does not extend an outer one.
    let at = current().map_or(at, |outer| outer.min(at));
    DEADLINE.scope(at, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_attempt_is_bounded_by_the_shorter_limit() {
        let t = Timeouts { replica_read: Some(Duration::from_secs(5)), ..Timeouts::default() };
        let now = Instant::now();
        let soon = Some(now + Duration::from_secs(1));
        let later = Some(now + Duration::from_secs(9));
        let (secs, own, left) =
            (Duration::from_secs, TimeLimit::ReplicaReadTimeout, TimeLimit::Deadline);
        assert_eq!(attempt_limit(true, &t, None, now), Some((secs(5), own)));
        assert_eq!(attempt_limit(true, &t, soon, now), Some((secs(1), left)));
        assert_eq!(attempt_limit(true, &t, later, now), Some((secs(5), own)));
        assert_eq!(attempt_limit(false, &t, None, now), None);
        assert_eq!(attempt_limit(false, &t, soon, now), Some((secs(1), left)));
        let off = Timeouts { replica_read: None, ..t };
        assert_eq!(attempt_limit(true, &off, None, now), None);
        // A deadline already past leaves no time at all.
        assert_eq!(
            attempt_limit(true, &t, Some(now), now + Duration::from_millis(1)),
            Some((Duration::ZERO, left))
        );
    }

    /// The error says which limit passed, and its value.
    #[rstest::rstest]
    #[case::replica(
        TimeLimit::ReplicaReadTimeout,
        "within 2s (replica_read_timeout; 1 node(s) tried)"
    )]
    #[case::deadline(
        TimeLimit::Deadline,
        "within 2s (what was left of the caller's deadline; 1 node(s) tried)"
    )]
    fn a_timeout_names_its_limit(#[case] limit: TimeLimit, #[case] says: &str) {
        let err = timed_out("db2:5432/app", (Duration::from_secs(2), limit));
        let e = crate::routing_error::routing_error(&err).expect("typed");
        assert!(matches!(e, RoutingError::TimedOut { limit: l, .. } if *l == limit), "{e:?}");
        assert_eq!(e.to_string(), format!("db2:5432/app did not answer {says}"));
    }

    #[tokio::test]
    async fn nested_deadlines_never_extend_the_outer_one() {
        let outer = within(Duration::from_millis(50), async {
            let outer = current().unwrap();
            let inner = within(Duration::from_secs(60), async { current().unwrap() }).await;
            (outer, inner)
        })
        .await;
        assert_eq!(outer.0, outer.1);
        assert!(current().is_none());
    }
}
