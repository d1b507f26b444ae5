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
}
