//! Hedged reads, the race itself, once the second attempt starts (the watchdog found the
//! first's node silent past its hedge delay: `Begun::until_overdue`): who wins ([`race`]:
//! the first answer; a failure leaves the other attempt to finish). The loser is dropped
//! where it lives, which closes its connection (a read straight on the sqlx pool, see
//! `sending`); nothing is sent to cancel its statement. The ration and the counting are
//! [`Hedging`](super::hedging::Hedging)'s; whether a read may be hedged, the attempt loop's.

use std::future::Future;
use std::pin::Pin;

/// How a race of two attempts ended.
pub(crate) enum Raced<T, E> {
    /// The first attempt's outcome (the second failed, or lost).
    First(Result<T, E>),
    /// The second answered first, or after the first failed.
    Second(T),
}

/// Runs `first` and `second` side by side; the first answer wins, and either failing leaves
/// the other to finish. Also returns whether the loser was still running when the race
/// ended: `second` is dropped here (its connection closed), `first` by the caller.
pub(crate) async fn race<T, E, E2, F, G>(first: Pin<&mut F>, second: G) -> (Raced<T, E>, bool)
where
    F: Future<Output = Result<T, E>>,
    G: Future<Output = Result<T, E2>>,
{
    let mut first = first;
    let mut second = std::pin::pin!(second);
    tokio::select! {
        r = &mut first => match r {
            Ok(out) => (Raced::First(Ok(out)), true),
            Err(e) => match second.await {
                Ok(out) => (Raced::Second(out), false),
                Err(_) => (Raced::First(Err(e)), false),
            },
        },
        r = &mut second => match r {
            Ok(out) => (Raced::Second(out), true),
            Err(_) => (Raced::First(first.await), false),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{Raced, race};

    fn ok(v: u8) -> std::future::Ready<Result<u8, ()>> {
        std::future::ready(Ok(v))
    }
    fn err() -> std::future::Ready<Result<u8, ()>> {
        std::future::ready(Err(()))
    }

    #[tokio::test]
    async fn the_first_answer_wins_and_a_failure_leaves_the_other_to_finish() {
        let first = std::future::pending::<Result<u8, ()>>();
        let (r, dropped) = race(std::pin::pin!(first), ok(2)).await;
        assert!(matches!(r, Raced::Second(2)) && dropped);
        // Both ready: either may be polled first (as in `select!`); the answer is the same.
        let (r, _) = race(std::pin::pin!(err()), ok(2)).await;
        assert!(matches!(r, Raced::Second(2)));
        let (r, _) = race(std::pin::pin!(ok(1)), err()).await;
        assert!(matches!(r, Raced::First(Ok(1))));
        let (r, dropped) = race(std::pin::pin!(err()), err()).await;
        assert!(matches!(r, Raced::First(Err(()))) && !dropped);
    }
}
