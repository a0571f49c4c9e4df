//! Retry, one policy in one folder: which failed attempts are tried again and where — the
//! plan's next candidate for a read, once on a new primary for a statement known not to have
//! been sent, once more after the monitor's verdict for a read that lost the primary's
//! connection; never a write that may have been sent.
//!
//! **Owns**, a file each: `verdict` (the verdict on one failed attempt, pure:
//! [`Failed`](verdict::Failed) → [`Verdict`](verdict::Verdict), and which failure classes a
//! read may move on after); `retrying` (a connection's retry state, the part the attempt step
//! holds: the budget, the verdict wait, the count of retries, and the verdict as the connection
//! runs it, [`Retrying`](retrying::Retrying), with how a plan's attempts end,
//! [`Stop`](retrying::Stop), and which candidate an attempt goes to next within the budget,
//! [`Candidates`](retrying::Candidates)); `rerun` (where a read that lost the primary's connection runs
//! once the monitor has a verdict).
//!
//! **Offers**: [`Retrying`](retrying::Retrying), [`Candidates`](retrying::Candidates) and
//! [`Stop`](retrying::Stop) for the attempt step (`connection/attempt/`),
//! [`Failed`](verdict::Failed) for it to fill in.
//!
//! **May call**: the live view of the cluster it moves a statement on (`routing/`'s
//! `Routing`), `nodes/` (the registry, a node's name, labels and pace), `observe/` (the
//! counters), each handed in per call; `send/` (how an attempt failed, the error named, time
//! limits), `rwsplit-core`; never
//! `connection/`, which uses it. How an attempt failed (`crate::send::failure`) is read
//! once for the recorder, the metrics and this verdict alike, and stays with the sending.

mod rerun;
pub(crate) mod retrying;
pub(crate) mod verdict;
