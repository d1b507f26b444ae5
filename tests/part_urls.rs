//! Issue 21, point 2: a batch of part URLs (`presign_parts`, the SDK for the first part and
//! `part_signer` for the others) signs exactly what the SDK signs for each part alone
//! (`presign_part`): the same URL byte for byte and the same headers, for the same credentials,
//! time, expiry, key, upload id, part number, length and checksum. With and without a session
//! token and a checksum, path-style and virtual-hosted, on AWS's endpoint and on a local one.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use presign_gate::bucket::{PartTarget, PresignedRequest, S3Bucket, UrlSigner, Validity};
use presign_gate::domain::{FileId, ObjectKey, OwnerId};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// An upload id with characters that query encoding must escape.
const UPLOAD_ID: &str = "2~Vk.x_y-z+a/b=c%d e";
const SHA256: [&str; 3] = [
    "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
    "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=",
    "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
];

struct Case {
    token: bool,
    path_style: bool,
    endpoint: Option<&'static str>,
}

fn bucket(case: &Case) -> S3Bucket {
    let credentials = Credentials::new(
        "ASIAEXAMPLE",
        SECRET,
        case.token
            .then(|| "FwoGZXIvYXdzEBYaDH+token/with=signs".to_owned()),
        None,
        "test",
    );
    let provider = SharedCredentialsProvider::new(credentials);
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-3"))
        .credentials_provider(provider.clone())
        .force_path_style(case.path_style);
    if let Some(endpoint) = case.endpoint {
        config = config.endpoint_url(endpoint);
    }
    S3Bucket::new(
        aws_sdk_s3::Client::from_conf(config.build()),
        "files-bucket",
    )
    .signing_with(Some(provider))
}

fn targets<'a>(key: &'a ObjectKey, checksum: bool) -> Vec<PartTarget<'a>> {
    [(1, 8 << 20), (2, 8 << 20), (9, 5 << 20), (10_000, 1)]
        .into_iter()
        .enumerate()
        .map(|(i, (part_number, content_length))| PartTarget {
            key,
            upload_id: UPLOAD_ID,
            part_number,
            content_length,
            sha256: checksum.then_some(SHA256[i % SHA256.len()]),
        })
        .collect()
}

fn same(batch: &PresignedRequest, alone: &PresignedRequest) {
    assert_eq!(batch.method, alone.method);
    assert_eq!(batch.url, alone.url);
    assert_eq!(batch.headers, alone.headers);
    assert_eq!(batch.expires_at, alone.expires_at);
}

#[tokio::test]
async fn a_batch_signs_every_part_as_the_sdk_does() {
    let owner = OwnerId::parse("alice").unwrap();
    let key = ObjectKey::for_file(&owner, FileId::new_random());
    // A fixed time and expiry: the URLs are then deterministic.
    let validity = Validity {
        start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_599),
        lifetime: Duration::from_secs(3_600),
    };
    let mut seen = 0;
    for token in [false, true] {
        for checksum in [false, true] {
            for path_style in [false, true] {
                for endpoint in [
                    None,
                    Some("http://127.0.0.1:4566"),
                    Some("https://s3.example:443"),
                ] {
                    let case = Case {
                        token,
                        path_style,
                        endpoint,
                    };
                    let bucket = bucket(&case);
                    let targets = targets(&key, checksum);
                    let batch = bucket.presign_parts(&targets, validity).await.unwrap();
                    assert_eq!(batch.len(), targets.len());
                    for (target, url) in targets.iter().zip(&batch) {
                        let alone = bucket.presign_part(*target, validity).await.unwrap();
                        same(url, &alone);
                        // What the case asked for is in the URL (not a vacuous comparison).
                        assert_eq!(url.url.contains("X-Amz-Security-Token="), token);
                        assert_eq!(url.url.contains("x-amz-checksum-sha256"), checksum);
                        assert!(
                            url.url
                                .contains(&format!("partNumber={}&", target.part_number))
                        );
                        let names: Vec<&str> =
                            url.headers.iter().map(|(n, _)| n.as_str()).collect();
                        assert!(names.contains(&"content-length"));
                        assert_eq!(names.contains(&"x-amz-checksum-sha256"), checksum);
                        seen += 1;
                    }
                    // Distinct parts, distinct signatures.
                    assert_ne!(batch[1].url, batch[2].url);
                    if endpoint.is_none() {
                        let host = if path_style {
                            "https://s3.eu-west-3.amazonaws.com/files-bucket/"
                        } else {
                            "https://files-bucket.s3.eu-west-3.amazonaws.com/"
                        };
                        assert!(batch[1].url.starts_with(host));
                    }
                }
            }
        }
    }
    assert_eq!(seen, 2 * 2 * 2 * 3 * 4);
}

#[tokio::test]
async fn a_batch_of_mixed_uploads_still_signs_each_part_as_the_sdk_does() {
    // Not what the service asks (one upload a batch), but the trait allows it: a part of
    // another upload, or without the checksum the first part had, goes through the SDK.
    let owner = OwnerId::parse("alice").unwrap();
    let key = ObjectKey::for_file(&owner, FileId::new_random());
    let other = ObjectKey::for_file(&owner, FileId::new_random());
    let validity = Validity {
        start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_599),
        lifetime: Duration::from_secs(60),
    };
    let bucket = bucket(&Case {
        token: true,
        path_style: false,
        endpoint: None,
    });
    let mut targets = targets(&key, true);
    targets[1].key = &other;
    targets[2].sha256 = None;
    targets[3].upload_id = "another";
    let batch = bucket.presign_parts(&targets, validity).await.unwrap();
    for (target, url) in targets.iter().zip(&batch) {
        same(url, &bucket.presign_part(*target, validity).await.unwrap());
    }
}
