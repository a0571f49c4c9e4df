//! [`Coalesce`]: one position read on the primary covers every write that committed before it
//! was sent.
//!
//! After each write the adapter reads the primary's position (its token). Under concurrency
//! most of those reads are redundant: a read *sent* after several writes committed is at or
//! past all of them. A read in flight is never shared with a write that committed after it was
//! sent (it may not cover it), so a write whose position is wanted while one is in flight sends
//! its own at once: one round trip, not the rest of that read and then another. Up to
//! [`IN_FLIGHT`] reads are in flight; a write that finds that many waits for the first to land
//! and sends the next, which every write waiting meanwhile takes — a few reads per round trip
//! whatever the number of writers.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use rwsplit_core::{CausalToken, NodeId};
use sea_orm::DbErr;

/// How many position reads may be in flight at once: two, so that a write arriving while one
/// is in flight waits one round trip, and a burst of writes costs the primary two reads per
/// round trip, not one per write.
const IN_FLIGHT: usize = 2;

/// Position reads of the primary shared among the writes that want them.
#[derive(Debug, Default)]
pub(crate) struct Coalesce {
    state: Mutex<State>,
    landed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct State {
    /// The reads in flight: their node and generation.
    running: [Option<(NodeId, u64)>; IN_FLIGHT],
    /// Reads sent so far (the generation of the latest).
    sent: u64,
    /// The latest-sent read that ended: its generation, node, and position (`None`: it
    /// failed). Reads may land out of order; an earlier one landing later does not replace it.
    last: Option<(u64, NodeId, Option<CausalToken>)>,
    /// Every position read so far, merged (per history, the furthest).
    newest: Option<CausalToken>,
}

/// What a caller does next ([`Coalesce::step`]).
enum Step {
    /// Send a read, as generation `.0`.
    Lead(u64),
    /// Take this position, read after the caller's write committed.
    Take(CausalToken),
    /// Read alone (another node's read is in flight, or the shared one failed).
    Alone,
    /// Wait for a read in flight to end, and look again.
    Wait,
}

impl Coalesce {
    /// A position of `node` read after this call began (the caller's write has committed by
    /// then): a read in flight that was sent after that, or one `read` sends now, shared
    /// with every caller waiting meanwhile. `read` runs at most once.
    pub(crate) async fn position<F, Fut>(&self, node: NodeId, read: F) -> Result<CausalToken, DbErr>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CausalToken, DbErr>>,
    {
        let mut need = None;
        loop {
            // Made before the look: a read ending in between still wakes this caller.
            let landed = self.landed.notified();
            let mut landed = std::pin::pin!(landed);
            landed.as_mut().enable();
            match self.step(node, &mut need) {
                Step::Lead(generation) => return self.lead(node, generation, read).await,
                Step::Take(token) => return Ok(token),
                Step::Alone => return read().await,
                Step::Wait => landed.await,
            }
        }
    }

    /// The next step of a caller for `node` that needs a read of generation `need` or later
    /// (`None` on its first look: the reads sent so far may have left before its write
    /// committed, so the next one sent).
    fn step(&self, node: NodeId, need: &mut Option<u64>) -> Step {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.running.iter().flatten().any(|(n, _)| *n != node) {
            return Step::Alone;
        }
        let wanted = *need.get_or_insert(st.sent + 1);
        if let Some((g, n, outcome)) = &st.last
            && *g >= wanted
        {
            return match outcome {
                Some(t) if *n == node => Step::Take(t.clone()),
                _ => Step::Alone,
            };
        }
        if st.running.iter().flatten().any(|(_, g)| *g >= wanted) {
            return Step::Wait;
        }
        let sent = st.sent + 1;
        match st.running.iter_mut().find(|r| r.is_none()) {
            Some(free) => {
                *free = Some((node, sent));
                st.sent = sent;
                Step::Lead(sent)
            }
            None => Step::Wait,
        }
    }

    /// Sends read `generation` and shares its outcome. Its end is published even if this
    /// future is dropped midway (the waiters then read alone).
    async fn lead<F, Fut>(
        &self,
        node: NodeId,
        generation: u64,
        read: F,
    ) -> Result<CausalToken, DbErr>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CausalToken, DbErr>>,
    {
        let mut ended = Ended { coalesce: self, node, generation, token: None };
        let result = read().await;
        ended.token = result.as_ref().ok().cloned();
        result
    }

    /// The furthest position read so far (a newer history replaces an older one): the primary
    /// was at or past it then.
    pub(crate) fn newest(&self) -> Option<CausalToken> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).newest.clone()
    }

    #[cfg(test)]
    fn sent(&self) -> u64 {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).sent
    }
}

/// Publishes a read's end when dropped: its outcome, or a failure if it never finished.
struct Ended<'a> {
    coalesce: &'a Coalesce,
    node: NodeId,
    generation: u64,
    token: Option<CausalToken>,
}

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        {
            let mut st = self.coalesce.state.lock().unwrap_or_else(PoisonError::into_inner);
            for r in &mut st.running {
                if r.is_some_and(|(_, g)| g == self.generation) {
                    *r = None;
                }
            }
            if let Some(t) = &self.token {
                match &mut st.newest {
                    Some(n) => n.merge(t),
                    None => st.newest = Some(t.clone()),
                }
            }
            if st.last.as_ref().is_none_or(|(g, _, _)| *g < self.generation) {
                st.last = Some((self.generation, self.node, self.token.take()));
            }
        }
        self.coalesce.landed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    const P: NodeId = NodeId::new(0);

    /// A read that takes 1 ms and answers the number of reads sent so far as its LSN.
    fn reader(
        count: Arc<AtomicU64>,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<CausalToken, DbErr>> + Send>>
    {
        move || {
            Box::pin(async move {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(format!("pg:1:7:1:0-{n:X}").parse().unwrap())
            })
        }
    }

    /// Writers that all want a position at once share the reads: the first two send theirs,
    /// and every other one takes the read sent when the first lands, whatever their number.
    #[rstest::rstest]
    #[case(1, 1)]
    #[case(2, 2)]
    #[case(16, 3)]
    #[case(64, 3)]
    #[tokio::test(start_paused = true)]
    async fn concurrent_writers_share_position_reads(#[case] writers: u64, #[case] most: u64) {
        let coalesce = Arc::new(Coalesce::default());
        let count = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let (c, n) = (Arc::clone(&coalesce), Arc::clone(&count));
            tasks.push(tokio::spawn(async move { c.position(P, reader(n)).await.unwrap() }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let reads = count.load(Ordering::SeqCst);
        assert!((1..=most).contains(&reads), "{writers} writers, {reads} reads");
        assert_eq!(coalesce.sent(), reads);
    }

    /// A write that wants its position while a read is in flight (sent before it committed)
    /// sends its own at once: it waits one read's time, not the rest of that read and then one.
    #[tokio::test(start_paused = true)]
    async fn a_write_arriving_while_a_read_is_in_flight_waits_one_read() {
        let coalesce = Arc::new(Coalesce::default());
        let count = Arc::new(AtomicU64::new(0));
        let first = {
            let (c, n) = (Arc::clone(&coalesce), Arc::clone(&count));
            tokio::spawn(async move { c.position(P, reader(n)).await.unwrap() })
        };
        tokio::time::sleep(Duration::from_micros(500)).await;
        let asked = tokio::time::Instant::now();
        let later = coalesce.position(P, reader(Arc::clone(&count))).await.unwrap();
        assert_eq!(asked.elapsed(), Duration::from_millis(1), "one read's time");
        assert_eq!(later.to_string(), "pg:1:7:1:0-2", "its own read, sent after it asked");
        assert_eq!(first.await.unwrap().to_string(), "pg:1:7:1:0-1");
    }

    /// A write that finds [`IN_FLIGHT`] reads in flight takes the next read sent, when the
    /// first of them lands, and the reads landing out of order do not hand it an earlier one.
    #[tokio::test(start_paused = true)]
    async fn a_write_finding_every_slot_taken_takes_the_next_read() {
        let coalesce = Arc::new(Coalesce::default());
        let count = Arc::new(AtomicU64::new(0));
        let mut early = Vec::new();
        for _ in 0..IN_FLIGHT {
            let (c, n) = (Arc::clone(&coalesce), Arc::clone(&count));
            early.push(tokio::spawn(async move { c.position(P, reader(n)).await.unwrap() }));
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        let later = coalesce.position(P, reader(Arc::clone(&count))).await.unwrap();
        assert_eq!(later.to_string(), format!("pg:1:7:1:0-{:X}", IN_FLIGHT + 1));
        for t in early {
            t.await.unwrap();
        }
        assert_eq!(coalesce.sent(), IN_FLIGHT as u64 + 1);
    }

    /// A read already in flight when a write wants its position was sent before that write may
    /// have committed: the write never takes it.
    #[tokio::test(start_paused = true)]
    async fn a_read_in_flight_is_not_shared_with_a_later_write() {
        let coalesce = Arc::new(Coalesce::default());
        let count = Arc::new(AtomicU64::new(0));
        let first = {
            let (c, n) = (Arc::clone(&coalesce), Arc::clone(&count));
            tokio::spawn(async move { c.position(P, reader(n)).await.unwrap() })
        };
        tokio::task::yield_now().await;
        let later = coalesce.position(P, reader(Arc::clone(&count))).await.unwrap();
        let first = first.await.unwrap();
        assert_eq!(first.to_string(), "pg:1:7:1:0-1");
        assert_eq!(later.to_string(), "pg:1:7:1:0-2", "the next read, sent after it asked");
    }

    /// A leader dropped midway leaves no one waiting for ever: the waiters read alone.
    #[tokio::test(start_paused = true)]
    async fn a_cancelled_read_releases_its_waiters() {
        let coalesce = Arc::new(Coalesce::default());
        let count = Arc::new(AtomicU64::new(0));
        let leader = {
            let c = Arc::clone(&coalesce);
            tokio::spawn(async move {
                c.position(P, || async {
                    std::future::pending::<()>().await;
                    unreachable!()
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        let waiter = {
            let (c, n) = (Arc::clone(&coalesce), Arc::clone(&count));
            tokio::spawn(async move { c.position(P, reader(n)).await })
        };
        tokio::task::yield_now().await;
        leader.abort();
        let got = tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
        assert!(got.is_ok());
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
