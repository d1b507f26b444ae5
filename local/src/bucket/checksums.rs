//! The checksums an UploadPart declares in its headers (`Content-MD5`, `x-amz-checksum-*`),
//! verified over the part's bytes as they stream in, as S3 does ("UploadPart", Amazon S3 API
//! Reference: BadDigest); s3s-fs 0.14.1 checks none for a part.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::*;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// The checksums a part's headers declare.
pub(super) struct DeclaredChecksums {
    content_md5: Option<String>,
    pub(super) checksums: Checksum,
}

/// The digests of a body as it streams past, for the algorithms that were declared.
#[derive(Default)]
pub(super) struct PartHasher {
    md5: Option<Md5>,
    checksums: ChecksumHasher,
}

impl DeclaredChecksums {
    pub(super) fn of(input: &UploadPartInput) -> Self {
        Self {
            content_md5: input.content_md5.clone(),
            checksums: Checksum {
                checksum_crc32: input.checksum_crc32.clone(),
                checksum_crc32c: input.checksum_crc32c.clone(),
                checksum_crc64nvme: input.checksum_crc64nvme.clone(),
                checksum_sha1: input.checksum_sha1.clone(),
                checksum_sha256: input.checksum_sha256.clone(),
                ..Checksum::default()
            },
        }
    }

    pub(super) fn hasher(&self) -> PartHasher {
        let c = &self.checksums;
        PartHasher {
            md5: self.content_md5.as_ref().map(|_| Md5::new()),
            checksums: ChecksumHasher {
                crc32: c.checksum_crc32.as_ref().map(|_| Default::default()),
                crc32c: c.checksum_crc32c.as_ref().map(|_| Default::default()),
                sha1: c.checksum_sha1.as_ref().map(|_| Default::default()),
                sha256: c.checksum_sha256.as_ref().map(|_| Default::default()),
                crc64nvme: c.checksum_crc64nvme.as_ref().map(|_| Default::default()),
            },
        }
    }

    pub(super) fn verify(&self, hasher: PartHasher) -> S3Result<()> {
        use base64::Engine as _;
        let md5 = hasher
            .md5
            .map(|md5| base64::engine::general_purpose::STANDARD.encode(md5.finalize()));
        let got = hasher.checksums.finalize();
        let c = &self.checksums;
        let matches = md5 == self.content_md5
            && got.checksum_crc32 == c.checksum_crc32
            && got.checksum_crc32c == c.checksum_crc32c
            && got.checksum_sha1 == c.checksum_sha1
            && got.checksum_sha256 == c.checksum_sha256
            && got.checksum_crc64nvme == c.checksum_crc64nvme;
        if matches {
            Ok(())
        } else {
            Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                "a checksum of the part does not match",
            ))
        }
    }
}

/// A part's body, hashed as s3s-fs reads it.
pub(super) struct Hashing {
    pub(super) body: StreamingBlob,
    pub(super) hasher: Arc<Mutex<PartHasher>>,
}

impl Stream for Hashing {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.body).poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            let mut hasher = self.hasher.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(md5) = &mut hasher.md5 {
                md5.update(bytes);
            }
            hasher.checksums.update(bytes);
        }
        polled
    }
}

impl ByteStream for Hashing {
    fn remaining_length(&self) -> RemainingLength {
        self.body.remaining_length()
    }
}
