//! The real handler with no network at all: DynamoDB and the S3 object calls (HeadObject,
//! DeleteObject) answered by `aws-smithy-mocks` rules, presigning done for real by the SDK (it is
//! local). The clients are built from the production loader (`aws::config_loader`, same timeouts
//! and retries) with static credentials, and a counting interceptor records every request that
//! would have gone on the wire. Shared by `tests/round_trips.rs` and the benchmarks in `benches/`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::operation::delete_object::DeleteObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use presign_gate::aws;
use presign_gate::bucket::S3Bucket;
use presign_gate::domain::{ExpiryPolicy, FileId, ObjectKey, OwnerId, PartPlan, UploadPolicy};
use presign_gate::http::Api;
use presign_gate::service::FileService;
use presign_gate::store::{DynamoDbOwnershipStore, attr};
use serde_json::{Value, json};

use crate::events::HttpApiEvent;
pub use crate::{BUCKET, TABLE};

pub const OWNER: &str = "alice";
pub const SIZE: u64 = 52_133;
pub const CONTENT_TYPE: &str = "image/png";
/// How many available files the mocked table holds (and a batch asks for).
pub const AVAILABLE: usize = 10;

/// Requests sent over the (mock) HTTP client, by operation name: one per HTTP request, so a
/// retry would count again. Counted after transmission, because presigning runs the same
/// pipeline up to just before it (and sends nothing).
#[derive(Clone, Debug, Default)]
pub struct Requests(Arc<Mutex<HashMap<String, usize>>>);

impl Requests {
    pub fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }

    pub fn of(&self, operation: &str) -> usize {
        self.0.lock().unwrap().get(operation).copied().unwrap_or(0)
    }

    pub fn reset(&self) {
        self.0.lock().unwrap().clear();
    }

    pub fn snapshot(&self) -> HashMap<String, usize> {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Debug)]
struct CountRequests(Requests);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map_or("<unknown>", |metadata| metadata.name());
        let mut counts = (self.0).0.lock().unwrap();
        match counts.get_mut(name) {
            Some(count) => *count += 1,
            None => {
                counts.insert(name.to_owned(), 1);
            }
        }
        Ok(())
    }
}

/// One read of the table as the adapter sent it: what the tests check of every read.
#[derive(Clone, Debug, PartialEq)]
pub struct Read {
    pub operation: &'static str,
    /// `ConsistentRead` as sent (per table for BatchGetItem).
    pub consistent: Option<bool>,
    /// `Limit` as sent (Query only).
    pub limit: Option<i32>,
}

/// Every read the mocked table answered, in order.
#[derive(Clone, Debug, Default)]
pub struct Reads(Arc<Mutex<Vec<Read>>>);

impl Reads {
    pub fn all(&self) -> Vec<Read> {
        self.0.lock().unwrap().clone()
    }

    fn push(&self, operation: &'static str, consistent: Option<bool>, limit: Option<i32>) {
        self.0.lock().unwrap().push(Read {
            operation,
            consistent,
            limit,
        });
    }
}

/// Ways the mocked DynamoDB answers other than by default: misbehaving, as the real one may or as
/// a bug in the adapter would make it seem to, or holding more than the records.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quirks {
    /// The owner's usage ledger holds this many tallies of pending reservations (13 at most in
    /// a real one: `domain::PURGE_GRID`); none means no ledger item yet.
    pub ledger_tallies: u16,
    /// BatchGetItem answers the first call with only its first key and leaves the others
    /// unprocessed (as DynamoDB does when throttled), then answers in full.
    pub batch_unprocessed_once: bool,
    /// BatchGetItem returns `MockedApi::foreign`'s record (another owner's) whoever asks for
    /// that id: the defence in depth behind the key's owner must drop it.
    pub batch_ignores_owner: bool,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A record of `OWNER`'s as the DynamoDB adapter writes it.
pub fn item(id: FileId, status: &str) -> HashMap<String, AttributeValue> {
    item_of(OWNER, id, status)
}

/// A record of `owner`'s as the DynamoDB adapter writes it.
pub fn item_of(owner: &str, id: FileId, status: &str) -> HashMap<String, AttributeValue> {
    let owner_id = OwnerId::parse(owner).unwrap();
    let mut item = HashMap::from([
        (attr::OWNER.to_owned(), s(owner)),
        (attr::FILE_ID.to_owned(), s(id.to_string())),
        (
            attr::OBJECT_KEY.to_owned(),
            s(ObjectKey::for_file(&owner_id, id).as_str()),
        ),
        (attr::FILENAME.to_owned(), s("holiday photo.png")),
        (attr::CONTENT_TYPE.to_owned(), s(CONTENT_TYPE)),
        (attr::SIZE.to_owned(), AttributeValue::N(SIZE.to_string())),
        (attr::STATUS.to_owned(), s(status)),
        (attr::CREATED_AT.to_owned(), s("2026-11-29T12:00:00Z")),
    ]);
    match status {
        "available" => {
            item.insert(attr::ETAG.to_owned(), s("\"etag\""));
            item.insert(attr::UPLOADED_AT.to_owned(), s("2026-11-29T12:01:00Z"));
        }
        // Every reservation has its purge time (the table's TTL): here 2099-01-01.
        "pending" => {
            item.insert(
                attr::PURGE_AT.to_owned(),
                AttributeValue::N(PURGE_AT_2099.into()),
            );
        }
        _ => {}
    }
    item
}

/// 2099-01-01T00:00:00Z in epoch seconds: the purge time of every pending record here.
pub const PURGE_AT_2099: &str = "4070908800";

/// `OWNER`'s usage ledger with `tallies` tallies (of one reservation each, within the default
/// limits), purged from 2099 on, as the adapter writes it.
fn ledger_item(tallies: u16) -> HashMap<String, AttributeValue> {
    let n = |value: u64| AttributeValue::N(value.to_string());
    let mut item = HashMap::from([
        (attr::OWNER.to_owned(), s(OWNER)),
        (attr::FILE_ID.to_owned(), s(attr::USAGE_SORT_KEY)),
        (attr::VERSION.to_owned(), n(12_345)),
        (attr::AVAILABLE_BYTES.to_owned(), n(1 << 30)),
    ]);
    let first: u64 = PURGE_AT_2099.parse().unwrap_or_default();
    for tally in 0..u64::from(tallies) {
        let counts = HashMap::from([("count".to_owned(), n(1)), ("bytes".to_owned(), n(SIZE))]);
        item.insert(
            format!("{}{}", attr::TALLY_PREFIX, first + tally * 4 * 3600),
            AttributeValue::M(counts),
        );
    }
    item
}

/// The size of the multipart reservation: 205 parts of 5 MiB, so a request can sign 100.
pub const MULTIPART_SIZE: u64 = 1 << 30;

/// A pending multipart reservation of `MULTIPART_SIZE` bytes as the adapter writes it, taking
/// parts until 2099.
pub fn multipart_item(id: FileId) -> HashMap<String, AttributeValue> {
    let plan = PartPlan::for_size(MULTIPART_SIZE).unwrap();
    let mut item = item(id, "pending");
    for (name, value) in [
        (attr::SIZE, AttributeValue::N(MULTIPART_SIZE.to_string())),
        (attr::MULTIPART_UPLOAD_ID, s("mocked-upload-id")),
        (
            attr::PART_SIZE,
            AttributeValue::N(plan.part_size().to_string()),
        ),
        (
            attr::PART_COUNT,
            AttributeValue::N(plan.part_count().to_string()),
        ),
        (attr::MULTIPART_EXPIRES_AT, s("2099-01-01T00:00:00Z")),
    ] {
        item.insert(name.to_owned(), value);
    }
    item
}

pub struct MockedApi {
    pub api: Api<DynamoDbOwnershipStore, S3Bucket>,
    pub dynamodb: Requests,
    pub s3: Requests,
    /// Confirmed files of `OWNER`.
    pub available: Vec<FileId>,
    /// A reservation of `OWNER` not yet confirmed (its object "exists" and matches).
    pub pending: FileId,
    /// An available file of another owner's.
    pub foreign: FileId,
    /// Every read of the table, as sent.
    pub reads: Reads,
    /// A multipart reservation of `OWNER` taking parts (`multipart_item`).
    pub multipart: FileId,
}

/// The production loader with static credentials: `load` does no I/O.
pub async fn sdk_config() -> SdkConfig {
    aws::config_loader()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "mocked",
        ))
        .load()
        .await
}

impl MockedApi {
    pub async fn new() -> Self {
        Self::with_quirks(Quirks::default()).await
    }

    pub async fn with_quirks(quirks: Quirks) -> Self {
        let available: Vec<FileId> = (0..AVAILABLE).map(|_| FileId::new_random()).collect();
        let pending = FileId::new_random();
        let foreign = FileId::new_random();
        let foreign_item = Arc::new(item_of("mallory", foreign, "available"));
        let reads = Reads::default();
        let multipart = FileId::new_random();
        let records: Arc<HashMap<String, HashMap<String, AttributeValue>>> = Arc::new(
            available
                .iter()
                .map(|id| (id.to_string(), item(*id, "available")))
                .chain([
                    (pending.to_string(), item(pending, "pending")),
                    (multipart.to_string(), multipart_item(multipart)),
                ])
                .collect(),
        );
        let ledger =
            Arc::new((quirks.ledger_tallies > 0).then(|| ledger_item(quirks.ledger_tallies)));
        let lookup = {
            let records = Arc::clone(&records);
            move |key: Option<&HashMap<String, AttributeValue>>| {
                let key = key?;
                if key.get(attr::OWNER)?.as_s().ok()? != OWNER {
                    return None;
                }
                let sort_key = key.get(attr::FILE_ID)?.as_s().ok()?;
                if sort_key == attr::USAGE_SORT_KEY {
                    return ledger.as_ref().clone();
                }
                records.get(sort_key).cloned()
            }
        };

        let get_item = {
            let (lookup, reads) = (lookup.clone(), reads.clone());
            mock!(aws_sdk_dynamodb::Client::get_item).then_compute_output(move |input| {
                reads.push("GetItem", input.consistent_read(), None);
                GetItemOutput::builder()
                    .set_item(lookup(input.key()))
                    .build()
            })
        };
        let batch_get_item = {
            let (lookup, reads) = (lookup.clone(), reads.clone());
            let calls = Arc::new(Mutex::new(0_usize));
            mock!(aws_sdk_dynamodb::Client::batch_get_item).then_compute_output(move |input| {
                let first_call = {
                    let mut calls = calls.lock().unwrap();
                    *calls += 1;
                    *calls == 1
                };
                let mut responses = HashMap::new();
                let mut unprocessed = HashMap::new();
                for (table, keys) in input.request_items().into_iter().flatten() {
                    reads.push("BatchGetItem", keys.consistent_read(), None);
                    let mut asked = keys.keys().to_vec();
                    if quirks.batch_unprocessed_once && first_call && asked.len() > 1 {
                        let later = asked.split_off(1);
                        unprocessed.insert(
                            table.clone(),
                            KeysAndAttributes::builder()
                                .set_keys(Some(later))
                                .set_consistent_read(keys.consistent_read())
                                .build()
                                .unwrap(),
                        );
                    }
                    let items = asked
                        .iter()
                        .filter_map(|key| {
                            let id = key.get(attr::FILE_ID)?.as_s().ok()?;
                            if quirks.batch_ignores_owner && *id == foreign.to_string() {
                                return Some((*foreign_item).clone());
                            }
                            lookup(Some(key))
                        })
                        .collect::<Vec<_>>();
                    responses.insert(table.clone(), items);
                }
                BatchGetItemOutput::builder()
                    .set_responses(Some(responses))
                    .set_unprocessed_keys((!unprocessed.is_empty()).then_some(unprocessed))
                    .build()
            })
        };
        // One page in id order (the sort key's), at most `Limit` records long, as DynamoDB
        // answers a Query.
        let query = {
            let (records, reads) = (Arc::clone(&records), reads.clone());
            mock!(aws_sdk_dynamodb::Client::query).then_compute_output(move |input| {
                reads.push("Query", input.consistent_read(), input.limit());
                let mut items: Vec<_> = records.values().cloned().collect();
                items.sort_by(|a, b| {
                    a[attr::FILE_ID]
                        .as_s()
                        .ok()
                        .cmp(&b[attr::FILE_ID].as_s().ok())
                });
                let limit = input.limit().and_then(|n| usize::try_from(n).ok());
                let last = match limit {
                    Some(limit) if limit < items.len() => {
                        items.truncate(limit);
                        items.last().map(|last| {
                            HashMap::from([
                                (attr::OWNER.to_owned(), last[attr::OWNER].clone()),
                                (attr::FILE_ID.to_owned(), last[attr::FILE_ID].clone()),
                            ])
                        })
                    }
                    _ => None,
                };
                QueryOutput::builder()
                    .set_items(Some(items))
                    .set_last_evaluated_key(last)
                    .build()
            })
        };
        // Reservations, confirmations and deletes write a record and its owner's usage ledger
        // together; the ledger read finds none unless `Quirks::ledger_tallies` says otherwise.
        let transact_write_items = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let delete_item = mock!(aws_sdk_dynamodb::Client::delete_item)
            .then_output(|| DeleteItemOutput::builder().build());
        let dynamodb_rules: [&Rule; 5] = [
            &get_item,
            &batch_get_item,
            &query,
            &transact_write_items,
            &delete_item,
        ];

        let head_object = mock!(aws_sdk_s3::Client::head_object).then_output(|| {
            HeadObjectOutput::builder()
                .content_length(SIZE as i64)
                .content_type(CONTENT_TYPE)
                .e_tag("\"etag\"")
                .build()
        });
        let delete_object = mock!(aws_sdk_s3::Client::delete_object)
            .then_output(|| DeleteObjectOutput::builder().build());

        let sdk = sdk_config().await;
        let dynamodb = Requests::default();
        let mut mocks = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in dynamodb_rules {
            mocks = mocks.with_rule(rule);
        }
        let dynamodb_client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .http_client(create_mock_http_client())
                .interceptor(mocks)
                .interceptor(CountRequests(dynamodb.clone()))
                .build(),
        );
        let s3 = Requests::default();
        // Presigning runs through the same client but stops before transmission: it needs no
        // rule, and it is not counted.
        let s3_client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(false)
                .http_client(create_mock_http_client())
                .interceptor(
                    MockResponseInterceptor::new()
                        .rule_mode(RuleMode::MatchAny)
                        .with_rule(&head_object)
                        .with_rule(&delete_object)
                        .allow_passthrough(),
                )
                .interceptor(CountRequests(s3.clone()))
                .build(),
        );
        let files = FileService::new(
            DynamoDbOwnershipStore::new(dynamodb_client, TABLE),
            // As `entry.rs` builds it: URLs signed with credentials read from the provider.
            S3Bucket::new(s3_client, BUCKET).signing_with(sdk.credentials_provider()),
            UploadPolicy::new(["image/png", "text/plain", "application/pdf"], 1 << 30).unwrap(),
            ExpiryPolicy::new(300, 900).unwrap(),
        );
        Self {
            api: Api::new(files, None),
            dynamodb,
            s3,
            available,
            pending,
            foreign,
            reads,
            multipart,
        }
    }

    pub async fn call(&self, request: lambda_http::Request) -> (u16, Value) {
        let response = self.api.handle(request).await;
        let status = response.status().as_u16();
        let body = match response.body() {
            lambda_http::Body::Empty => Value::Null,
            body => serde_json::from_slice(body.as_ref()).unwrap_or(Value::Null),
        };
        (status, body)
    }
}

/// An API Gateway HTTP API (payload 2.0) request whose JWT authorizer verified `OWNER`, parsed
/// exactly as the Lambda runtime would parse it.
pub fn request(method: &str, path: &str, body: Option<Value>) -> lambda_http::Request {
    let mut event = HttpApiEvent::new(method, path).caller(OWNER);
    if let Some(body) = body {
        event = event.json_body(&body);
    }
    event.request()
}

/// The body of a small upload reservation.
pub fn reservation() -> Value {
    json!({
        "filename": "cat.png",
        "contentType": CONTENT_TYPE,
        "size": SIZE,
        "sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
    })
}
