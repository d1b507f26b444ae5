//! The DynamoDB Streams API of moto's DynamoDB (moto 5.2.5 serves it on the same port, routed by
//! the `DynamoDBStreams_20120810` target and a SigV4 credential scope naming `dynamodb`; it
//! checks no signature), and DescribeTable to find the table's stream.
//!
//! moto keeps one shard per table. A cancelled TransactWriteItems restores a copy of the whole
//! table, its shard included, so an iterator taken before it keeps reading the old shard: the
//! records of the items applied before the failing one, then nothing more. A fresh iterator after
//! the last record read (`AFTER_SEQUENCE_NUMBER`) is therefore taken for every read, and reads
//! are made only while no write is under way (see `super::Writes`).

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// GetRecords answers at most 1,000 records.
const MAX_RECORDS: usize = 1000;

#[derive(Clone)]
pub struct StreamsClient {
    upstream: Uri,
    region: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Where the table's stream is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub stream_arn: String,
    pub shard_id: String,
}

impl StreamsClient {
    pub fn new(upstream: Uri, region: String) -> Self {
        Self {
            upstream,
            region,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn call(&self, target: &str, input: Value) -> Result<Value, String> {
        // moto routes by the credential scope's service and checks no signature.
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=local-aws/20200101/{}/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
            self.region
        );
        let request = Request::post(self.upstream.clone())
            .header(header::CONTENT_TYPE, "application/x-amz-json-1.0")
            .header("x-amz-target", target)
            .header(header::AUTHORIZATION, authorization)
            .body(Full::new(Bytes::from(input.to_string())))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("moto's DynamoDB did not answer: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let output: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(output)
        } else {
            Err(format!(
                "{target}: {status} {}",
                output["__type"].as_str().unwrap_or_default()
            ))
        }
    }

    /// The table's stream and its shard; None while the table or its stream does not exist.
    pub async fn shard(&self, table: &str) -> Result<Option<Shard>, String> {
        let described = match self
            .call(
                "DynamoDB_20120810.DescribeTable",
                json!({ "TableName": table }),
            )
            .await
        {
            Ok(described) => described,
            Err(error) if error.contains("ResourceNotFoundException") => return Ok(None),
            Err(error) => return Err(error),
        };
        let Some(stream_arn) = described["Table"]["LatestStreamArn"].as_str() else {
            return Ok(None);
        };
        let stream = self
            .call(
                "DynamoDBStreams_20120810.DescribeStream",
                json!({ "StreamArn": stream_arn }),
            )
            .await?;
        Ok(stream["StreamDescription"]["Shards"][0]["ShardId"]
            .as_str()
            .map(|shard_id| Shard {
                stream_arn: stream_arn.to_owned(),
                shard_id: shard_id.to_owned(),
            }))
    }

    /// Up to `limit` records after the sequence number `after` (from the shard's start without
    /// one), in order.
    pub async fn records(
        &self,
        shard: &Shard,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Value>, String> {
        let mut input = json!({
            "StreamArn": shard.stream_arn,
            "ShardId": shard.shard_id,
            "ShardIteratorType": "TRIM_HORIZON",
        });
        if let Some(after) = after {
            input["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
            input["SequenceNumber"] = json!(after);
        }
        let iterator = self
            .call("DynamoDBStreams_20120810.GetShardIterator", input)
            .await?;
        let iterator = iterator["ShardIterator"]
            .as_str()
            .ok_or("GetShardIterator answered no iterator")?;
        let output = self
            .call(
                "DynamoDBStreams_20120810.GetRecords",
                json!({ "ShardIterator": iterator, "Limit": limit.clamp(1, MAX_RECORDS) }),
            )
            .await?;
        match output["Records"].as_array() {
            Some(records) => Ok(records.clone()),
            None => Err("GetRecords answered no Records".into()),
        }
    }
}
