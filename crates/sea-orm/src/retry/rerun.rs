//! Once more, elsewhere: where a read whose connection to the primary broke runs again once
//! the monitor has a verdict ([`after_lost`]).

use std::time::{Duration, Instant};

use rwsplit_core::{Access, NodeId};

use crate::cluster::{Plan, Routing, Why};
use crate::consistency::Samples;
use crate::send::deadline;
use crate::send::sending::Standing;
use crate::send::watch::Standings;

/// A read on the primary `old` lost its connection before the monitor knew of anything
/// wrong there: the server closed or reset it (a switchover's fast shutdown ends every
/// backend), or refused a new one. The read is safe to run again, and is worth running
/// again only once the monitor has a verdict: waits for one, and returns where the read
/// runs once more — on the new primary, once the monitor names one; on `old`, once it has
/// answered the monitor since as the primary (the connection broke, not the server). `None`
/// (the caller gets the read's error) when neither happened within `wait`, the time the
/// monitor takes to mark a primary down at three failed probes (three intervals and probe
/// timeouts; 4.5 s at the defaults), or the caller's deadline if sooner. A primary marked
/// down meanwhile does not end it: a switchover's old primary is marked down before the new
/// one is seen. Waits on the monitor's snapshots, never by polling.
pub(super) async fn after_lost(
    routing: &Routing,
    wait: Duration,
    old: NodeId,
    access: Access,
) -> Option<Plan> {
    let lost = Instant::now();
    let until = tokio::time::Instant::from_std(deadline::saturating_after(lost, wait));
    let until = deadline::or_deadline(until);
    // One sample of `old`'s written position read after the loss: an answer says the
    // server is there and still the primary.
    routing.want_sample(old, lost, until.into_std());
    loop {
        // Registered before the look: a snapshot published in between still wakes it.
        let published = routing.published();
        let mut published = std::pin::pin!(published);
        published.as_mut().enable();
        match routing.plan_on_primary(access, Why::MovedToNewPrimary) {
            Ok(retry) if retry.first() != old => return Some(retry),
            Ok(retry)
                if routing.sampled_since(old, lost)
                    && routing.standing(old) == Standing::Primary =>
            {
                return Some(retry.with_reason(Why::RerunOnPrimary));
            }
            _ => {}
        }
        // Marked down meanwhile, with no other primary named yet: a switchover marks the
        // old primary down before the new one is seen, so the wait goes on to its end.
        tokio::time::timeout_at(until, published).await.ok()?;
    }
}
