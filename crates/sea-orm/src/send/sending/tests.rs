//! [`in_steps`] on paused time: what gives a write up, and whether it was sent by then.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rstest::rstest;
use sea_orm::{ConnAcquireErr, DbErr};
use tokio::time::Instant;

use super::*;
use crate::routing_error::{DownReason, NotSentReason, RoutingError, routing_error};

const EVERY: Duration = Duration::from_millis(50);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How the write ended.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Done,
    Unsent,
    Deposed(Standing),
    Failed,
    Unknown,
}

/// One write: taking the connection takes `take` and succeeds if `taken`; the statement takes
/// `send` and succeeds if `applied`. The monitor says `to` from `change` on (the primary
/// before). Returns how it ended, whether it was sent, and when it ended.
async fn write(
    take: Duration,
    taken: bool,
    send: Duration,
    applied: bool,
    change: Duration,
    to: Standing,
) -> (Got, bool, Duration) {
    let start = Instant::now();
    let standing = move || if start.elapsed() >= change { to } else { Standing::Primary };
    let sent = Arc::new(AtomicBool::new(false));
    let taking = async move {
        tokio::time::sleep(take).await;
        if taken { Ok(()) } else { Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)) }
    };
    let was_sent = Arc::clone(&sent);
    let sending = move |()| async move {
        was_sent.store(true, Ordering::SeqCst);
        tokio::time::sleep(send).await;
        if applied { Ok(()) } else { Err(DbErr::Custom("duplicate key".into())) }
    };
    let got = match in_steps(taking, sending, standing, || tokio::time::sleep(EVERY)).await {
        Ok(()) => Got::Done,
        Err(End::Unsent(_)) => Got::Unsent,
        Err(End::Deposed(s)) => Got::Deposed(s),
        Err(End::Failed(_)) => Got::Failed,
        Err(End::Unknown) => Got::Unknown,
    };
    (got, sent.load(Ordering::SeqCst), start.elapsed())
}

const NEVER: Duration = Duration::from_secs(3600);

#[rstest]
// Waiting for a connection (a refusing port: sqlx retries up to the acquire timeout): given up
// within one check of the monitor's change, whatever the change, and never sent.
#[case::replaced_while_taking((NEVER, true), (ms(1), true), (ms(120), Standing::NotPrimary), (Got::Deposed(Standing::NotPrimary), false), ms(150))]
#[case::down_while_taking((NEVER, true), (ms(1), true), (ms(120), Standing::Down), (Got::Deposed(Standing::Down), false), ms(150))]
// A slow connection to a primary that stays one is waited for, however long.
#[case::slow_pool_on_a_primary((ms(4000), true), (ms(1), true), (NEVER, Standing::Down), (Got::Done, true), ms(4001))]
// The pool gave up (acquire timeout): not sent.
#[case::pool_timed_out((ms(500), false), (ms(1), true), (NEVER, Standing::Down), (Got::Unsent, false), ms(500))]
// The connection came, but the monitor had seen the change in between: not sent.
#[case::replaced_as_taken((ms(60), true), (ms(1), true), (ms(55), Standing::NotPrimary), (Got::Deposed(Standing::NotPrimary), false), ms(60))]
// Sent: a role change does not cut it short (its answer is coming) ...
#[case::replaced_while_sent((ms(10), true), (ms(1000), true), (ms(200), Standing::NotPrimary), (Got::Done, true), ms(1010))]
// ... being marked down does, with its outcome unknown.
#[case::down_while_sent((ms(10), true), (NEVER, true), (ms(200), Standing::Down), (Got::Unknown, true), ms(250))]
// ... and so does an old primary that stays unreachable while another node is the primary.
#[case::gone_while_sent((ms(10), true), (NEVER, true), (ms(200), Standing::Gone), (Got::Unknown, true), ms(250))]
#[case::gone_while_taking((NEVER, true), (ms(1), true), (ms(120), Standing::Gone), (Got::Deposed(Standing::Gone), false), ms(150))]
#[case::failed_once_sent((ms(10), true), (ms(10), false), (NEVER, Standing::Down), (Got::Failed, true), ms(20))]
#[tokio::test(start_paused = true)]
async fn a_write_is_given_up_unsent_only_while_it_waits_for_its_connection(
    #[case] (take, taken): (Duration, bool),
    #[case] (send, applied): (Duration, bool),
    #[case] (change, to): (Duration, Standing),
    #[case] expected: (Got, bool),
    #[case] by: Duration,
) {
    let (got, sent, took) = write(take, taken, send, applied, change, to).await;
    assert_eq!((got, sent), expected);
    assert!(took <= by, "took {took:?}, expected at most {by:?}");
}

/// A write deposed before it was sent is `WriteNotSent` with the reason; a read given up on a
/// primary that is one no more is `NodeDown`. Both are retryable and name the node.
#[rstest]
#[case::replaced_write(Standing::NotPrimary, true, Some(NotSentReason::NotPrimary), None)]
#[case::gone_write(Standing::Gone, true, Some(NotSentReason::NotPrimary), None)]
#[case::down_write(Standing::Down, true, Some(NotSentReason::PrimaryDown), None)]
#[case::replaced_read(Standing::NotPrimary, false, None, Some(DownReason::NotPrimary))]
#[case::down_read(Standing::Down, false, None, Some(DownReason::MarkedDown))]
fn the_errors_say_the_write_was_not_sent_and_why(
    #[case] standing: Standing,
    #[case] write: bool,
    #[case] not_sent: Option<NotSentReason>,
    #[case] down: Option<DownReason>,
) {
    let err = deposed("db1:5432/app", standing, write);
    assert!(matches!(err, DbErr::Conn(_)), "{err:?}");
    let e = routing_error(&err).expect("typed");
    assert_eq!(e.node(), Some("db1:5432/app"));
    assert!(e.is_retryable() && !e.outcome_unknown(), "{e:?}");
    match e {
        RoutingError::WriteNotSent { reason, source: None, .. } => {
            assert_eq!(Some(*reason), not_sent);
        }
        RoutingError::NodeDown { reason, attempts: 1, source: None, .. } => {
            assert_eq!(Some(*reason), down);
        }
        other => panic!("{other:?}"),
    }
}

/// A read goes straight to the sqlx pool only when nothing listens to SeaORM's layer: never on
/// a node whose pools report to a metric callback, never while a `trace` subscriber listens
/// (SeaORM's drivers make a `trace` span per statement).
#[test]
fn reads_skip_seaorm_only_when_nothing_listens() {
    assert!(!Direct::quiet(true), "a metric callback is set");
    let trace = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).finish();
    tracing::subscriber::with_default(trace, || {
        assert!(!Direct::quiet(false), "a trace subscriber listens");
    });
}

/// A mock pool has no sqlx pool to read on: its reads go through SeaORM.
#[test]
fn a_mock_pool_has_no_direct_form() {
    let mock = sea_orm::MockDatabase::new(sea_orm::DbBackend::Postgres).into_connection();
    assert!(direct(&mock).is_none());
}
