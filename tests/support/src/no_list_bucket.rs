//! A wire-level front for s3s-fs that answers HeadObject on a missing key as S3 answers the
//! deployed roles. Neither role has `s3:ListBucket`, and without it S3 answers 403 Forbidden
//! instead of 404 Not Found for a key with no object (Amazon S3 API Reference, HeadObject,
//! "Permissions": "If you don't have the s3:ListBucket permission, Amazon S3 returns an HTTP
//! status code 403 Forbidden error"). s3s-fs has no IAM and always answers 404.
//!
//! Everything else passes through byte for byte, the `Host` header included, so SigV4 signatures
//! (of the SDK's requests and of presigned URLs) still verify at s3s-fs. One request per
//! connection: the request is forwarded with `connection: close` (a header no signature covers)
//! and the response is read to its end.

use std::net::Ipv4Addr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The front's task, stopped when the stand-ins go.
pub struct NoListBucketFront {
    pub endpoint: String,
    task: JoinHandle<()>,
}

impl Drop for NoListBucketFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NoListBucketFront {
    /// Listens on a free loopback port (bound here, so no other stand-in can take it) and
    /// forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a free loopback port");
        let port = listener.local_addr().expect("bound address").port();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream.clone()));
            }
        });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            task,
        }
    }
}

async fn relay(mut client: TcpStream, upstream: String) {
    let response = match forward(&mut client, &upstream).await {
        Ok(response) => response,
        // Makes the test's request fail visibly rather than hang.
        Err(why) => format!(
            "HTTP/1.1 502 Bad Gateway\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{why}",
            why.len()
        )
        .into_bytes(),
    };
    let _ = client.write_all(&response).await;
    let _ = client.shutdown().await;
}

async fn forward(client: &mut TcpStream, upstream: &str) -> Result<Vec<u8>, String> {
    let mut request = Vec::new();
    let head_end = loop {
        if let Some(end) = find(&request, b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the client closed before a request head".into());
        }
        request.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(request[..head_end].to_vec()).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let method = request_line
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut content_length = 0usize;
    let mut forwarded = format!("{request_line}\r\n");
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').ok_or("a malformed header line")?;
        match name.trim().to_ascii_lowercase().as_str() {
            "connection" => continue,
            "transfer-encoding" => return Err("chunked request bodies are not relayed".into()),
            "content-length" => {
                content_length = value.trim().parse().map_err(|_| "a bad content-length")?
            }
            _ => {}
        }
        forwarded.push_str(line);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("connection: close\r\n\r\n");
    let mut body = request[head_end..].to_vec();
    while body.len() < content_length {
        let mut chunk = [0u8; 65536];
        let n = client.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the client closed inside the body".into());
        }
        body.extend_from_slice(&chunk[..n]);
    }

    let mut server = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    server
        .write_all(forwarded.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    server.write_all(&body).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    server
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;

    // A HEAD answer has no body: only the status line changes.
    let status_end = find(&response, b"\r\n").ok_or("a response without a status line")?;
    if method == "HEAD" && response.starts_with(b"HTTP/1.1 404") {
        response.splice(..status_end, b"HTTP/1.1 403 Forbidden".iter().copied());
    }
    Ok(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
