//! [`watch`]: polls a [`TopologySource`] and publishes each change of its member set.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch as channel;
use tokio::time::MissedTickBehavior;

use super::{Member, SourceError, TopologySource};

/// How one member set differs from the one before: members are paired by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberDiff {
    /// Members whose name was not in the old set, in the new set's order.
    pub added: Vec<Member>,
    /// Members whose name is not in the new set, in the old set's order.
    pub removed: Vec<Member>,
    /// Members in both sets whose fields differ (address, role, state, lag, timeline or
    /// tags): `(before, after)`, in the new set's order.
    pub changed: Vec<(Member, Member)>,
}

impl MemberDiff {
    /// Whether nothing was added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The difference between `old` and `new`, pairing members by name (a name appearing twice
/// counts once, its first occurrence).
///
/// ```
/// use rwsplit_monitor::{Member, MemberRole, diff};
/// let a = Member::new("a", "10.0.0.1", 5432, MemberRole::Leader);
/// let b = Member::new("b", "10.0.0.2", 5432, MemberRole::Replica);
/// let d = diff(&[a.clone(), b.clone()], &[a.clone().with_lag_bytes(Some(8))]);
/// assert_eq!(d.removed, vec![b]);
/// assert_eq!(d.changed.len(), 1);
/// ```
pub fn diff(old: &[Member], new: &[Member]) -> MemberDiff {
    let find = |set: &'_ [Member], name: &str| set.iter().position(|m| m.name == name);
    let mut d = MemberDiff::default();
    for (i, m) in new.iter().enumerate() {
        if find(new, &m.name) != Some(i) {
            continue;
        }
        match find(old, &m.name) {
            None => d.added.push(m.clone()),
            Some(j) if old[j] != *m => d.changed.push((old[j].clone(), m.clone())),
            Some(_) => {}
        }
    }
    for (i, m) in old.iter().enumerate() {
        if find(old, &m.name) == Some(i) && find(new, &m.name).is_none() {
            d.removed.push(m.clone());
        }
    }
    d
}

/// What [`watch`] publishes: the member set after a poll, what changed, and how the source
/// is doing.
#[derive(Debug, Clone)]
pub struct MemberSet {
    version: u64,
    members: Arc<[Member]>,
    changes: Arc<MemberDiff>,
    error: Option<Arc<SourceError>>,
    failures: u32,
}

impl MemberSet {
    /// 0 before the first publication, then one more on every publication.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The last good member set (sorted by name, names unique); empty only while no poll has
    /// succeeded yet.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// What changed from the previous publication's set to this one (empty when this
    /// publication only reports an error or a recovery).
    pub fn changes(&self) -> &MemberDiff {
        &self.changes
    }

    /// The latest poll's error, while polls fail; `None` once one succeeds.
    pub fn error(&self) -> Option<&SourceError> {
        self.error.as_deref()
    }

    /// How many polls in a row have failed (0 after a success).
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// A running [`watch`] loop. Dropping it stops the loop.
#[derive(Debug)]
pub struct SourceWatch {
    rx: channel::Receiver<MemberSet>,
    task: tokio::task::JoinHandle<()>,
}

impl SourceWatch {
    /// A receiver of every publication from now on (`changed().await`, `borrow()`).
    pub fn subscribe(&self) -> channel::Receiver<MemberSet> {
        self.rx.clone()
    }

    /// The latest publication.
    pub fn current(&self) -> MemberSet {
        self.rx.borrow().clone()
    }
}

impl Drop for SourceWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `source` every `interval` (the first poll at once; a slow poll delays the next
/// rather than bunching them) on a spawned task, and publishes on a `tokio::sync::watch`
/// channel. Needs a tokio runtime; dropping the returned [`SourceWatch`] stops the task.
///
/// The contract a consumer relies on:
///
/// - **What is published.** A [`MemberSet`]: the full set (sorted by name, names unique),
///   the [`MemberDiff`] from the previously *published* set, a version (+1 per
///   publication), and the error state. The initial value is version 0, no members.
/// - **When.** After a successful poll whose set differs from the last good set (any field
///   of any member: lag changes count, so a lagging replica is seen at the next poll); after
///   every failed poll; and after the first success that follows failures (a recovery, with
///   an empty diff if nothing moved). A successful poll that changes nothing publishes
///   nothing.
/// - **Errors keep the last good set.** A failed poll, or one that reports no members at all
///   ([`SourceError::Empty`]), never changes `members()`: the publication carries the same
///   set, an empty diff, the error and the count of failures in a row. One bad poll never
///   drops every node; removing a node takes a good poll without it.
/// - **Ordering and gaps.** Publications are made in poll order by one task. A `watch`
///   receiver sees only the latest value: a consumer that was slow may skip versions, and
///   then the skipped diffs are lost. Such a consumer (its last seen version + 1 <
///   `version()`) must reconcile against `members()` itself, e.g. with
///   [`diff`]`(&what_it_has, set.members())`; a consumer that applies `changes()` only when
///   the version is exactly one more never misses a change.
///
/// ```
/// use std::time::Duration;
/// use rwsplit_monitor::{Member, MemberRole, StaticSource, watch};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let source = StaticSource::new(vec![Member::new("a", "127.0.0.1", 5432, MemberRole::Leader)]);
/// let w = watch(source, Duration::from_secs(1));
/// let mut rx = w.subscribe();
/// rx.changed().await.unwrap();
/// let set = rx.borrow().clone();
/// assert_eq!((set.version(), set.changes().added.len()), (1, 1));
/// # });
/// ```
pub fn watch<S: TopologySource>(source: S, interval: Duration) -> SourceWatch {
    let initial = MemberSet {
        version: 0,
        members: Arc::from(Vec::new()),
        changes: Arc::new(MemberDiff::default()),
        error: None,
        failures: 0,
    };
    let (tx, rx) = channel::channel(initial);
    let task = tokio::spawn(run(source, interval, tx));
    SourceWatch { rx, task }
}

async fn run<S: TopologySource>(source: S, interval: Duration, tx: channel::Sender<MemberSet>) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last: Arc<[Member]> = Arc::from(Vec::new());
    let mut version = 0u64;
    let mut failures = 0u32;
    loop {
        ticker.tick().await;
        let polled = source.members().await.and_then(|mut members| {
            members.sort_by(|a, b| a.name.cmp(&b.name));
            members.dedup_by(|a, b| a.name == b.name);
            if members.is_empty() {
                Err(SourceError::Empty { source_name: "the source".into() })
            } else {
                Ok(members)
            }
        });
        let publication = match polled {
            Ok(members) => {
                let changes = diff(&last, &members);
                let recovered = failures > 0;
                failures = 0;
                if changes.is_empty() && !recovered {
                    continue;
                }
                if !changes.is_empty() {
                    last = Arc::from(members);
                }
                (Arc::new(changes), None)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, failures, "topology source poll failed; keeping the last good set");
                (Arc::new(MemberDiff::default()), Some(Arc::new(e)))
            }
        };
        version += 1;
        tx.send_replace(MemberSet {
            version,
            members: Arc::clone(&last),
            changes: publication.0,
            error: publication.1,
            failures,
        });
    }
}
