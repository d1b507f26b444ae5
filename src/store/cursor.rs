//! The reconciliation cursor as one item of the files table (see `ReconcileCursor`).
//!
//! Its key can be no file's and no ledger's: file ids are UUIDs and the ledger's sort key is
//! `#usage`, so `(#reconcile, #cursor)` is never read or written by anything else, whatever an
//! owner's sub. The listing Query of an owner's files starts after `#usage` (see
//! `DynamoDbOwnershipStore::list`), and `#cursor` sorts before it, so even an owner whose sub is
//! `#reconcile` never sees it. It has no `purgeAt`: the table's TTL never removes it.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{DynamoDbOwnershipStore, ReconcileCursor, attr};
use crate::backend_error::backend_error;
use crate::domain::ObjectKey;
use crate::error::AppError;

/// The cursor item's partition key.
pub const CURSOR_OWNER: &str = "#reconcile";
/// The cursor item's sort key.
pub const CURSOR_SORT_KEY: &str = "#cursor";
/// The key after which the next run starts; empty to start from the beginning.
const AFTER: &str = "after";

fn cursor_key() -> std::collections::HashMap<String, AttributeValue> {
    [
        (
            attr::OWNER.to_owned(),
            AttributeValue::S(CURSOR_OWNER.into()),
        ),
        (
            attr::FILE_ID.to_owned(),
            AttributeValue::S(CURSOR_SORT_KEY.into()),
        ),
    ]
    .into()
}

impl ReconcileCursor for DynamoDbOwnershipStore {
    async fn read_cursor(&self) -> Result<Option<String>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend_error)?;
        // Anything but a key under users/ (an empty cursor, or one mangled by hand) starts over.
        Ok(output
            .item
            .as_ref()
            .and_then(|item| item.get(AFTER))
            .and_then(|after| after.as_s().ok())
            .filter(|key| key.starts_with(ObjectKey::PREFIX))
            .cloned())
    }

    async fn write_cursor(&self, after: Option<&str>) -> Result<(), AppError> {
        // UpdateItem creates the item on the first run: the role needs no PutItem.
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key()))
            .update_expression("SET #after = :after")
            .expression_attribute_names("#after", AFTER)
            .expression_attribute_values(
                ":after",
                AttributeValue::S(after.unwrap_or_default().to_owned()),
            )
            .send()
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}
