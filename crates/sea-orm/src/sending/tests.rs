//! [`in_steps`] on paused time: what gives a write up, and whether it was sent by then.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rstest::rstest;
use sea_orm::{ConnAcquireErr, DbErr};
use tokio::time::Instant;

use super::*;

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

#[test]
fn the_errors_say_the_write_was_not_sent_and_why() {
    let replaced = deposed("db1:5432/app", Standing::NotPrimary, true).to_string();
    assert!(replaced.contains("db1:5432/app") && replaced.contains("stopped being the primary"));
    assert!(replaced.contains("not sent"), "{replaced}");
    let down = deposed("db1:5432/app", Standing::Down, true).to_string();
    assert!(down.contains("marked down") && down.contains("not sent"), "{down}");
    let read = deposed("db1:5432/app", Standing::NotPrimary, false).to_string();
    assert!(read.contains("read") && !read.contains("write"), "{read}");
}
