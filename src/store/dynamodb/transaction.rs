//! Running a transaction: retried while DynamoDB says another one holds its items, and read
//! back as committed or as the items whose condition failed.

use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::TransactWriteItem;

use super::DynamoDbOwnershipStore;
use crate::backend_error::backend_error;
use crate::error::AppError;

/// BatchGetItem may return some keys unprocessed when throttled; they are asked for again with
/// backoff, a bounded number of times, before the read counts as unavailable.
pub(super) const BATCH_GET_ATTEMPTS: u32 = 4;
pub(super) const BATCH_GET_BACKOFF: Duration = Duration::from_millis(50);

/// A transaction cancelled because another one held one of its items (`TransactionConflict`) or
/// by throttling is tried again this many times, with backoff, before the write counts as
/// unavailable. A reservation that finds the ledger changed since it read it starts over (reads
/// the ledger again) the same number of times.
pub(super) const TRANSACTION_ATTEMPTS: u32 = 4;
pub(super) const TRANSACTION_BACKOFF: Duration = Duration::from_millis(25);

/// The wait before each of `attempts` tries of a call: none before the first, then `base`,
/// doubling after each retry (exponential backoff).
pub(super) fn retry_waits(base: Duration, attempts: u32) -> impl Iterator<Item = Option<Duration>> {
    (0..attempts).map(move |attempt| attempt.checked_sub(1).map(|retry| base * 2u32.pow(retry)))
}

/// How a transaction ended, when DynamoDB answered.
pub(super) enum Outcome {
    Committed,
    /// The positions of the items whose condition failed; nothing was written.
    ConditionFailed(Vec<usize>),
}

impl DynamoDbOwnershipStore {
    /// Runs a transaction; the SDK gives it an idempotency token (`ClientRequestToken`), so its
    /// own retry of a request whose answer was lost does not apply it twice.
    pub(super) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Outcome, AppError> {
        for wait in retry_waits(TRANSACTION_BACKOFF, TRANSACTION_ATTEMPTS) {
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Outcome::Committed),
                Err(err) => err,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                err.as_service_error()
            {
                let reasons = cancelled.cancellation_reasons();
                let failed: Vec<usize> = reasons
                    .iter()
                    .enumerate()
                    .filter(|(_, reason)| reason.code() == Some("ConditionalCheckFailed"))
                    .map(|(at, _)| at)
                    .collect();
                if !failed.is_empty() {
                    return Ok(Outcome::ConditionFailed(failed));
                }
                let passing = reasons.iter().any(|reason| {
                    matches!(
                        reason.code(),
                        Some("TransactionConflict" | "ThrottlingError")
                    )
                });
                if passing {
                    continue;
                }
            }
            return Err(backend_error(err));
        }
        Err(AppError::Unavailable(
            "a transaction kept conflicting with others on the same items".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_and_the_first_try_not_at_all() {
        let waits: Vec<_> = retry_waits(Duration::from_millis(25), 4).collect();
        assert_eq!(
            waits,
            [None, Some(25), Some(50), Some(100)].map(|ms| ms.map(Duration::from_millis))
        );
    }
}
