//! UploadPart URLs for a batch of parts, signed here from one URL the SDK signed.
//!
//! A presign through the SDK costs tens of microseconds, nearly all of it the same for every part
//! of one upload: the operation's setup, the endpoint, the interceptors, the signing key of the
//! day. The parts of one batch share the key, the upload id, the credentials, the date and the
//! expiry; they differ only in `partNumber` and in the values of the signed `content-length` and
//! `x-amz-checksum-sha256` headers. So the SDK signs the batch's first part, and this module
//! signs the others by the same SigV4 query-string rules ("Authenticating Requests: Using Query
//! Parameters (AWS Signature Version 4)", Amazon S3 API Reference), reusing everything that URL
//! fixed: the endpoint and addressing style, the query parameters in the SDK's order and
//! encoding, the signed header names, the credential scope and the derived signing key.
//!
//! Nothing here decides what is signed: the template says it. Before any part is signed, the
//! template's own part is signed again here and must reproduce the SDK's signature exactly;
//! otherwise (a future SDK that signs differently) `from_template` gives up and every part goes
//! through the SDK, as before.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::{PartTarget, PresignedRequest};

/// SigV4's URI encoding: everything but the unreserved characters (`A-Z a-z 0-9 - _ . ~`), as
/// the SDK's query formatting does.
const URI_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// S3 presigned URLs never sign the body (the URL is made before the body exists).
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const PART_NUMBER: &str = "partNumber";
const SIGNATURE: &str = "X-Amz-Signature";
const CONTENT_LENGTH: &str = "content-length";
const CHECKSUM: &str = "x-amz-checksum-sha256";

/// What a signed header's value is, part by part.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Host,
    ContentLength,
    Checksum,
}

/// Signs the other parts of one upload like the template. Holds the day's signing key: no
/// `Debug`, and never logged.
pub(super) struct PartSigner {
    key: String,
    upload_id: String,
    method: String,
    /// The template's URL around the part number and the signature: `head`, number, `middle`,
    /// signature, `tail`.
    url_head: String,
    url_middle: String,
    url_tail: String,
    /// The canonical request's method, path and sorted query up to the part number's value, and
    /// the rest of the query after it (ending in the newline).
    canonical_head: String,
    canonical_query_tail: String,
    host: String,
    /// The signed header names in canonical (sorted) order, with what each holds.
    signed: Vec<(String, Slot)>,
    /// `X-Amz-SignedHeaders`' value, as it goes into the canonical request.
    signed_headers: String,
    /// The headers the browser must send, in the SDK's order.
    headers: Vec<(String, Slot)>,
    /// The string to sign up to the canonical request's hash.
    string_to_sign_head: String,
    signing_key: HmacSha256,
    expires_at: time::OffsetDateTime,
}

impl PartSigner {
    /// A signer for the other parts of `target`'s upload, from the SDK's URL for `target`, signed
    /// with `secret_access_key`. `None` when the URL is not one this module can reproduce
    /// exactly: its part is signed again here and must give the SDK's very signature.
    pub(super) fn from_template(
        template: &PresignedRequest,
        target: &PartTarget<'_>,
        secret_access_key: &str,
    ) -> Option<Self> {
        // The SDK appends the session token after the signature, and signs it or not by its
        // settings (signed by default for S3): whichever reproduces the template is the one.
        Self::build(template, target, secret_access_key, true)
            .or_else(|| Self::build(template, target, secret_access_key, false))
    }

    /// `from_template`, with the parameters after the signature signed or not.
    fn build(
        template: &PresignedRequest,
        target: &PartTarget<'_>,
        secret_access_key: &str,
        trailing_signed: bool,
    ) -> Option<Self> {
        let url = template.url.as_str();
        let (before_query, query) = url.split_once('?')?;
        let (scheme, rest) = before_query.split_once("://")?;
        let (authority, path) = rest.split_at(rest.find('/')?);
        // The `host` header as the SDK signs it: without the scheme's default port.
        let host = match (scheme, authority.rsplit_once(':')) {
            ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host,
            _ => authority,
        };

        // The query in the URL's order: the SDK's parameters and the signing ones, the
        // signature, then the session token if any. The part number comes once, before the
        // signature.
        let pairs: Vec<(&str, &str)> = query
            .split('&')
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .collect();
        let at = pairs.iter().position(|(name, _)| *name == SIGNATURE)?;
        let (others, after) = pairs.split_at(at);
        let signature = after.first()?.1;
        if pairs.iter().filter(|(n, _)| *n == SIGNATURE).count() != 1
            || others.iter().filter(|(n, _)| *n == PART_NUMBER).count() != 1
        {
            return None;
        }
        let find = |name: &str| {
            others
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| decode(v))
        };
        let date_time = find("X-Amz-Date")?;
        let credential = find("X-Amz-Credential")?;
        let signed_headers = find("X-Amz-SignedHeaders")?;
        if find("X-Amz-Algorithm")? != ALGORITHM {
            return None;
        }

        // The URL around the part number's value and the signature's.
        let part_at = url
            .find("&partNumber=")
            .or_else(|| url.find("?partNumber="))?
            + 12;
        let part_end = part_at + url[part_at..].find('&')?;
        let signature_at = url.find("&X-Amz-Signature=")? + 17;
        if signature_at < part_end {
            return None;
        }
        let url_head = url[..part_at].to_owned();
        let url_middle = url[part_end..signature_at].to_owned();
        let url_tail = url[signature_at + signature.len()..].to_owned();

        // The canonical query: every signed parameter, decoded as the SDK reads it and encoded
        // again by SigV4's rules, sorted by encoded name and value.
        let trailing = if trailing_signed { &after[1..] } else { &[] };
        let mut canonical: Vec<(String, String)> = others
            .iter()
            .chain(trailing)
            .map(|(n, v)| Some((encode(&decode(n)?), encode(&decode(v)?))))
            .collect::<Option<_>>()?;
        canonical.sort();
        let at = canonical.iter().position(|(n, _)| n == PART_NUMBER)?;
        let join = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        let before = join(&canonical[..at]);
        let rest = join(&canonical[at + 1..]);
        let canonical_head = format!(
            "{}\n{path}\n{before}{}{PART_NUMBER}=",
            template.method,
            if before.is_empty() { "" } else { "&" }
        );
        let canonical_query_tail = if rest.is_empty() {
            "\n".to_owned()
        } else {
            format!("&{rest}\n")
        };

        let slot = |name: &str| match name {
            "host" => Some(Slot::Host),
            CONTENT_LENGTH => Some(Slot::ContentLength),
            CHECKSUM => Some(Slot::Checksum),
            _ => None,
        };
        let signed: Vec<(String, Slot)> = signed_headers
            .split(';')
            .map(|name| Some((name.to_owned(), slot(name)?)))
            .collect::<Option<_>>()?;
        let headers: Vec<(String, Slot)> = template
            .headers
            .iter()
            .map(|(name, _)| Some((name.clone(), slot(name)?)))
            .collect::<Option<_>>()?;

        // The scope is the credential after the access key id: date/region/service/aws4_request.
        let (_, scope) = credential.split_once('/')?;
        let mut parts = scope.split('/');
        let (day, region, service) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next()? != "aws4_request" || parts.next().is_some() {
            return None;
        }
        let signing_key = signing_key(secret_access_key, day, region, service);

        let signer = Self {
            key: target.key.as_str().to_owned(),
            upload_id: target.upload_id.to_owned(),
            method: template.method.clone(),
            url_head,
            url_middle,
            url_tail,
            canonical_head,
            canonical_query_tail,
            host: host.to_owned(),
            signed,
            signed_headers,
            headers,
            string_to_sign_head: format!("{ALGORITHM}\n{date_time}\n{scope}\n"),
            signing_key,
            expires_at: template.expires_at,
        };
        // The proof: the template's own part, signed here, gives the SDK's URL and headers.
        let again = signer.sign(target)?;
        (again.url == template.url && again.headers == template.headers).then_some(signer)
    }

    /// The URL of another part of the same upload; `None` for one this signer cannot sign as the
    /// SDK would (another upload, a checksum where the template had none or the reverse, a value
    /// that is no valid header), which the caller then signs through the SDK.
    pub(super) fn sign(&self, target: &PartTarget<'_>) -> Option<PresignedRequest> {
        if target.key.as_str() != self.key
            || target.upload_id != self.upload_id
            || i32::try_from(target.part_number).is_err()
            || i64::try_from(target.content_length).is_err()
        {
            return None;
        }
        let has_checksum = self.signed.iter().any(|(_, slot)| *slot == Slot::Checksum);
        // A base64 SHA-256 (the service checks it first) needs no trimming or escaping in a
        // canonical header; anything else is left to the SDK.
        match target.sha256 {
            Some(sha) if has_checksum && is_base64(sha) => {}
            None if !has_checksum => {}
            _ => return None,
        }
        let number = itoa(u64::from(target.part_number));
        let length = itoa(target.content_length);
        let value = |slot: Slot| match slot {
            Slot::Host => self.host.as_str(),
            Slot::ContentLength => length.as_str(),
            Slot::Checksum => target.sha256.unwrap_or_default(),
        };

        let mut canonical = String::with_capacity(self.canonical_head.len() + 512);
        canonical.push_str(&self.canonical_head);
        canonical.push_str(&number);
        canonical.push_str(&self.canonical_query_tail);
        for (name, slot) in &self.signed {
            canonical.push_str(name);
            canonical.push(':');
            canonical.push_str(value(*slot));
            canonical.push('\n');
        }
        canonical.push('\n');
        canonical.push_str(&self.signed_headers);
        canonical.push('\n');
        canonical.push_str(UNSIGNED_PAYLOAD);

        let mut string_to_sign = String::with_capacity(self.string_to_sign_head.len() + 64);
        string_to_sign.push_str(&self.string_to_sign_head);
        hex_into(&mut string_to_sign, &Sha256::digest(canonical.as_bytes()));
        let signature = self.signing_key.sign(string_to_sign.as_bytes());

        let mut url = String::with_capacity(
            self.url_head.len() + self.url_middle.len() + self.url_tail.len() + 80,
        );
        url.push_str(&self.url_head);
        url.push_str(&number);
        url.push_str(&self.url_middle);
        hex_into(&mut url, &signature);
        url.push_str(&self.url_tail);
        Some(PresignedRequest {
            method: self.method.clone(),
            url,
            headers: self
                .headers
                .iter()
                .map(|(name, slot)| (name.clone(), value(*slot).to_owned()))
                .collect(),
            expires_at: self.expires_at,
        })
    }
}

fn decode(value: &str) -> Option<String> {
    // As the SDK's signer reads the query (`application/x-www-form-urlencoded`: `+` is a space).
    let value = value.replace('+', " ");
    percent_decode_str(&value)
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, URI_ENCODE).to_string()
}

fn is_base64(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

fn itoa(value: u64) -> String {
    let mut out = String::with_capacity(20);
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
    out
}

fn hex_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

/// SigV4's signing key of the day: HMAC-SHA256 chained over date, region, service and
/// `aws4_request`, from `AWS4` and the secret key.
fn signing_key(secret: &str, day: &str, region: &str, service: &str) -> HmacSha256 {
    let key = HmacSha256::new(format!("AWS4{secret}").as_bytes()).sign(day.as_bytes());
    let key = HmacSha256::new(&key).sign(region.as_bytes());
    let key = HmacSha256::new(&key).sign(service.as_bytes());
    let key = HmacSha256::new(&key).sign(b"aws4_request");
    HmacSha256::new(&key)
}

/// HMAC-SHA256 (RFC 2104) with the key's inner and outer blocks hashed once, so that each
/// signature costs only the message and the outer hash.
#[derive(Clone)]
struct HmacSha256 {
    inner: Sha256,
    outer: Sha256,
}

impl HmacSha256 {
    fn new(key: &[u8]) -> Self {
        let mut block = [0u8; 64];
        if key.len() > block.len() {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let inner = Sha256::new().chain_update(block.map(|b| b ^ 0x36));
        let outer = Sha256::new().chain_update(block.map(|b| b ^ 0x5c));
        Self { inner, outer }
    }

    fn sign(&self, message: &[u8]) -> [u8; 32] {
        let inner = self.inner.clone().chain_update(message).finalize();
        self.outer.clone().chain_update(inner).finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};

    use super::*;
    use crate::bucket::{S3Bucket, Validity};
    use crate::domain::{FileId, ObjectKey, OwnerId};

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// The signer itself (not the SDK fallback, which `tests/part_urls.rs` would accept too)
    /// reproduces the SDK's URL of every part, in every addressing style.
    #[tokio::test]
    async fn the_signer_reproduces_the_sdk_for_every_part() {
        let key = ObjectKey::for_file(&OwnerId::parse("alice").unwrap(), FileId::new_random());
        let validity = Validity {
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_599),
            lifetime: Duration::from_secs(900),
        };
        for token in [None, Some("session/token+=")] {
            for sha256 in [None, Some("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")] {
                for (path_style, endpoint) in [
                    (false, None),
                    (true, None),
                    (true, Some("http://127.0.0.1:4566")),
                ] {
                    let credentials = Credentials::new(
                        "AKIDEXAMPLE",
                        SECRET,
                        token.map(str::to_owned),
                        None,
                        "t",
                    );
                    let mut config = aws_sdk_s3::Config::builder()
                        .behavior_version(BehaviorVersion::latest())
                        .region(Region::new("us-east-1"))
                        .credentials_provider(SharedCredentialsProvider::new(credentials.clone()))
                        .force_path_style(path_style);
                    if let Some(endpoint) = endpoint {
                        config = config.endpoint_url(endpoint);
                    }
                    let bucket = S3Bucket::new(aws_sdk_s3::Client::from_conf(config.build()), "b");
                    let target = |part_number, content_length| PartTarget {
                        key: &key,
                        upload_id: "id~with/odd+chars=",
                        part_number,
                        content_length,
                        sha256,
                    };
                    let sdk = |target| bucket.sdk_part(target, validity, Some(credentials.clone()));
                    let first = target(1, 5 << 20);
                    let template = sdk(first).await.unwrap();
                    let signer = PartSigner::from_template(&template, &first, SECRET)
                        .expect("the SDK's own URL is reproduced");
                    for (n, length) in [(2, 5 << 20), (77, 1), (10_000, 123_456_789)] {
                        let ours = signer.sign(&target(n, length)).unwrap();
                        let theirs = sdk(target(n, length)).await.unwrap();
                        assert_eq!(ours.url, theirs.url);
                        assert_eq!(ours.headers, theirs.headers);
                        assert_eq!(ours.method, theirs.method);
                        assert_eq!(ours.expires_at, theirs.expires_at);
                    }
                    // Another secret would not: the template's check refuses it.
                    assert!(PartSigner::from_template(&template, &first, "other").is_none());
                }
            }
        }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let mac = HmacSha256::new(b"Jefe").sign(b"what do ya want for nothing?");
        let mut hex = String::new();
        hex_into(&mut hex, &mac);
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signing_key_matches_the_aws_example() {
        // "Examples of how to derive a signing key for Signature Version 4" (AWS General
        // Reference): the example secret, 20120215, us-east-1, iam.
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        // The key itself is hidden in the HMAC state: sign the empty message with it, and with
        // the published key.
        let published: Vec<u8> = (0..32)
            .map(|i| {
                u8::from_str_radix(
                    &"f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
                        [2 * i..2 * i + 2],
                    16,
                )
                .unwrap()
            })
            .collect();
        assert_eq!(key.sign(b""), HmacSha256::new(&published).sign(b""));
    }
}
