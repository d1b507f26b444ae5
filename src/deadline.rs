//! One deadline per invocation, shared by every backend call the invocation makes.
//!
//! Each SDK call is bounded on its own (6 s, see `aws::timeouts`), but a use case can make up to
//! four in sequence while Lambda kills the function at its timeout, and API Gateway then answers
//! with its own body and no `Retry-After`. So each request runs under one deadline, taken from the
//! invocation's deadline minus a margin: when it passes, whatever call is in flight is dropped and
//! the request is answered 503 `unavailable` with `Retry-After` while the function still lives.
//!
//! Cutting a use case short is safe because each one orders its calls so that every prefix of
//! them leaves a state that repeating the request finishes (see `FileService::delete_file` and
//! `FileService::confirm`). This type knows nothing of Lambda: the faces turn the invocation's
//! wall-clock deadline into one.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::error::AppError;

/// Kept back from the invocation's deadline for what follows a cut: building the 503 and handing
/// it to the Runtime API, which takes milliseconds, with room for a slow, throttled CPU.
pub const REQUEST_MARGIN: Duration = Duration::from_secs(1);

/// 2020-01-01T00:00:00Z: any deadline a running Lambda sends is later; any relative value an
/// emulator sends (at most Lambda's 15-minute timeout) is far earlier.
const EARLIEST_INVOCATION_DEADLINE_MS: u64 = 1_577_836_800_000;

/// When the work of one invocation must stop, or no limit at all (a caller that has no deadline,
/// such as a test driving the handler directly: each call still has its SDK bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

/// Why a request was cut short; the source of the 503's `Unavailable`.
#[derive(Debug, thiserror::Error)]
#[error("the request's deadline passed before its backend calls finished")]
pub struct DeadlinePassed;

impl Deadline {
    pub const NONE: Self = Self(None);

    pub fn at(instant: Instant) -> Self {
        Self(Some(instant))
    }

    /// The deadline of one invocation: `margin` before the Runtime API's
    /// `Lambda-Runtime-Deadline-Ms` (milliseconds since the Unix epoch), or none when that value
    /// cannot be a time Lambda sent. Lambda always sends the wall-clock instant it will stop the
    /// function; 0 comes from a context built by hand, and a time long past from an emulator
    /// sending a duration instead (`cargo lambda watch`, which `make local` runs, sends 600000,
    /// ten minutes, which read as a time is 1970: bounding by it would answer every request 503
    /// at once). Without a deadline, each backend call keeps its own SDK bound.
    pub fn of_invocation(deadline_ms: u64, margin: Duration) -> Self {
        if deadline_ms < EARLIEST_INVOCATION_DEADLINE_MS {
            return Self::NONE;
        }
        Self::before(
            SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms),
            margin,
        )
    }

    /// `margin` before `invocation_deadline` (wall clock). The remaining time is read once, here,
    /// and from then on counted on tokio's monotonic clock.
    pub fn before(invocation_deadline: SystemTime, margin: Duration) -> Self {
        let remaining = invocation_deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Self::at(Instant::now() + remaining.saturating_sub(margin))
    }

    /// Time left, or `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    pub fn has_passed(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }

    /// `work`, or `Unavailable(DeadlinePassed)` if the deadline comes first (`work` is dropped,
    /// with whatever backend call it had in flight).
    pub async fn bound<T>(
        &self,
        work: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        match self.0 {
            None => work.await,
            Some(at) => tokio::time::timeout_at(at, work)
                .await
                .unwrap_or_else(|_| Err(AppError::Unavailable(Box::new(DeadlinePassed)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, short deadlines: tokio's paused clock needs its test-util feature, which would
    // rebuild the whole SDK for the tests. Nothing here asserts how long anything took.

    #[tokio::test]
    async fn work_that_outlasts_the_deadline_is_unavailable() {
        let deadline = Deadline::before(
            SystemTime::now() + REQUEST_MARGIN + Duration::from_millis(100),
            REQUEST_MARGIN,
        );
        let stalled = std::future::pending::<Result<(), AppError>>();
        let result = deadline.bound(stalled).await;
        assert!(
            matches!(&result, Err(AppError::Unavailable(source)) if source.is::<DeadlinePassed>()),
            "{result:?}"
        );
        assert!(deadline.has_passed());
    }

    #[tokio::test]
    async fn a_deadline_already_past_cuts_at_once_and_none_never_cuts() {
        let past = Deadline::before(SystemTime::now() - Duration::from_secs(1), REQUEST_MARGIN);
        assert_eq!(past.remaining(), Some(Duration::ZERO));
        assert!(
            past.bound(std::future::pending::<Result<(), AppError>>())
                .await
                .is_err()
        );
        let quick = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(7)
        };
        assert_eq!(Deadline::NONE.bound(quick).await.unwrap(), 7);
        assert_eq!(Deadline::NONE.remaining(), None);
    }

    #[test]
    fn an_invocation_deadline_is_an_instant_and_a_duration_in_its_place_is_none() {
        let in_a_minute = SystemTime::now() + Duration::from_secs(60);
        let millis = in_a_minute
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let remaining = Deadline::of_invocation(millis, REQUEST_MARGIN)
            .remaining()
            .unwrap();
        assert!(remaining > Duration::from_secs(50) && remaining <= Duration::from_secs(59));
        assert!(!Deadline::of_invocation(millis, REQUEST_MARGIN).has_passed());
        assert!(!Deadline::NONE.has_passed());
        // What `cargo lambda watch` sends, and a context built by hand.
        assert_eq!(
            Deadline::of_invocation(600_000, REQUEST_MARGIN),
            Deadline::NONE
        );
        assert_eq!(Deadline::of_invocation(0, REQUEST_MARGIN), Deadline::NONE);
        // A real deadline already past still cuts at once.
        let a_second_ago = millis - 61_000;
        assert!(Deadline::of_invocation(a_second_ago, REQUEST_MARGIN).has_passed());
    }

    #[test]
    fn the_earliest_instant_lambda_could_send_is_a_deadline_and_the_millisecond_before_is_none() {
        assert!(
            Deadline::of_invocation(EARLIEST_INVOCATION_DEADLINE_MS, REQUEST_MARGIN).has_passed()
        );
        assert_eq!(
            Deadline::of_invocation(EARLIEST_INVOCATION_DEADLINE_MS - 1, REQUEST_MARGIN),
            Deadline::NONE
        );
    }
}
