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
    /// Runs a transaction under an idempotency token (`ClientRequestToken`) of its own, so that a
    /// retry of an attempt whose answer was lost does not apply it twice.
    ///
    /// `TransactionInProgressException` means an earlier attempt with the same token is still
    /// being committed (the SDK's own retry, same token, reached DynamoDB first). It is no
    /// failure of the transaction: the attempt is sent again after the backoff with the *same*
    /// token, which DynamoDB answers with success once the first attempt has committed, and which
    /// helps it finish one that stalled ("Amazon DynamoDB API Reference", TransactWriteItems,
    /// Errors: TransactionInProgressException, and ClientRequestToken: "multiple identical calls
    /// have the same effect as one single call", valid for 10 minutes). Still in progress after
    /// every attempt: unavailable (503), never internal. A cancelled transaction is retried under
    /// a fresh token: it wrote nothing, and it is tried again as a new one.
    pub(super) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Outcome, AppError> {
        let mut token = new_token();
        for wait in retry_waits(TRANSACTION_BACKOFF, TRANSACTION_ATTEMPTS) {
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(&token)
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Outcome::Committed),
                Err(err) => err,
            };
            match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => continue,
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
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
                        token = new_token();
                        continue;
                    }
                }
                _ => {}
            }
            return Err(backend_error(err));
        }
        Err(AppError::Unavailable(
            "a transaction kept conflicting with others on the same items, or stayed in progress"
                .into(),
        ))
    }
}

/// A fresh `ClientRequestToken` (1 to 36 characters): a UUID v4 in its 36-character form.
fn new_token() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
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
