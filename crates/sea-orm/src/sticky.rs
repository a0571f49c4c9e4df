//! Read-your-writes by time window, per tokio task: after a task writes, its reads go to the
//! primary until the window has passed. The consistency issue replaces the window with exact
//! replication positions; until then this is the minimum that keeps SeaORM's MySQL
//! insert-then-reread and a handler's write-then-read correct.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::task::Id;

/// Sweep expired entries once the map holds this many.
const SWEEP_AT: usize = 1024;

#[derive(Debug)]
pub(crate) struct Sticky {
    window: Duration,
    /// Task → when its window ends.
    tasks: DashMap<Id, Instant>,
    /// For code outside any tokio task: one window for all of it, as nanoseconds after `epoch`.
    untasked_until: AtomicU64,
    epoch: Instant,
}

impl Sticky {
    pub(crate) fn new(window: Duration) -> Sticky {
        Sticky {
            window,
            tasks: DashMap::new(),
            untasked_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The current task wrote (or is about to): its reads stick to the primary for the window.
    pub(crate) fn mark(&self) {
        if self.window.is_zero() {
            return;
        }
        let now = Instant::now();
        let until = now + self.window;
        match tokio::task::try_id() {
            Some(id) => {
                if self.tasks.len() >= SWEEP_AT {
                    self.tasks.retain(|_, end| *end > now);
                }
                self.tasks.insert(id, until);
            }
            None => {
                let nanos = u64::try_from((until - self.epoch).as_nanos()).unwrap_or(u64::MAX);
                self.untasked_until.fetch_max(nanos, Ordering::Relaxed);
            }
        }
    }

    /// Whether the current task's reads must go to the primary.
    pub(crate) fn is_sticky(&self) -> bool {
        if self.window.is_zero() {
            return false;
        }
        match tokio::task::try_id() {
            Some(id) => {
                if self.tasks.is_empty() {
                    return false;
                }
                self.tasks.get(&id).is_some_and(|end| *end > Instant::now())
            }
            None => {
                let until = self.untasked_until.load(Ordering::Relaxed);
                until != 0 && Duration::from_nanos(until) > self.epoch.elapsed()
            }
        }
    }

    /// How many tasks currently have a window (expired ones may linger until the next sweep).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.tasks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_sticks_only_its_own_task() {
        let sticky = std::sync::Arc::new(Sticky::new(Duration::from_secs(60)));
        assert!(!sticky.is_sticky());
        sticky.mark();
        assert!(sticky.is_sticky(), "the writing task reads its writes");
        let other = std::sync::Arc::clone(&sticky);
        let seen = tokio::spawn(async move { other.is_sticky() }).await.unwrap();
        assert!(!seen, "another task is not pinned by this task's write");
    }

    #[tokio::test]
    async fn the_window_expires() {
        let sticky = Sticky::new(Duration::from_millis(20));
        sticky.mark();
        assert!(sticky.is_sticky());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!sticky.is_sticky());
    }

    #[tokio::test]
    async fn a_zero_window_never_sticks() {
        let sticky = Sticky::new(Duration::ZERO);
        sticky.mark();
        assert!(!sticky.is_sticky());
        assert_eq!(sticky.tracked(), 0);
    }

    #[test]
    fn code_outside_tasks_shares_one_window() {
        let sticky = Sticky::new(Duration::from_secs(60));
        assert!(!sticky.is_sticky());
        sticky.mark();
        assert!(sticky.is_sticky());
    }

    #[tokio::test]
    async fn finished_tasks_are_swept() {
        let sticky = std::sync::Arc::new(Sticky::new(Duration::from_millis(1)));
        for _ in 0..SWEEP_AT + 10 {
            let s = std::sync::Arc::clone(&sticky);
            tokio::spawn(async move { s.mark() }).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        sticky.mark();
        assert!(
            sticky.tracked() < SWEEP_AT,
            "expired windows are dropped, {} left",
            sticky.tracked()
        );
    }
}
