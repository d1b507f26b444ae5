//! Lambda's side of a DynamoDB stream batch: the record shape the function receives (Lambda
//! Developer Guide, "Using AWS Lambda with Amazon DynamoDB", example event), and what its answer
//! means with `ReportBatchItemFailures` ("Configuring partial batch response with DynamoDB and
//! Lambda"): an empty or null `batchItemFailures` (or answer) is a success; otherwise the lowest
//! reported sequence number is the checkpoint Lambda retries from; an item identifier that is
//! empty, null, under another key or not one of the batch's sequence numbers makes the whole
//! batch a failure, as does a function error.

use bytes::Bytes;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The record as Lambda passes it, from the record GetRecords answered.
pub fn lambda_record(raw: &Value, stream_arn: &str, region: &str) -> Value {
    let mut dynamodb = raw["dynamodb"].clone();
    if let Some(seconds) = epoch_seconds(&dynamodb["ApproximateCreationDateTime"]) {
        dynamodb["ApproximateCreationDateTime"] = json!(seconds);
    }
    let mut record = json!({
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    });
    if let Some(identity) = raw.get("userIdentity") {
        record["userIdentity"] = identity.clone();
    }
    record
}

/// Lambda's events carry `ApproximateCreationDateTime` as whole epoch seconds; moto's
/// GetRecords answers epoch seconds with milliseconds (1796573764.936), and an RFC 3339 text is
/// read too.
fn epoch_seconds(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            let seconds = number.as_f64()?.floor();
            // Within i64 by far: a date, not an arbitrary float.
            (seconds.abs() < 1e15).then_some(seconds as i64)
        }),
        Value::String(text) => OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .map(OffsetDateTime::unix_timestamp),
        _ => None,
    }
}

pub fn sequence_number(record: &Value) -> &str {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap_or_default()
}

/// What one invocation of a batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The function reported failures: retry from this index of the batch on.
    FailedFrom(usize),
    /// The whole batch failed (a function error, no answer, an invalid report): why.
    Failed(String),
}

/// The outcome of an invocation that answered `answer` (Err: the function failed).
pub fn outcome(
    answer: Result<Bytes, String>,
    batch: &[Value],
    report_item_failures: bool,
) -> Outcome {
    let body = match answer {
        Ok(body) => body,
        Err(cause) => return Outcome::Failed(cause),
    };
    if !report_item_failures || body.iter().all(u8::is_ascii_whitespace) {
        return Outcome::Success;
    }
    let failures = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Null) => return Outcome::Success,
        Ok(Value::Object(answer)) => match answer.get("batchItemFailures") {
            None | Some(Value::Null) => return Outcome::Success,
            Some(Value::Array(failures)) => failures.clone(),
            Some(_) => return Outcome::Failed("batchItemFailures is not a list".into()),
        },
        _ => return Outcome::Failed("the answer is not a StreamsEventResponse".into()),
    };
    let mut first: Option<usize> = None;
    for failure in &failures {
        let position = failure["itemIdentifier"]
            .as_str()
            .filter(|id| !id.is_empty())
            .and_then(|id| {
                batch
                    .iter()
                    .position(|record| sequence_number(record) == id)
            });
        let Some(position) = position else {
            return Outcome::Failed(format!("invalid batch item failure {failure}"));
        };
        first = Some(first.map_or(position, |first| first.min(position)));
    }
    first.map_or(Outcome::Success, Outcome::FailedFrom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Vec<Value> {
        ["11", "12", "13"]
            .iter()
            .map(|seq| json!({"dynamodb": {"SequenceNumber": seq}}))
            .collect()
    }

    fn answer(text: &str) -> Outcome {
        outcome(Ok(Bytes::from(text.to_owned())), &batch(), true)
    }

    #[test]
    fn records_take_lambdas_shape() {
        let raw = json!({"eventID": "e1", "eventName": "REMOVE", "eventVersion": "1.0",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": 1_796_573_764.936, "SequenceNumber": "11",
                         "Keys": {"owner": {"S": "a"}}, "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}});
        let record = lambda_record(&raw, "arn:s", "eu-west-1");
        assert_eq!(
            record["dynamodb"]["ApproximateCreationDateTime"],
            json!(1_796_573_764)
        );
        assert_eq!(record["eventSourceARN"], "arn:s");
        assert_eq!(record["awsRegion"], "eu-west-1");
        assert_eq!(record["eventVersion"], "1.1");
        assert_eq!(record["userIdentity"]["type"], "Service");
        assert_eq!(record["dynamodb"]["Keys"], raw["dynamodb"]["Keys"]);
        assert_eq!(
            epoch_seconds(&json!("2026-12-06T16:16:04.5Z")),
            Some(1_796_573_764)
        );
        assert!(
            lambda_record(&json!({}), "a", "r")
                .get("userIdentity")
                .is_none()
        );
    }

    #[test]
    fn answers_succeed_fail_from_the_lowest_sequence_or_fail_whole() {
        for success in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures": []}"#,
            r#"{"batchItemFailures": null}"#,
        ] {
            assert_eq!(answer(success), Outcome::Success, "{success}");
        }
        assert_eq!(
            answer(
                r#"{"batchItemFailures": [{"itemIdentifier": "13"}, {"itemIdentifier": "12"}]}"#
            ),
            Outcome::FailedFrom(1)
        );
        for invalid in [
            r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            r#"{"batchItemFailures": [{"id": "12"}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": "99"}]}"#,
            r#"{"batchItemFailures": "12"}"#,
            "not json",
        ] {
            assert!(matches!(answer(invalid), Outcome::Failed(_)), "{invalid}");
        }
        assert!(matches!(
            outcome(Err("function error".into()), &batch(), true),
            Outcome::Failed(_)
        ));
        let ignored = outcome(
            Ok(Bytes::from_static(
                b"{\"batchItemFailures\": [{\"itemIdentifier\": \"12\"}]}",
            )),
            &batch(),
            false,
        );
        assert_eq!(
            ignored,
            Outcome::Success,
            "without ReportBatchItemFailures the answer is not read"
        );
    }
}
