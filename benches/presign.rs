//! What one presigned URL costs: the SDK presigner on the production S3 client (static
//! credentials, no network), for the two requests the API signs, and the same through the
//! adapter (`S3Bucket`), which adds the signed-header filtering. `make bench` runs it.

use presign_gate_test_support::mocked;
mod support;

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use criterion::Criterion;
use presign_gate::aws;
use presign_gate::bucket::{DownloadTarget, S3Bucket, UploadTarget, UrlSigner, Validity};
use presign_gate::domain::{FileId, ObjectKey, OwnerId};

const DISPOSITION: &str = "attachment; filename=\"holiday photo.png\"";
const SHA256: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

fn presigning() -> PresigningConfig {
    PresigningConfig::builder()
        .start_time(SystemTime::now())
        .expires_in(Duration::from_secs(300))
        .build()
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sdk = runtime.block_on(mocked::sdk_config());
    let client = aws::s3_client(&sdk, false);
    let bucket = S3Bucket::new(client.clone(), mocked::BUCKET);
    let owner = OwnerId::parse(mocked::OWNER).unwrap();
    let key = ObjectKey::for_file(&owner, FileId::new_random());

    let mut group = c.benchmark_group("presign");
    group.bench_function("sdk GET with response overrides", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = client
                .get_object()
                .bucket(mocked::BUCKET)
                .key(key.as_str())
                .response_content_type(mocked::CONTENT_TYPE)
                .response_content_disposition(DISPOSITION)
                .presigned(presigning())
                .await
                .unwrap();
            black_box(request.uri().len())
        })
    });
    group.bench_function("sdk PUT with four signed headers", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = client
                .put_object()
                .bucket(mocked::BUCKET)
                .key(key.as_str())
                .content_type(mocked::CONTENT_TYPE)
                .content_length(mocked::SIZE as i64)
                .if_none_match("*")
                .checksum_sha256(SHA256)
                .presigned(presigning())
                .await
                .unwrap();
            black_box(request.uri().len())
        })
    });
    let validity = || Validity {
        start: SystemTime::now(),
        lifetime: Duration::from_secs(300),
    };
    group.bench_function("adapter presign_download", |b| {
        b.to_async(&runtime).iter(|| async {
            let target = DownloadTarget {
                key: &key,
                content_type: mocked::CONTENT_TYPE,
                content_disposition: DISPOSITION,
            };
            black_box(bucket.presign_download(target, validity()).await.unwrap())
        })
    });
    group.bench_function("adapter presign_upload", |b| {
        b.to_async(&runtime).iter(|| async {
            let target = UploadTarget {
                key: &key,
                content_type: mocked::CONTENT_TYPE,
                content_length: mocked::SIZE,
                sha256: Some(SHA256),
            };
            black_box(bucket.presign_upload(target, validity()).await.unwrap())
        })
    });
    group.finish();
}

fn main() {
    support::run(benches);
}
