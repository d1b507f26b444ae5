//! What one presigned URL costs: the SDK presigner on the production S3 client (static
//! credentials, no network), for the two requests the API signs, and the same through the
//! adapter (`S3Bucket`), which adds the signed-header filtering. `make bench` runs it.
//!
//! Part URLs (issue 21, point 2): one part, and a batch of 100 signed one by one through the
//! SDK (`presign_part` in a loop, as the parts route did) and as one batch (`presign_parts`). The
//! added cost of a part URL in a batch is (batch of 100 - one part) / 99.

use presign_gate_test_support::mocked;
mod support;

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use criterion::Criterion;
use presign_gate::aws;
use presign_gate::bucket::{
    DownloadTarget, PartTarget, S3Bucket, UploadTarget, UrlSigner, Validity,
};
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
    // As the API function builds it: URLs signed with credentials read from the provider.
    let signing =
        S3Bucket::new(client.clone(), mocked::BUCKET).signing_with(sdk.credentials_provider());
    let upload_id = "VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA";
    let parts = |count: u32| -> Vec<PartTarget<'_>> {
        (1..=count)
            .map(|part_number| PartTarget {
                key: &key,
                upload_id,
                part_number,
                content_length: 8 << 20,
                sha256: Some(SHA256),
            })
            .collect()
    };
    let one = parts(1);
    let hundred = parts(100);
    group.bench_function("adapter presign_parts, 1 part", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(signing.presign_parts(&one, validity()).await.unwrap()) })
    });
    group.bench_function("adapter presign_parts, 100 parts", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(signing.presign_parts(&hundred, validity()).await.unwrap())
        })
    });
    group.bench_function("adapter presign_part x100, one by one (before)", |b| {
        b.to_async(&runtime).iter(|| async {
            let validity = validity();
            let mut urls = Vec::with_capacity(hundred.len());
            for target in &hundred {
                urls.push(signing.presign_part(*target, validity).await.unwrap());
            }
            black_box(urls)
        })
    });
    group.finish();
}

fn main() {
    support::run(benches);
}
