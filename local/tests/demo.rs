//! The demo page's server: its files with the right types, nothing else.

mod support;

use local_aws::DemoSite;
use reqwest::StatusCode;
use support::{Options, Stack, http};

#[tokio::test]
async fn serves_the_demo_the_client_and_the_vendor_files_and_nothing_more() {
    let site = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let path = site.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    };
    let (demo, client, vendor) = (dir("demo"), dir("client"), dir("vendor"));
    std::fs::write(
        demo.join("index.html"),
        "<!doctype html><title>demo</title>",
    )
    .unwrap();
    std::fs::write(demo.join("app.js"), "export {};").unwrap();
    std::fs::create_dir_all(demo.join("empty")).unwrap();
    std::fs::write(
        client.join("presign-gate.js"),
        "export class PresignGate {}",
    )
    .unwrap();
    std::fs::write(client.join("presign-gate.d.ts"), "export {};").unwrap();
    std::fs::write(vendor.join("uppy.min.mjs"), "export {};").unwrap();
    std::fs::write(site.path().join("secret.txt"), "outside").unwrap();

    let stack = Stack::start(Options {
        demo: Some(DemoSite {
            demo_dir: demo,
            client_dir: client,
            vendor_dir: Some(vendor),
        }),
        ..Options::default()
    })
    .await;
    let base = stack.demo_origin();
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move { http().get(url).send().await.unwrap() }
    };
    let content_type =
        |r: &reqwest::Response| r.headers()["content-type"].to_str().unwrap().to_owned();

    let index = get("/").await;
    assert_eq!(index.status(), StatusCode::OK);
    assert!(content_type(&index).starts_with("text/html"));
    for path in ["/app.js", "/client/presign-gate.js", "/vendor/uppy.min.mjs"] {
        let module = get(path).await;
        assert_eq!(module.status(), StatusCode::OK, "{path}");
        assert_eq!(content_type(&module), "text/javascript", "{path}");
    }
    assert_eq!(
        get("/client/presign-gate.d.ts").await.status(),
        StatusCode::OK
    );

    // No listing of a directory without an index.
    for path in ["/empty/", "/client/", "/nothing"] {
        let refused = get(path).await;
        assert_eq!(refused.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Nothing outside the served directories, however the path climbs (sent as written: an
    // HTTP client would resolve the dots first).
    let address = stack.aws.demo.unwrap();
    for path in [
        "/../secret.txt",
        "/client/../../secret.txt",
        "/vendor/%2e%2e/%2e%2e/secret.txt",
        "/client/..%2f..%2fsecret.txt",
    ] {
        let status = raw_get(address, path).await;
        assert!(status.starts_with("HTTP/1.1 4"), "{path}: {status}");
    }
}

/// The status line of a GET of `path` exactly as written.
async fn raw_get(address: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(!answer.contains("outside"), "{path}: {answer}");
    answer.lines().next().unwrap_or_default().to_owned()
}
