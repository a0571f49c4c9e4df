//! Which failed attempts are tried again, and where: the verdict on one attempt's failure,
//! computed once, from what the attempt loop knows of it ([`Failed`] → [`Verdict`]).
//!
//! - A write is never tried again blindly: only one known not to have been sent (its
//!   connection never taken, or given up before it was) to a node that has stopped being
//!   the primary moves, once, to the new primary.
//! - A read moves on to the plan's next candidate after a failure that makes it safe
//!   ([`Failure::retryable`]) while candidates and the caller's deadline last.
//! - A read a replica refused because it writes is the refusal policy's
//!   (`crate::send::refusal`).
//! - A read whose connection to the primary, its last resort, broke before the monitor knew
//!   of anything wrong there runs once more after the monitor's verdict.

use crate::send::failure::Failure;

/// What the attempt loop knows of one failed attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failed {
    /// How it failed.
    pub(crate) failure: Failure,
    /// Known not to have reached the server.
    pub(crate) unsent: bool,
    /// Its node is no longer the primary (looked at only for an unsent attempt).
    pub(crate) deposed: bool,
    /// It was a write.
    pub(crate) write: bool,
    /// It ran on the plan's primary.
    pub(crate) on_primary: bool,
    /// No candidate of the plan follows.
    pub(crate) last: bool,
    /// Its plan is the statement's first (a second plan never moves again).
    pub(crate) first_plan: bool,
    /// The caller's deadline has passed.
    pub(crate) out_of_time: bool,
    /// A monitor runs, so a verdict on the primary will come.
    pub(crate) monitored: bool,
    /// The pool was closed (the application closed the connection): no verdict mends it.
    pub(crate) pool_closed: bool,
}

/// Whether a read that failed as `failure` may be tried again on another node: every class
/// but the database's own error and a replica's refusal of a read that writes.
fn retryable(failure: Failure) -> bool {
    !matches!(failure, Failure::Other | Failure::ReadOnly)
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The caller gets the error, naming the node.
    Fail,
    /// The caller gets the error, saying the statement was not sent.
    FailUnsent,
    /// Not sent, to a node that is the primary no more: once more, on the new primary.
    NewPrimary,
    /// A replica refused a read because it writes: the refusal policy decides.
    Refused,
    /// The primary's connection broke under a read with no candidate left: once more where
    /// the monitor's verdict says.
    WaitForMonitor,
    /// The plan's next candidate.
    Retry,
}

/// The verdict on the failed attempt `f` (see the module docs).
pub(crate) fn verdict(f: &Failed) -> Verdict {
    if f.unsent {
        // Safe to try again, and worth it only on another primary.
        return if f.deposed && f.first_plan { Verdict::NewPrimary } else { Verdict::FailUnsent };
    }
    if f.failure == Failure::ReadOnly && !f.write {
        return Verdict::Refused;
    }
    if f.failure == Failure::Connection
        && f.on_primary
        && !f.write
        && f.last
        && f.first_plan
        && !f.out_of_time
        && f.monitored
        && !f.pool_closed
    {
        return Verdict::WaitForMonitor;
    }
    if f.write || !retryable(f.failure) || f.last || f.out_of_time {
        return Verdict::Fail;
    }
    Verdict::Retry
}

#[cfg(test)]
mod tests {
    use super::{Failed, Failure, Verdict, verdict};

    /// A read on a replica with a candidate after it, failed as `failure`.
    fn read(failure: Failure) -> Failed {
        Failed {
            failure,
            unsent: false,
            deposed: false,
            write: false,
            on_primary: false,
            last: false,
            first_plan: true,
            out_of_time: false,
            monitored: true,
            pool_closed: false,
        }
    }

    #[test]
    fn a_read_moves_on_after_a_safe_failure_while_candidates_and_time_last() {
        assert_eq!(verdict(&read(Failure::Connection)), Verdict::Retry);
        assert_eq!(verdict(&read(Failure::Backpressure)), Verdict::Retry);
        assert_eq!(verdict(&read(Failure::GivenUp)), Verdict::Retry);
        assert_eq!(verdict(&read(Failure::Other)), Verdict::Fail);
        assert_eq!(verdict(&Failed { last: true, ..read(Failure::Connection) }), Verdict::Fail);
        assert_eq!(
            verdict(&Failed { out_of_time: true, ..read(Failure::Connection) }),
            Verdict::Fail
        );
    }

    #[test]
    fn a_write_moves_only_unsent_to_a_new_primary_once() {
        let write = Failed { write: true, on_primary: true, ..read(Failure::Connection) };
        assert_eq!(verdict(&write), Verdict::Fail);
        let unsent = Failed { unsent: true, ..write };
        assert_eq!(verdict(&unsent), Verdict::FailUnsent);
        assert_eq!(verdict(&Failed { deposed: true, ..unsent }), Verdict::NewPrimary);
        let second = Failed { deposed: true, first_plan: false, ..unsent };
        assert_eq!(verdict(&second), Verdict::FailUnsent);
        let refused = Failed { failure: Failure::ReadOnly, ..write };
        assert_eq!(verdict(&refused), Verdict::Fail, "a write refused is the caller's");
    }

    #[test]
    fn a_refused_read_is_the_refusal_policys() {
        assert_eq!(verdict(&read(Failure::ReadOnly)), Verdict::Refused);
    }

    #[test]
    fn the_primarys_broken_connection_waits_for_the_verdict_only_as_the_last_resort() {
        let lost = Failed { on_primary: true, last: true, ..read(Failure::Connection) };
        assert_eq!(verdict(&lost), Verdict::WaitForMonitor);
        assert_eq!(verdict(&Failed { monitored: false, ..lost }), Verdict::Fail);
        assert_eq!(verdict(&Failed { pool_closed: true, ..lost }), Verdict::Fail);
        assert_eq!(verdict(&Failed { first_plan: false, ..lost }), Verdict::Fail);
        assert_eq!(verdict(&Failed { out_of_time: true, ..lost }), Verdict::Fail);
    }
}
