//! The scripted fake backend: DynamoDB and S3 wire formats on a loopback port, each call
//! answered as the scenario says, and the API built against it with attempts counted.

use super::*;

impl Fault {
    pub fn transient(self) -> bool {
        self != Self::Denied
    }
}

/// What the fake backend saw, in order: operation names.
type Log = Arc<Mutex<Vec<String>>>;

pub struct Script {
    /// The operation that fails.
    pub target: &'static str,
    pub fault: Fault,
    /// The record every successful read returns.
    pub status: &'static str,
    /// That record is a multipart reservation (`MULTIPART_SIZE` bytes), whose object exists
    /// only once a CompleteMultipartUpload has reached the backend.
    pub multipart: bool,
}

/// The size of the multipart record: a part of 5 MiB and one of 1 MiB.
pub const MULTIPART_SIZE: u64 = 6 << 20;
pub const PART_SIZES: [u64; 2] = [5 << 20, 1 << 20];

/// The S3 operations the fake tells apart.
const S3_OPERATIONS: [&str; 6] = [
    "HeadObject",
    "DeleteObject",
    "CreateMultipartUpload",
    "ListParts",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
];

pub fn item(status: &str, multipart: bool) -> Value {
    let mut item = json!({
        "owner": {"S": "alice"},
        "fileId": {"S": ID},
        "objectKey": {"S": format!("users/alice/{ID}")},
        "filename": {"S": "a.txt"},
        "contentType": {"S": "text/plain"},
        "size": {"N": "3"},
        "status": {"S": status},
        "createdAt": {"S": "2026-11-29T12:00:00Z"},
    });
    if status == "pending" {
        item[attr::PURGE_AT] = json!({"N": support::mocked::PURGE_AT_2099});
    }
    if multipart {
        let plan = PartPlan::for_size(MULTIPART_SIZE).unwrap();
        assert_eq!(plan.part_count() as usize, PART_SIZES.len());
        for (name, value) in [
            (attr::SIZE, json!({"N": MULTIPART_SIZE.to_string()})),
            (attr::MULTIPART_UPLOAD_ID, json!({"S": "fake-upload"})),
            (attr::PART_SIZE, json!({"N": plan.part_size().to_string()})),
            (
                attr::PART_COUNT,
                json!({"N": plan.part_count().to_string()}),
            ),
            (
                attr::MULTIPART_EXPIRES_AT,
                json!({"S": "2099-01-01T00:00:00Z"}),
            ),
        ] {
            item[name] = value;
        }
    }
    item
}

pub fn xml(body: &str) -> Vec<u8> {
    response(200, &[("content-type", "application/xml")], body)
}

/// One part a page, as S3 may answer (fewer than `max-parts`, and where to go on), the last page
/// not truncated but still naming its last part.
pub fn list_parts_page(request_line: &str) -> Vec<u8> {
    let after: usize = request_line
        .split(['?', '&', ' '])
        .find_map(|pair| pair.strip_prefix("part-number-marker="))
        .map_or(0, |n| n.parse().unwrap());
    let number = after + 1;
    let size = PART_SIZES[after];
    let truncated = number < PART_SIZES.len();
    xml(&format!(
        "<ListPartsResult><Bucket>files</Bucket><UploadId>fake-upload</UploadId>\
         <Part><PartNumber>{number}</PartNumber><ETag>\"part-{number}\"</ETag><Size>{size}</Size></Part>\
         <IsTruncated>{truncated}</IsTruncated><NextPartNumberMarker>{number}</NextPartNumberMarker>\
         </ListPartsResult>"
    ))
}

pub fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status} X\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers.iter().any(|(name, _)| *name == "content-length") {
        text.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}

/// The canned answer to `operation` (whose request starts with `request_line` and whose body is
/// `body`), or the scripted fault; `None` means hang up. `completed`: a CompleteMultipartUpload
/// has reached the backend; `aborted`: an AbortMultipartUpload has, after which ListParts answers
/// `NoSuchUpload`, as S3 does for an upload aborted (Amazon S3 API Reference, ListParts).
pub fn answer(
    script: &Script,
    operation: &str,
    request_line: &str,
    body: &str,
    (completed, aborted): (bool, bool),
) -> Option<Vec<u8>> {
    let dynamodb = !S3_OPERATIONS.contains(&operation);
    if operation == script.target {
        let json_error = |status, kind: &str| {
            let body = json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": "injected"});
            response(
                status,
                &[("content-type", "application/x-amz-json-1.0")],
                &body.to_string(),
            )
        };
        let xml_error = |status, code: &str| {
            // HEAD responses carry no body; the status alone must tell.
            let body = if operation == "HeadObject" {
                String::new()
            } else {
                format!("<Error><Code>{code}</Code><Message>injected</Message></Error>")
            };
            response(status, &[("content-type", "application/xml")], &body)
        };
        return match (script.fault, dynamodb) {
            (Fault::Throttle, true) => Some(json_error(400, "ThrottlingException")),
            (Fault::Throttle, false) => Some(xml_error(503, "SlowDown")),
            (Fault::ServerError, true) => Some(json_error(500, "InternalServerError")),
            (Fault::ServerError, false) => Some(xml_error(500, "InternalError")),
            (Fault::Denied, true) => Some(json_error(400, "AccessDeniedException")),
            (Fault::Denied, false) => Some(xml_error(403, "AccessDenied")),
            (Fault::Timeout | Fault::Reset, _) => None,
            (Fault::NoSuchUpload, _) => Some(xml_error(404, "NoSuchUpload")),
            (Fault::PreconditionFailed, _) => Some(xml_error(412, "PreconditionFailed")),
            (Fault::ConditionalRequestConflict, _) => {
                Some(xml_error(409, "ConditionalRequestConflict"))
            }
            (Fault::NeverProcessed, _) => {
                let keys = json!({"Keys": [{"owner": {"S": "alice"}, "fileId": {"S": ID}}], "ConsistentRead": true});
                let body = json!({"Responses": {TABLE: []}, "UnprocessedKeys": {TABLE: keys}});
                Some(response(
                    200,
                    &[("content-type", "application/x-amz-json-1.0")],
                    &body.to_string(),
                ))
            }
        };
    }
    let ok_json = |body: Value| {
        response(
            200,
            &[("content-type", "application/x-amz-json-1.0")],
            &body.to_string(),
        )
    };
    Some(match operation {
        // An owner's usage ledger: none yet.
        "GetItem" if body.contains(attr::USAGE_SORT_KEY) => ok_json(json!({})),
        "GetItem" => ok_json(json!({"Item": item(script.status, script.multipart)})),
        "Query" => ok_json(
            json!({"Items": [item(script.status, script.multipart)], "Count": 1, "ScannedCount": 1}),
        ),
        "BatchGetItem" => ok_json(json!({
            "Responses": {TABLE: [item(script.status, script.multipart)]},
            "UnprocessedKeys": {},
        })),
        "TransactWriteItems" | "DeleteItem" => ok_json(json!({})),
        "HeadObject" if script.multipart && !completed => response(404, &[], ""),
        "HeadObject" if script.multipart => response(
            200,
            &[
                ("content-type", "text/plain"),
                ("content-length", &MULTIPART_SIZE.to_string()),
                ("etag", "\"fake-upload-2\""),
            ],
            "",
        ),
        "HeadObject" => response(
            200,
            &[
                ("content-type", "text/plain"),
                ("content-length", "3"),
                ("etag", "\"900150983cd24fb0d6963f7d28e17f72\""),
            ],
            "",
        ),
        "DeleteObject" | "AbortMultipartUpload" => response(204, &[("content-length", "0")], ""),
        "CreateMultipartUpload" => xml(
            "<InitiateMultipartUploadResult><Bucket>files</Bucket><Key>k</Key>\
             <UploadId>fake-upload</UploadId></InitiateMultipartUploadResult>",
        ),
        "ListParts" if aborted => response(
            404,
            &[("content-type", "application/xml")],
            "<Error><Code>NoSuchUpload</Code><Message>aborted</Message></Error>",
        ),
        "ListParts" => list_parts_page(request_line),
        "CompleteMultipartUpload" => xml(
            "<CompleteMultipartUploadResult><Bucket>files</Bucket><Key>k</Key>\
             <ETag>\"fake-upload-2\"</ETag></CompleteMultipartUploadResult>",
        ),
        other => panic!("the fake backend got an unexpected {other}"),
    })
}

pub async fn serve(mut stream: TcpStream, script: Arc<Script>, log: Log) {
    let mut buffer = Vec::new();
    loop {
        // One request: headers, then a body of content-length bytes.
        let header_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
        let header = |name: &str| {
            head.lines()
                .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                .map(str::trim)
                .map(str::to_owned)
        };
        let length: usize = header("content-length").map_or(0, |n| n.parse().unwrap());
        while buffer.len() < header_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buffer[header_end..header_end + length]).into_owned();
        buffer.drain(..header_end + length);
        let operation = match header("x-amz-target") {
            Some(target) => {
                let op = target.rsplit('.').next().unwrap();
                // Back to the API's spelling (the head was lowercased).
                [
                    "GetItem",
                    "Query",
                    "BatchGetItem",
                    "TransactWriteItems",
                    "DeleteItem",
                ]
                .into_iter()
                .find(|name| name.eq_ignore_ascii_case(op))
                .unwrap_or_else(|| panic!("unexpected DynamoDB operation {op}"))
            }
            None => {
                // S3's operation, from the method and the query (lowercased like the head).
                let request_line = head.lines().next().unwrap();
                let (method, target) = request_line.split_once(' ').unwrap();
                let query = target.split_once('?').map_or("", |(_, query)| query);
                let has = |name: &str| query.split(['&', ' ']).any(|pair| pair.starts_with(name));
                match method {
                    "head" => "HeadObject",
                    "post" if has("uploads") => "CreateMultipartUpload",
                    "get" if has("uploadid=") => "ListParts",
                    "post" if has("uploadid=") => "CompleteMultipartUpload",
                    "delete" if has("uploadid=") => "AbortMultipartUpload",
                    "delete" => "DeleteObject",
                    _ => panic!("unexpected S3 request {request_line}"),
                }
            }
        };
        let state = {
            let mut log = log.lock().unwrap();
            log.push(operation.to_owned());
            (
                log.iter().any(|seen| seen == "CompleteMultipartUpload"),
                log.iter().any(|seen| seen == "AbortMultipartUpload"),
            )
        };
        let request_line = head.lines().next().unwrap_or_default();
        match answer(&script, operation, request_line, &body, state) {
            Some(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            None if script.fault == Fault::Timeout => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            None => return, // Reset: close without answering
        }
    }
}

pub async fn fake_backend(script: Script) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let log: Log = Arc::default();
    let script = Arc::new(script);
    let task_log = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, script.clone(), task_log.clone()));
        }
    });
    (endpoint, log)
}

/// Every attempt the SDK makes, by operation name, in order.
#[derive(Debug)]
pub struct CountAttempts(Log);

impl Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "CountAttempts"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map_or("<unknown>", |metadata| metadata.name());
        self.0.lock().unwrap().push(name.to_owned());
        Ok(())
    }
}

/// The handler over clients of `endpoint`, and the attempts its SDK clients make.
pub async fn api_against(endpoint: &str) -> (TestApi, Log) {
    // The production loader (retries included), with timeouts cut short for the test.
    let loader = presign_gate::aws::config_loader().timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(300))
            .read_timeout(Duration::from_millis(300))
            .operation_attempt_timeout(Duration::from_millis(300))
            .operation_timeout(Duration::from_secs(3))
            .build(),
    );
    let attempts = Log::default();
    let api = api_counted(endpoint, loader, &attempts).await;
    (api, attempts)
}

pub async fn api_loaded_by(endpoint: &str, loader: aws_config::ConfigLoader) -> TestApi {
    api_counted(endpoint, loader, &Log::default()).await
}

pub async fn api_counted(
    endpoint: &str,
    loader: aws_config::ConfigLoader,
    attempts: &Log,
) -> TestApi {
    let sdk = loader
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("k", "s", None, None, "tests"))
        .load()
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .interceptor(CountAttempts(attempts.clone()))
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .interceptor(CountAttempts(attempts.clone()))
            .build(),
    );
    TestApi(Api::new(
        FileService::new(
            DynamoDbOwnershipStore::new(dynamodb, TABLE),
            S3Bucket::new(s3, "files"),
            UploadPolicy::new(["text/plain"], MULTIPART_SIZE).unwrap(),
            ExpiryPolicy::new(300, 900).unwrap(),
        ),
        None,
    ))
}
