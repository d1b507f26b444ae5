mod support;

use lambda_http::http::StatusCode;
use support::*;

#[tokio::test]
async fn probe() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let reservation = api.reserve("alice", "a.txt", "text/plain", b"hello").await;
    println!("{reservation:#}");
    let response = upload(&reservation, b"hello").await;
    println!("{:?} {}", response.status(), response.text().await.unwrap());
    let id = reservation["file"]["id"].as_str().unwrap();
    let answer = api
        .call(
            "POST",
            &format!("/files/{id}/complete"),
            Some("alice"),
            None,
        )
        .await;
    println!("{answer:?}");
    let answer = api
        .call(
            "GET",
            &format!("/files/{id}/download-url"),
            Some("alice"),
            None,
        )
        .await;
    println!("{answer:?}");
    assert_eq!(answer.status, StatusCode::OK);
}
