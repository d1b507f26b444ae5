//! Each API route end to end through `Api::handle`, as the Lambda runtime calls it: identity,
//! routing, parsing, the store (DynamoDB answered by `aws-smithy-mocks`, so the SDK's request
//! building, signing and response parsing all run), real presigning, the response and the audit
//! log. The API Gateway event is parsed outside the timed part: that is the runtime's work.
//! `make bench` runs it.

use presign_gate_test_support::mocked;
mod support;

use std::hint::black_box;

use criterion::{BatchSize, Criterion};
use mocked::{MockedApi, request, reservation};
use serde_json::{Value, json};

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The audit log goes where the function's goes (stdout), but to a sink: its formatting is
    // part of every request's cost.
    let _log = tracing::subscriber::set_default(presign_gate::telemetry::subscriber(
        std::io::sink,
        Some("info"),
    ));
    let mocked = runtime.block_on(MockedApi::new());
    // The same API whose caller's ledger is as large as a ledger gets (13 tallies: issue 21).
    let full_ledger = runtime.block_on(MockedApi::with_quirks(mocked::Quirks {
        ledger_tallies: 13,
        ..mocked::Quirks::default()
    }));
    let available = mocked.available[0];
    let pending = mocked.pending;
    let multipart = mocked.multipart;
    let batch: Vec<String> = mocked.available.iter().map(ToString::to_string).collect();
    // Part URLs one at a time, and a hundred in one request (issue 13): per part, the second is
    // the one read and one invocation shared by a hundred signatures.
    let parts = |count: u32| json!({ "parts": (1..=count).map(|n| json!({ "partNumber": n })).collect::<Vec<_>>() });

    let routes: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        (
            "POST /uploads",
            "POST",
            "/uploads".into(),
            Some(reservation()),
            201,
        ),
        (
            "GET /files/{id}/download-url",
            "GET",
            format!("/files/{available}/download-url"),
            None,
            200,
        ),
        (
            "POST /files/download-urls (10 ids)",
            "POST",
            "/files/download-urls".into(),
            Some(json!({ "ids": batch })),
            200,
        ),
        (
            "POST /files/{id}/complete",
            "POST",
            format!("/files/{pending}/complete"),
            None,
            200,
        ),
        (
            "POST /files/{id}/parts (1 part)",
            "POST",
            format!("/files/{multipart}/parts"),
            Some(parts(1)),
            200,
        ),
        (
            "POST /files/{id}/parts (100 parts)",
            "POST",
            format!("/files/{multipart}/parts"),
            Some(parts(100)),
            200,
        ),
        (
            "GET /files/{id}",
            "GET",
            format!("/files/{available}"),
            None,
            200,
        ),
        ("GET /files", "GET", "/files?limit=50".into(), None, 200),
        (
            "DELETE /files/{id}",
            "DELETE",
            format!("/files/{available}"),
            None,
            204,
        ),
        (
            "POST /uploads refused by validation",
            "POST",
            "/uploads".into(),
            Some(
                json!({ "filename": "x.exe", "contentType": "application/x-msdownload", "size": 1 }),
            ),
            400,
        ),
    ];

    let mut group = c.benchmark_group("route");
    for (name, method, path, body, status) in routes {
        // Once outside the measurement: the route answers what it should.
        let (answered, _) = runtime.block_on(mocked.call(request(method, &path, body.clone())));
        assert_eq!(answered, status, "{name}");
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_batched(
                || request(method, &path, body.clone()),
                |request| async { black_box(mocked.api.handle(request).await) },
                BatchSize::SmallInput,
            )
        });
    }
    // A reservation reads and writes the whole ledger: its cost with the largest one.
    let name = "POST /uploads, the largest ledger (13 tallies)";
    let (answered, _) =
        runtime.block_on(full_ledger.call(request("POST", "/uploads", Some(reservation()))));
    assert_eq!(answered, 201, "{name}");
    group.bench_function(name, |b| {
        b.to_async(&runtime).iter_batched(
            || request("POST", "/uploads", Some(reservation())),
            |request| async { black_box(full_ledger.api.handle(request).await) },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn main() {
    support::run(benches);
}
