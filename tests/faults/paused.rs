//! The real stand-ins stopped mid-run (SIGSTOP) and a backend that stalls mid-request: 503s,
//! nothing lost, and every request cut by its invocation deadline.

use super::*;

/// Pauses a stand-in with SIGSTOP; it resumes when this guard goes, whatever happens.
struct Paused(u32);

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

impl Paused {
    fn pause(child: &support::ChildGuard) -> Self {
        signal(child.0.id(), "-STOP");
        Self(child.0.id())
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

/// The answer, or a failure naming `what` if there is none after a minute: a guard against a
/// hang, not a timing assertion (the bounds that make the answer come are the clients'
/// configuration, checked in `src/aws.rs`; this test starts its own moto on a shared machine).
async fn answered(what: &str, future: impl std::future::Future<Output = Answer>) -> Answer {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within a minute"))
}

/// `call` until it answers `status`, for up to a minute: a resumed stand-in first works through
/// the connections the paused period left behind.
async fn until_status(api: &TestApi, method: &str, path: &str, status: u16) -> Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = api.call(method, path, Some("alice"), None).await;
        if answer.status.as_u16() == status || tokio::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn listed_ids(answer: &Answer) -> std::collections::BTreeSet<String> {
    answer.body["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn paused_stand_ins_are_503_and_nothing_is_lost() {
    let standins = support::StandIns::start().await;
    let api = standins.api();
    let stored = api
        .stored_file("alice", "a.txt", "text/plain", b"abc")
        .await;
    let pending = api.reserve("alice", "b.txt", "text/plain", b"def").await;
    assert_eq!(support::upload(&pending, b"def").await.status(), 200);
    let pending = support::file_id(&pending);
    let before = listed_ids(&api.call("GET", "/files", Some("alice"), None).await);
    assert_eq!(before.len(), 2);

    // DynamoDB paused: download-url is a clear 503, never a URL.
    let download = format!("/files/{stored}/download-url");
    {
        let _paused = Paused::pause(&standins.dynamodb);
        let answer = answered(
            "download-url with DynamoDB paused",
            api.call("GET", &download, Some("alice"), None),
        )
        .await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (503, "unavailable"),
            "{answer:?}"
        );
        assert_eq!(answer.headers["retry-after"], "1");
        assert!(answer.body.get("url").is_none());
    }
    let answer = until_status(&api, "GET", &download, 200).await;
    assert_eq!(answer.status, StatusCode::OK, "recovered: {answer:?}");
    assert!(answer.body["url"].as_str().is_some());

    // S3 paused during complete: 503, and the record stays pending rather than half-done.
    let complete = format!("/files/{pending}/complete");
    {
        let _paused = Paused::pause(&standins.s3);
        let answer = answered(
            "complete with S3 paused",
            api.call("POST", &complete, Some("alice"), None),
        )
        .await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (503, "unavailable"),
            "{answer:?}"
        );
        let record = api
            .call("GET", &format!("/files/{pending}"), Some("alice"), None)
            .await;
        assert_eq!(record.body["file"]["status"], "pending", "{record:?}");
    }
    let answer = until_status(&api, "POST", &complete, 200).await;
    assert_eq!(answer.status, StatusCode::OK, "recovered: {answer:?}");
    assert_eq!(answer.body["file"]["status"], "available");

    // Nothing reserved before the faults was lost, and both files download.
    let after = listed_ids(&api.call("GET", "/files", Some("alice"), None).await);
    assert_eq!(after, before);
    for id in [&stored, &pending] {
        let answer = api.download_url("alice", id, "").await;
        let url = answer.body["url"].as_str().expect("download url");
        let response = support::http_client().get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// Issue 11, point 7: with the production SDK bounds (2 s an attempt, 6 s a call, 3 attempts), a
/// backend that stops answering at the second or third call of a request would hold it for 6 s
/// or more; the invocation's deadline, 4 s away here, cuts it first. The fake backend hangs at
/// `target` (after answering the calls before it), and the answer must arrive, as a 503 with
/// `Retry-After`, before the invocation's deadline: it can only have come from that deadline.
#[tokio::test]
async fn a_backend_that_stalls_mid_request_is_cut_by_the_invocation_deadline() {
    const INVOCATION_REMAINING: Duration = Duration::from_secs(4);
    let mut runs = Vec::new();
    // (the call site that stalls, its place in the request)
    for (site, place) in [
        ("HeadObject", 2),
        ("TransactWriteItems (confirm)", 3),
        ("DeleteObject", 3),
        ("TransactWriteItems (delete)", 4),
    ] {
        runs.push(tokio::spawn(async move {
            let scenario = scenario(site);
            assert_eq!(scenario.before.len() + 1, place, "{site}");
            let (endpoint, log) = fake_backend(Script {
                target: scenario.operation,
                fault: Fault::Timeout,
                status: scenario.status,
                multipart: false,
            })
            .await;
            let api = api_loaded_by(&endpoint, presign_gate::aws::config_loader()).await;
            let body = scenario.body.map(|b| b.to_string());
            let event = http_api_event(scenario.method, &scenario.path, Some("alice"), body);
            let answer = tokio::time::timeout(
                INVOCATION_REMAINING,
                api.send_event_within(&event, INVOCATION_REMAINING),
            )
            .await
            .unwrap_or_else(|_| panic!("{site}: no answer before the invocation's deadline"));
            assert_eq!(
                (answer.status.as_u16(), answer.error_code()),
                (503, "unavailable"),
                "{site}: {answer:?}"
            );
            assert_eq!(answer.headers["retry-after"], "1", "{site}");
            let seen = log.lock().unwrap().clone();
            let before = &scenario.before;
            assert_eq!(seen[..before.len()], before[..], "{site}: {seen:?}");
            assert_eq!(
                seen.get(before.len()).map(String::as_str),
                Some(scenario.operation),
                "{site}: {seen:?}"
            );
        }));
    }
    for run in runs {
        run.await.unwrap();
    }
}
