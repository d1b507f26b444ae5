//! Signature Version 4 of a request signed in its `Authorization` header, as AWS verifies it
//! (IAM User Guide, "Elements of an AWS API request signature", "Create a signed AWS API
//! request"): the canonical request over the signed headers and the payload's SHA-256, the string
//! to sign, the key derived from the secret, date, region and service. s3s verifies S3's
//! signatures; this verifies the local DynamoDB's, whose requests are a POST of JSON to `/`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::hex;
use crate::iam::{Authorizer, Principal};

/// Why a request's signature was not accepted: the error code (as DynamoDB and EventBridge name
/// it) and message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// The principal who signed a request (a POST of JSON to `/`, signed in its `Authorization`
/// header with one of `secrets`' key pairs), or why it is refused.
pub fn authenticate<'a>(
    authorizer: &'a Authorizer,
    secrets: &std::collections::HashMap<String, String>,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<&'a Principal, Refusal> {
    let refusal = |code, message: String| Refusal { code, message };
    let signature = HeaderSignature::parse(&parts.headers)
        .map_err(|error| refusal("MissingAuthenticationTokenException", error.to_string()))?;
    let (Some(secret), Some(principal)) = (
        secrets.get(&signature.access_key),
        authorizer.principal(&signature.access_key),
    ) else {
        return Err(refusal(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".into(),
        ));
    };
    signature
        .verify(
            secret,
            &parts.method,
            parts.uri.path(),
            &parts.headers,
            body,
        )
        .map_err(|error| refusal("InvalidSignatureException", error.to_string()))?;
    Ok(principal)
}

/// How far a request's `X-Amz-Date` may be from now: AWS refuses older and later ones with
/// "Signature expired" (15 minutes).
const ALLOWED_SKEW: time::Duration = time::Duration::minutes(15);

/// A header signature, parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct HeaderSignature {
    pub access_key: String,
    /// `yyyymmdd/region/service/aws4_request`
    scope: String,
    signed_headers: Vec<String>,
    signature: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Request is missing Authentication Token")]
    Missing,
    #[error("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'")]
    Malformed,
    #[error(
        "Signature expired or not yet valid: the request's date is more than 15 minutes from now"
    )]
    Expired,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl HeaderSignature {
    pub fn parse(headers: &http::HeaderMap) -> Result<Self, SignatureError> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or(SignatureError::Missing)?
            .to_str()
            .map_err(|_| SignatureError::Malformed)?;
        let fields = value
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or(SignatureError::Malformed)?;
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for field in fields.split(',') {
            match field.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => return Err(SignatureError::Malformed),
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) =
            (credential, signed_headers, signature)
        else {
            return Err(SignatureError::Malformed);
        };
        let (access_key, scope) = credential
            .split_once('/')
            .ok_or(SignatureError::Malformed)?;
        Ok(Self {
            access_key: access_key.to_owned(),
            scope: scope.to_owned(),
            signed_headers: signed_headers.split(';').map(str::to_owned).collect(),
            signature: signature.to_owned(),
        })
    }

    /// Checks the signature of a request with an empty query, made with `secret_key`.
    pub fn verify(
        &self,
        secret_key: &str,
        method: &http::Method,
        path: &str,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let amz_date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or(SignatureError::Malformed)?;
        let format = format_description!("[year][month][day]T[hour][minute][second]Z");
        let signed_at = time::PrimitiveDateTime::parse(amz_date, format)
            .map_err(|_| SignatureError::Malformed)?
            .assume_utc();
        if (OffsetDateTime::now_utc() - signed_at).abs() > ALLOWED_SKEW {
            return Err(SignatureError::Expired);
        }
        let mut parts = self.scope.split('/');
        let (Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SignatureError::Malformed);
        };
        if !amz_date.starts_with(date) {
            return Err(SignatureError::Mismatch);
        }
        let mut canonical_headers = String::new();
        for name in &self.signed_headers {
            let values: Vec<String> = headers
                .get_all(name.as_str())
                .iter()
                .map(|v| {
                    String::from_utf8_lossy(v.as_bytes())
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            if values.is_empty() {
                return Err(SignatureError::Mismatch);
            }
            canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
        }
        let canonical_request = format!(
            "{method}\n{path}\n\n{canonical_headers}\n{}\n{}",
            self.signed_headers.join(";"),
            hex(&Sha256::digest(body))
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
            self.scope,
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let key = [date, region, service, "aws4_request"]
            .iter()
            .fold(format!("AWS4{secret_key}").into_bytes(), |key, part| {
                hmac(&key, part)
            });
        let expected = hex(&hmac(&key, &string_to_sign));
        // Constant time: the comparison must not tell how much of a guess was right.
        let same = expected.len() == self.signature.len()
            && expected
                .bytes()
                .zip(self.signature.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the IAM User Guide's "Signature Version 4 test suite" style: a request
    /// signed here by the same steps, then one byte of each input changed.
    fn signed(secret: &str, body: &[u8]) -> (http::HeaderMap, String) {
        let now = OffsetDateTime::now_utc();
        let format = format_description!("[year][month][day]T[hour][minute][second]Z");
        let amz_date = now.format(format).unwrap();
        let date = &amz_date[..8];
        let mut headers = http::HeaderMap::new();
        headers.insert("host", "127.0.0.1:1".parse().unwrap());
        headers.insert("x-amz-date", amz_date.parse().unwrap());
        headers.insert("x-amz-target", "DynamoDB_20120810.GetItem".parse().unwrap());
        let canonical = format!(
            "POST\n/\n\nhost:127.0.0.1:1\nx-amz-date:{amz_date}\nx-amz-target:DynamoDB_20120810.GetItem\n\nhost;x-amz-date;x-amz-target\n{}",
            hex(&Sha256::digest(body))
        );
        let scope = format!("{date}/us-east-1/dynamodb/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let key = [date, "us-east-1", "dynamodb", "aws4_request"]
            .iter()
            .fold(format!("AWS4{secret}").into_bytes(), |k, p| hmac(&k, p));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=AKID/{scope}, SignedHeaders=host;x-amz-date;x-amz-target, Signature={}",
            hex(&hmac(&key, &to_sign))
        );
        headers.insert("authorization", authorization.parse().unwrap());
        (headers, amz_date)
    }

    #[test]
    fn a_signature_verifies_only_with_the_same_key_body_and_headers() {
        let (headers, _) = signed("secret", b"{}");
        let signature = HeaderSignature::parse(&headers).unwrap();
        assert_eq!(signature.access_key, "AKID");
        let post = http::Method::POST;
        assert_eq!(
            signature.verify("secret", &post, "/", &headers, b"{}"),
            Ok(())
        );
        assert_eq!(
            signature.verify("other", &post, "/", &headers, b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            signature.verify("secret", &post, "/", &headers, b"{ }"),
            Err(SignatureError::Mismatch)
        );
        let mut changed = headers.clone();
        changed.insert(
            "x-amz-target",
            "DynamoDB_20120810.DeleteItem".parse().unwrap(),
        );
        assert_eq!(
            signature.verify("secret", &post, "/", &changed, b"{}"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_old_signature_is_expired() {
        let (mut headers, _) = signed("secret", b"{}");
        headers.insert("x-amz-date", "20200101T000000Z".parse().unwrap());
        let signature = HeaderSignature::parse(&headers).unwrap();
        assert_eq!(
            signature.verify("secret", &http::Method::POST, "/", &headers, b"{}"),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            HeaderSignature::parse(&http::HeaderMap::new()),
            Err(SignatureError::Missing)
        );
    }
}
