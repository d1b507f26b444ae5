//! Inside Lambda, `_X_AMZN_TRACE_ID` is set for every invocation and the SDK attaches it to the
//! requests it builds, presigned ones included. It is not signed, so the browser need not send
//! it, and the bucket's CORS rules would refuse it: the API must not list it.
//! (A test binary of its own, because it sets a process-wide variable.)

use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::Credentials;
use presign_gate::aws;
use presign_gate::bucket::{S3Bucket, UploadTarget, UrlSigner, Validity};
use presign_gate::domain::{FileId, ObjectKey, OwnerId};

#[tokio::test]
async fn upload_headers_list_only_what_is_signed() {
    // SAFETY: the only test of this binary sets these before it starts any other thread.
    unsafe {
        std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "presign-gate-api");
        std::env::set_var(
            "_X_AMZN_TRACE_ID",
            "Root=1-00000000-000000000000000000000000",
        );
    }
    let sdk = aws::config_loader()
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let bucket = S3Bucket::new(aws::s3_client(&sdk, false), "files");
    let owner = OwnerId::parse("alice").unwrap();
    let key = ObjectKey::for_file(&owner, FileId::new_random());
    let target = UploadTarget {
        key: &key,
        content_type: "image/png",
        content_length: 10,
        sha256: Some("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
    };
    let validity = Validity {
        start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        lifetime: Duration::from_secs(60),
    };
    let presigned = bucket.presign_upload(target, validity).await.unwrap();
    let mut names: Vec<&str> = presigned
        .headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "cache-control",
            "content-length",
            "content-type",
            "if-none-match",
            "x-amz-checksum-sha256"
        ]
    );
}
