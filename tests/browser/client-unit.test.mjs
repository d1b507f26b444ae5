// The browser client against a fake fetch and a fake XMLHttpRequest: the request sequence, the
// retry rules, error codes and aborts, without a browser. tests/browser/chromium.test.mjs runs
// the same client in Chromium against the real local stack.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { PresignGate, PresignGateError, parseRetryAfter, browserMaySet } from "../../client/presign-gate.js";
import { Sha256, sha256Base64, toBase64 } from "../../client/sha256.js";
import { randomKey } from "../../client/api.js";
import {
  FILE_ID, EXPIRED_TOKEN, REQUEST_EXPIRED, bytesOf, fakeApi, fakeXhr, forbidLogging, gate, json, multipartApi,
  nodeSha256, partOf, reservation,
} from "./fakes.mjs";

forbidLogging();

test("Sha256 matches node's for every padding boundary and any chunking", () => {
  for (const size of [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 70_001]) {
    const bytes = randomBytes(size);
    const whole = new Sha256().update(bytes).digest();
    assert.equal(toBase64(whole), nodeSha256(bytes), `size ${size}`);
    const chunked = new Sha256();
    for (let offset = 0; offset < size; offset += 37) chunked.update(bytes.subarray(offset, offset + 37));
    assert.equal(toBase64(chunked.digest()), nodeSha256(bytes), `size ${size} in chunks of 37`);
  }
});

test("sha256Base64 gives the same digest through WebCrypto and through the streamed path", async () => {
  const bytes = randomBytes(300_000);
  const blob = new Blob([bytes]);
  assert.equal(await sha256Base64(blob), nodeSha256(bytes));
  assert.equal(await sha256Base64(blob, { wholeBufferLimit: 1000 }), nodeSha256(bytes));
});

test("upload reserves with the digest, PUTs exactly the settable headers, reports progress and confirms", async () => {
  const blob = new Blob(["hello, presign gate\n"], { type: "text/plain" });
  const api = fakeApi([
    (method, url, init) => {
      assert.equal(method, "POST");
      assert.equal(url.pathname, "/prod/uploads");
      assert.equal(init.headers.authorization, "Bearer token-1");
      assert.equal(init.headers["content-type"], "application/json");
      assert.deepEqual(JSON.parse(init.body), {
        filename: "a.txt",
        contentType: "text/plain",
        size: blob.size,
        sha256: nodeSha256(Buffer.from("hello, presign gate\n")),
      });
      return json(201, reservation(blob));
    },
    (method, url) => {
      assert.equal(method, "POST");
      assert.equal(url.pathname, `/prod/files/${FILE_ID}/complete`);
      return json(200, { file: { id: FILE_ID, status: "available" } });
    },
  ]);
  const storage = fakeXhr([(xhr) => xhr.answer(200, { headers: { etag: '"abc"' } })]);
  const { client } = gate(api.fetch, storage.XMLHttpRequest);
  const progress = [];
  const stored = [];
  const file = await client.upload(blob, {
    filename: "a.txt",
    onProgress: (p) => progress.push(p),
    onStored: (f) => void stored.push(f.status),
  });
  assert.equal(file.status, "available");
  assert.deepEqual(stored, ["pending"], "onStored runs once, between the PUT and the confirmation");
  const [put] = storage.requests;
  assert.equal(put.method, "PUT");
  assert.deepEqual(put.headers, { "content-type": "text/plain", "if-none-match": "*" });
  assert.deepEqual(storage.refused, [], "no header the browser would refuse (content-length) is set");
  assert.equal(put.body, blob);
  assert.deepEqual(progress.at(-1), { loaded: blob.size, total: blob.size });
  assert.ok(progress.every((p) => p.total === blob.size && p.loaded <= p.total));
  assert.equal(api.handlers.length, 0);
});

test("sha256: false sends none, and a given digest is sent as it is", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  for (const [option, expected] of [[false, undefined], ["AAAA", "AAAA"]]) {
    const api = fakeApi([
      (_m, _u, init) => {
        assert.equal(JSON.parse(init.body).sha256, expected);
        return json(201, reservation(blob));
      },
      () => json(200, { file: { id: FILE_ID, status: "available" } }),
    ]);
    const storage = fakeXhr([(xhr) => xhr.answer(200)]);
    await gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: option });
  }
});

test("an API 503 is retried after its Retry-After; a network failure with backoff", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const api = fakeApi([
    () => json(503, { error: { code: "unavailable", message: "busy" } }, { "retry-after": "2" }),
    () => new TypeError("Failed to fetch"),
    () => json(201, reservation(blob)),
    () => json(200, { file: { id: FILE_ID, status: "available" } }),
  ]);
  const storage = fakeXhr([(xhr) => xhr.answer(200)]);
  const { client, sleeps } = gate(api.fetch, storage.XMLHttpRequest);
  await client.upload(blob, { filename: "x" });
  // 2 s as asked; then half (random 0.5) of base * 2^1.
  assert.deepEqual(sleeps, [2000, 300]);
});

// Amazon API Gateway Developer Guide, "Throttle requests to your HTTP APIs" (the template's API is
// an HTTP API: a throttled request is answered 429 {"message":"Too Many Requests"}) and "Gateway
// response types" (THROTTLED, 429): a throttled request may succeed when sent again. The API's own 429 `quota_exceeded` (README, "Errors") will not change by asking
// again, and the reservation it refused wrote nothing.
test("POST /uploads is retried on API Gateway's throttling 429, never on the API's 429 quota_exceeded", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const throttled = () => json(429, { message: "Too Many Requests" });
  const quota = () =>
    json(429, { error: { code: "quota_exceeded", message: "1 pending uploads, the limit is 1" } });
  const api = fakeApi([throttled, throttled, quota]);
  const { client, sleeps } = gate(api.fetch, fakeXhr([]).XMLHttpRequest);
  await assert.rejects(client.upload(blob, { filename: "x", sha256: false }), {
    name: "PresignGateError",
    status: 429,
    code: "quota_exceeded",
    message: "1 pending uploads, the limit is 1",
  });
  assert.equal(api.calls.length, 3, "two throttled attempts retried, the quota refusal not");
  assert.equal(sleeps.length, 2);

  // The same on any route: a quota answer is final at once.
  const once = fakeApi([quota]);
  await assert.rejects(gate(once.fetch, fakeXhr([]).XMLHttpRequest).client.reserve(blob, { filename: "x", sha256: false }), {
    code: "quota_exceeded",
  });
  assert.equal(once.calls.length, 1);

  // Throttled to the end: the gateway's words, as `throttled`.
  const always = fakeApi(Array.from({ length: 3 }, () => throttled));
  const { client: patient } = gate(always.fetch, fakeXhr([]).XMLHttpRequest, { retry: { retries: 2 } });
  await assert.rejects(patient.list(), { status: 429, code: "throttled", message: "Too Many Requests" });
  assert.equal(always.calls.length, 3);
});

/**
 * A fake POST /uploads that keeps its promise as the API does (issue 20, 2.7): a repeated
 * `Idempotency-Key` answers with the file it reserved first, never a second reservation.
 */
function idempotentUploads(blob) {
  const byKey = new Map();
  let next = 0;
  return (key) => {
    assert.match(key ?? "", /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, "a random UUID");
    if (!byKey.has(key)) byKey.set(key, `${FILE_ID.slice(0, -1)}${next++}`);
    const answer = reservation(blob);
    answer.file.id = byKey.get(key);
    return { answer, reservations: () => byKey.size };
  };
}

test("the idempotency key is a version 4 UUID, from getRandomValues where randomUUID is missing (outside a secure context)", () => {
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  assert.match(randomKey(), uuid);
  Object.defineProperty(globalThis.crypto, "randomUUID", { value: undefined, configurable: true });
  try {
    const keys = new Set(Array.from({ length: 100 }, () => randomKey()));
    assert.equal(keys.size, 100);
    for (const key of keys) assert.match(key, uuid);
  } finally {
    delete globalThis.crypto.randomUUID;
  }
  assert.equal(typeof globalThis.crypto.randomUUID, "function");
});

// The answers a caller cannot read (a network failure, a 503 after the reservation committed)
// are exactly those after which a reservation may exist: the retry must say it is the same one.
test("each reservation sends one Idempotency-Key, the same on each of its retries", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const uploads = idempotentUploads(blob);
  const keys = [];
  let last;
  const reserveAnswer = (_m, _u, init) => {
    keys.push(init.headers["idempotency-key"]);
    last = uploads(init.headers["idempotency-key"]);
    return last.answer;
  };
  const api = fakeApi([
    (m, u, init) => (reserveAnswer(m, u, init), new TypeError("Failed to fetch")),
    (m, u, init) => (reserveAnswer(m, u, init), json(503, { error: { code: "unavailable", message: "busy" } })),
    (m, u, init) => json(201, reserveAnswer(m, u, init)),
    () => json(200, { file: { id: FILE_ID, status: "available" } }),
    (m, u, init) => json(201, reserveAnswer(m, u, init)),
  ]);
  const storage = fakeXhr([(xhr) => xhr.answer(200)]);
  const { client } = gate(api.fetch, storage.XMLHttpRequest);
  await client.upload(blob, { filename: "x", sha256: false });
  assert.equal(keys.length, 3);
  assert.equal(new Set(keys).size, 1, "the same key on every attempt");
  assert.equal(last.reservations(), 1, "one reservation for three attempts");

  // The next reservation is another one, with a key of its own; a caller's key is sent as it is.
  await client.reserve(blob, { filename: "x", sha256: false });
  assert.notEqual(keys[3], keys[0]);
  assert.equal(last.reservations(), 2);
  const own = fakeApi([(_m, _u, init) => (assert.equal(init.headers["idempotency-key"], "my-key-1"), json(201, reservation(blob)))]);
  await gate(own.fetch, fakeXhr([]).XMLHttpRequest).client.reserve(blob, { filename: "x", sha256: false, idempotencyKey: "my-key-1" });
  // Only POST /uploads carries one.
  const other = fakeApi([(_m, _u, init) => (assert.equal(init.headers["idempotency-key"], undefined), json(200, { file: {} }))]);
  await gate(other.fetch, fakeXhr([]).XMLHttpRequest).client.get(FILE_ID);
});

test("a PUT refused with 503 or lost to the network is sent again, with progress starting over", async () => {
  const blob = new Blob(["0123456789"], { type: "text/plain" });
  const api = fakeApi([
    () => json(201, reservation(blob)),
    () => json(200, { file: { id: FILE_ID, status: "available" } }),
  ]);
  const storage = fakeXhr([
    (xhr) => xhr.answer(503, { body: "<Error><Code>SlowDown</Code></Error>" }),
    (xhr) => xhr.fail(),
    (xhr) => xhr.answer(200),
  ]);
  const { client, sleeps } = gate(api.fetch, storage.XMLHttpRequest);
  const progress = [];
  await client.upload(blob, { filename: "x", sha256: false, onProgress: (p) => progress.push(p.loaded) });
  assert.equal(storage.requests.length, 3);
  assert.equal(sleeps.length, 2);
  assert.deepEqual(progress, [0, 10, 0, 0, 10, 10]);
});

test("a 412 on a retried PUT means an earlier attempt stored the object; on the first attempt it is an error", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const retried = fakeApi([
    () => json(201, reservation(blob)),
    () => json(200, { file: { id: FILE_ID, status: "available" } }),
  ]);
  const storage = fakeXhr([(xhr) => xhr.fail(), (xhr) => xhr.answer(412, { body: "<Error><Code>PreconditionFailed</Code></Error>" })]);
  assert.equal((await gate(retried.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false })).status, "available");

  const first = fakeApi([() => json(201, reservation(blob))]);
  const refused = fakeXhr([(xhr) => xhr.answer(412, { body: "<Error><Code>PreconditionFailed</Code></Error>" })]);
  await assert.rejects(gate(first.fetch, refused.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false }), {
    name: "PresignGateError",
    status: 412,
    code: "upload_failed",
    storageCode: "PreconditionFailed",
  });
});

// S3 API Reference, PutObject, "If-None-Match": "If a conflicting operation occurs during the
// upload S3 returns a 409 ConditionalRequestConflict response. On a 409 failure you should retry
// the upload." The retry then stores the object, or answers 412 when the other write stored it.
test("a PUT refused 409 ConditionalRequestConflict is sent again; its 412 then reads as stored", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const api = fakeApi([
    () => json(201, reservation(blob)),
    () => json(200, { file: { id: FILE_ID, status: "available" } }),
  ]);
  const conflict = "<Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation is currently in progress against this resource. Please try again.</Message></Error>";
  const storage = fakeXhr([
    (xhr) => xhr.answer(409, { body: conflict }),
    (xhr) => xhr.answer(412, { body: "<Error><Code>PreconditionFailed</Code></Error>" }),
  ]);
  const { client, sleeps } = gate(api.fetch, storage.XMLHttpRequest);
  const file = await client.upload(blob, { filename: "x", sha256: false });
  assert.equal(file.status, "available");
  assert.equal(storage.requests.length, 2);
  assert.equal(sleeps.length, 1, "after a backoff");
  assert.equal(api.handlers.length, 0, "confirmed");

  // Any other 409 is not a conflict S3 says to retry.
  const other = fakeApi([() => json(201, reservation(blob))]);
  const refused = fakeXhr([(xhr) => xhr.answer(409, { body: "<Error><Code>OperationAborted</Code></Error>" })]);
  await assert.rejects(gate(other.fetch, refused.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false }), {
    status: 409,
    code: "upload_failed",
    storageCode: "OperationAborted",
  });
  assert.equal(refused.requests.length, 1);
});

test("S3's refusal is not retried, and its error never carries the URL", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const api = fakeApi([() => json(201, reservation(blob))]);
  const storage = fakeXhr([
    (xhr) => xhr.answer(403, { body: "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>" }),
  ]);
  const error = await gate(api.fetch, storage.XMLHttpRequest).client
    .upload(blob, { filename: "x", sha256: false })
    .catch((e) => e);
  assert.ok(error instanceof PresignGateError);
  assert.equal(error.code, "upload_failed");
  assert.equal(error.storageCode, "AccessDenied");
  assert.equal(storage.requests.length, 1);
  assert.doesNotMatch(error.message + error.stack, /X-Amz-Signature|https?:/);
});


test("a single PUT refused as expired (ExpiredToken, or Request has expired) gets a fresh URL from POST /files/{id}/upload-url", async () => {
  for (const [status, body] of [[403, EXPIRED_TOKEN], [400, EXPIRED_TOKEN], [403, REQUEST_EXPIRED]]) {
    const blob = new Blob(["x"], { type: "text/plain" });
    const fresh = {
      method: "PUT",
      url: "https://bucket.example.test/users/alice/" + FILE_ID + "?X-Amz-Signature=fresh",
      headers: { "content-type": "text/plain", "if-none-match": "*", "x-amz-checksum-sha256": "AAAA" },
      expiresAt: new Date(Date.now() + 300_000).toISOString(),
    };
    const api = fakeApi([
      () => json(201, reservation(blob)),
      (method, url, init) => {
        assert.equal(method, "POST");
        assert.equal(url.pathname, `/prod/files/${FILE_ID}/upload-url`);
        assert.deepEqual(JSON.parse(init.body), { expiresIn: 60 });
        return json(200, { upload: fresh });
      },
      () => json(200, { file: { id: FILE_ID, status: "available" } }),
    ]);
    const storage = fakeXhr([(xhr) => xhr.answer(status, { body }), (xhr) => xhr.answer(200)]);
    const { client, sleeps } = gate(api.fetch, storage.XMLHttpRequest);
    const file = await client.upload(blob, { filename: "x", sha256: false, expiresIn: 60 });
    assert.equal(file.status, "available");
    const [first, second] = storage.requests;
    assert.match(first.url, /Signature=secret/);
    assert.match(second.url, /Signature=fresh/);
    assert.equal(second.headers["x-amz-checksum-sha256"], "AAAA", "the fresh URL's own headers");
    assert.deepEqual(sleeps, [], "at once");
    assert.equal(api.handlers.length, 0);
  }
});

test("only an expired URL is signed again: any other 403 fails the PUT, and a route that cannot sign gives S3's refusal", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  // An expired reservation time is no reason by itself: S3 said something else.
  const late = reservation(blob);
  late.upload.expiresAt = new Date(Date.now() - 1000).toISOString();
  for (const body of [
    "<Error><Code>AccessDenied</Code><Message>There were headers present in the request which were not signed</Message></Error>",
    "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
    "",
  ]) {
    const api = fakeApi([() => json(201, late)]);
    const storage = fakeXhr([(xhr) => xhr.answer(403, { body })]);
    await assert.rejects(gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false }), {
      status: 403,
      code: "upload_failed",
    });
    assert.equal(storage.requests.length, 1);
  }
  // The reservation lapsed meanwhile (or the API has no such route): the PUT fails with S3's words.
  const api = fakeApi([
    () => json(201, reservation(blob)),
    () => json(404, { error: { code: "not_found", message: "no such file" } }),
  ]);
  const storage = fakeXhr([(xhr) => xhr.answer(403, { body: EXPIRED_TOKEN })]);
  const error = await gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false }).catch((e) => e);
  assert.equal(error.code, "upload_failed");
  assert.equal(error.storageCode, "ExpiredToken");
  assert.equal(error.cause.code, "not_found");
  assert.doesNotMatch(error.message, /https?:|Signature/);
});

test("download fetches through a fresh URL, and asks for another when S3 refuses one as expired", async () => {
  let signed = 0;
  const storageCalls = [];
  const fetch = async (url, init) => {
    const parsed = new URL(url);
    if (parsed.hostname === "bucket.example.test") {
      storageCalls.push(init.headers);
      return parsed.searchParams.get("X-Amz-Signature") === "s1"
        ? new Response(EXPIRED_TOKEN, { status: 403 })
        : new Response("the bytes", { status: 200 });
    }
    assert.equal(parsed.pathname, `/prod/files/${FILE_ID}/download-url`);
    signed++;
    return json(200, { method: "GET", url: `https://bucket.example.test/k?X-Amz-Signature=s${signed}`, expiresAt: "2030-01-01T00:00:00Z" });
  };
  const { client } = gate(fetch, fakeXhr([]).XMLHttpRequest);
  const response = await client.download(FILE_ID);
  assert.equal(await response.text(), "the bytes");
  assert.equal(signed, 2);
  assert.deepEqual(storageCalls, [undefined, undefined], "no caller header (the token) goes to S3");

  // Any other refusal is final.
  const denied = async (url) =>
    new URL(url).hostname === "bucket.example.test"
      ? new Response("<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", { status: 403 })
      : json(200, { url: "https://bucket.example.test/k?X-Amz-Signature=s", expiresAt: "2000-01-01T00:00:00Z" });
  await assert.rejects(gate(denied, fakeXhr([]).XMLHttpRequest).client.download(FILE_ID), {
    status: 403,
    code: "download_failed",
    storageCode: "AccessDenied",
  });
});

test("API errors keep their status, code and message; a gateway's own reply gets a code", async () => {
  const blob = new Blob(["<svg/>"], { type: "image/svg+xml" });
  const api = fakeApi([
    () => json(400, { error: { code: "content_type_not_allowed", message: "content type image/svg+xml is not allowed" } }),
    () => json(401, { message: "Unauthorized" }),
    () => new Response("<html>bad gateway</html>", { status: 502 }),
  ]);
  const { client } = gate(api.fetch, fakeXhr([]).XMLHttpRequest);
  await assert.rejects(client.upload(blob, { filename: "a.svg" }), {
    status: 400,
    code: "content_type_not_allowed",
    message: "content type image/svg+xml is not allowed",
  });
  await assert.rejects(client.get(FILE_ID), { status: 401, code: "unauthenticated", message: "Unauthorized" });
  await assert.rejects(client.list(), { status: 502, code: "unavailable" });
});

test("retries end: the last answer is the error", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const api = fakeApi(Array.from({ length: 3 }, () => () => new TypeError("Failed to fetch")));
  const { client, sleeps } = gate(api.fetch, fakeXhr([]).XMLHttpRequest, { retry: { retries: 2 } });
  await assert.rejects(client.upload(blob, { filename: "x", sha256: false }), { status: 0, code: "network_error" });
  assert.equal(sleeps.length, 2);
});

test("an abort during the PUT rejects with the signal's reason and never confirms", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const api = fakeApi([() => json(201, reservation(blob))]);
  const controller = new AbortController();
  const storage = fakeXhr([() => controller.abort()]);
  await assert.rejects(
    gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false, signal: controller.signal }),
    { name: "AbortError" },
  );
  assert.equal(api.handlers.length, 0);
  assert.equal(api.calls.length, 1, "no complete after an abort");
});

test("an aborted signal stops the API call too", async () => {
  const controller = new AbortController();
  controller.abort();
  const api = fakeApi([]);
  await assert.rejects(gate(api.fetch, fakeXhr([]).XMLHttpRequest).client.get(FILE_ID, { signal: controller.signal }), {
    name: "AbortError",
  });
  assert.equal(api.calls.length, 0);
});

test("downloadUrl, get, list, files and delete call their routes", async () => {
  const api = fakeApi([
    (method, url) => {
      assert.equal(method, "GET");
      assert.equal(url.pathname, `/prod/files/${FILE_ID}/download-url`);
      assert.equal(url.searchParams.get("disposition"), "inline");
      assert.equal(url.searchParams.get("expiresIn"), "60");
      return json(200, { method: "GET", url: "https://s3/x", expiresAt: "2026-11-29T12:05:00Z" });
    },
    (method, url) => {
      assert.equal(url.pathname, `/prod/files/${FILE_ID}`);
      return json(200, { file: { id: FILE_ID } });
    },
    (method, url) => {
      assert.equal(url.pathname, "/prod/files");
      assert.equal(url.searchParams.get("limit"), "1");
      assert.equal(url.searchParams.has("nextToken"), false);
      return json(200, { files: [{ id: "a" }], nextToken: "t1" });
    },
    (method, url) => {
      assert.equal(url.searchParams.get("nextToken"), "t1");
      return json(200, { files: [{ id: "b" }], nextToken: null });
    },
    (method, url) => {
      assert.equal(method, "DELETE");
      assert.equal(url.pathname, `/prod/files/${FILE_ID}`);
      return new Response(null, { status: 204 });
    },
    (method, url, init) => {
      assert.equal(url.pathname, "/prod/files/download-urls");
      assert.deepEqual(JSON.parse(init.body), { ids: ["a", "b"], disposition: "attachment" });
      return json(200, { urls: { a: { url: "u" } }, errors: { b: { code: "not_found" } } });
    },
  ]);
  const { client } = gate(api.fetch, fakeXhr([]).XMLHttpRequest);
  assert.deepEqual(await client.downloadUrl(FILE_ID, { disposition: "inline", expiresIn: 60 }), {
    url: "https://s3/x",
    expiresAt: "2026-11-29T12:05:00Z",
  });
  assert.equal((await client.get(FILE_ID)).id, FILE_ID);
  const ids = [];
  for await (const file of client.files({ limit: 1 })) ids.push(file.id);
  assert.deepEqual(ids, ["a", "b"]);
  assert.equal(await client.delete(FILE_ID), undefined);
  const batch = await client.downloadUrls(["a", "b"], { disposition: "attachment" });
  assert.deepEqual(batch.errors, { b: { code: "not_found" } });
});

test("Retry-After in seconds or as an HTTP date; forbidden headers are recognised", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter("soon"), null);
  const later = parseRetryAfter(new Date(Date.now() + 10_000).toUTCString());
  assert.ok(later > 0 && later <= 10_000);
  for (const name of ["Content-Length", "host", "Sec-Fetch-Mode", "proxy-authorization"]) assert.equal(browserMaySet(name), false);
  for (const name of ["content-type", "if-none-match", "x-amz-checksum-sha256"]) assert.equal(browserMaySet(name), true);
});

// ---------------------------------------------------------------------------------------------
// Multipart: the server plans the parts; the client signs them in batches, sends them in
// parallel, retries each alone, and resumes from what S3 holds.


test("a MULTIPART reservation is sent in parts: no whole-file digest, each part's SHA-256 signed, one rising progress figure", async () => {
  const content = randomBytes(22);
  const blob = new Blob([content], { type: "video/mp4" });
  const api = multipartApi(blob, { partSize: 5 });
  const storage = fakeXhr((xhr) => {
    xhr.progress(2);
    xhr.answer(200, { headers: { etag: `"e${partOf(xhr)}"` } });
  });
  const { client } = gate(api.fetch, storage.XMLHttpRequest, { multipartThreshold: 10 });
  const progress = [];
  const reserved = [];
  const file = await client.upload(blob, {
    filename: "clip.mp4",
    onProgress: (p) => progress.push(p),
    onReserved: (record, upload) => void reserved.push([record.id, upload.method]),
  });
  assert.equal(file.status, "available");
  assert.deepEqual(reserved, [[FILE_ID, "MULTIPART"]]);
  const [reservation] = api.log.reservations;
  assert.equal(reservation.multipart, true);
  assert.equal(reservation.sha256, undefined, "S3 checks no whole-file digest of a multipart upload");
  assert.equal(reservation.partSha256, true, "parts carry digests only if the reservation says so");

  // Each part was PUT once, with the bytes of its slice and the digest of exactly those bytes.
  const puts = new Map();
  for (const xhr of storage.requests) puts.set(partOf(xhr), xhr);
  assert.equal(storage.requests.length, 5);
  assert.deepEqual([...puts.keys()].sort(), [1, 2, 3, 4, 5]);
  const signed = new Map(api.log.signed.flat().map((p) => [p.partNumber, p.sha256]));
  for (const [n, xhr] of puts) {
    const expected = content.subarray((n - 1) * 5, n * 5);
    assert.deepEqual(await bytesOf(xhr.body), expected, `part ${n}`);
    assert.equal(signed.get(n), nodeSha256(expected), `part ${n}'s digest`);
    assert.equal(xhr.headers["x-amz-checksum-sha256"], nodeSha256(expected));
    assert.equal(xhr.headers["content-length"], undefined, "the browser sets the length itself");
  }
  assert.deepEqual(storage.refused, [], "the browser sets the length itself: the client never tries");
  assert.equal(api.log.completes, 1);

  assert.deepEqual(progress.at(-1), { loaded: 22, total: 22 });
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i].loaded > progress[i - 1].loaded, "never backwards");
});

test("without digests, part URLs come 100 to a request and every part is signed once", async () => {
  const blob = new Blob([randomBytes(250)]);
  const api = multipartApi(blob, { partSize: 1 });
  const storage = fakeXhr((xhr) => xhr.answer(200));
  const { client } = gate(api.fetch, storage.XMLHttpRequest, { partConcurrency: 4 });
  await client.upload(blob, { filename: "x", multipart: true, sha256: false });
  assert.deepEqual(api.log.signed.map((batch) => batch.length), [100, 100, 50]);
  const numbers = api.log.signed.flat().map((p) => p.partNumber);
  assert.equal(new Set(numbers).size, 250);
  assert.ok(api.log.signed.flat().every((p) => p.sha256 === undefined));
  assert.equal(storage.requests.length, 250);
});

test("parts run `concurrency` at a time", async () => {
  const blob = new Blob([randomBytes(12)]);
  const api = multipartApi(blob, { partSize: 1 });
  let inFlight = 0;
  let most = 0;
  const storage = fakeXhr((xhr) => {
    inFlight++;
    most = Math.max(most, inFlight);
    setTimeout(() => {
      inFlight--;
      xhr.answer(200);
    }, 1);
  });
  await gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", multipart: true, sha256: false, concurrency: 3 });
  assert.equal(most, 3);
});

test("a failing part is retried on its own, and progress waits for it rather than going back", async () => {
  const blob = new Blob([randomBytes(30)]);
  const api = multipartApi(blob, { partSize: 10 });
  const attempts = new Map();
  const storage = fakeXhr((xhr) => {
    const n = partOf(xhr);
    const attempt = (attempts.get(n) ?? 0) + 1;
    attempts.set(n, attempt);
    if (n === 2 && attempt === 1) {
      xhr.progress(8);
      return xhr.answer(503, { body: "<Error><Code>SlowDown</Code></Error>", headers: { "retry-after": "1" } });
    }
    if (n === 2 && attempt === 2) return xhr.fail();
    xhr.answer(200);
  });
  const { client, sleeps } = gate(api.fetch, storage.XMLHttpRequest);
  const progress = [];
  await client.upload(blob, { filename: "x", multipart: true, sha256: false, onProgress: (p) => progress.push(p.loaded) });
  assert.deepEqual(Object.fromEntries(attempts), { 1: 1, 2: 3, 3: 1 });
  // S3's Retry-After is not readable by the page (the bucket's CORS rule exposes only ETag): the
  // backoff, half (random 0.5) of base * 2^attempt.
  assert.deepEqual(sleeps, [150, 300], "the backoff, whatever S3's Retry-After");
  assert.deepEqual(storage.unsafeReads, [], "no read of a header the page may not read");
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i] > progress[i - 1], `${progress}`);
  assert.equal(progress.at(-1), 30);
  assert.equal(api.log.completes, 1);
});

test("a part S3 refuses for good stops the upload: no complete, no delete, the upload stays resumable", async () => {
  const blob = new Blob([randomBytes(40)]);
  const api = multipartApi(blob, { partSize: 10 });
  const storage = fakeXhr((xhr) =>
    partOf(xhr) === 1
      ? xhr.answer(400, { body: "<Error><Code>BadDigest</Code></Error>" })
      : setTimeout(() => xhr.answer(200), 5),
  );
  const error = await gate(api.fetch, storage.XMLHttpRequest).client
    .upload(blob, { filename: "x", multipart: true, sha256: false })
    .catch((e) => e);
  assert.ok(error instanceof PresignGateError, String(error));
  assert.equal(error.code, "upload_failed");
  assert.equal(error.storageCode, "BadDigest");
  assert.doesNotMatch(error.message, /https?:|Signature/);
  assert.equal(api.log.completes, 0);
  assert.equal(api.log.deletes, 0);
});

test("an expired part URL is signed again, and a prefetched one about to expire is never used", async () => {
  const blob = new Blob([randomBytes(20)]);
  // The first batch (part 1 asked for, part 2 prefetched) lives only 5 s: part 1's PUT goes out
  // at once, and S3 refuses it once as expired; part 2's URL is too close to its end to be used.
  const api = multipartApi(blob, { partSize: 10, urlExpiresAt: (n) => new Date(Date.now() + (n === 1 ? 5_000 : 300_000)).toISOString() });
  let refused = false;
  const storage = fakeXhr((xhr) => {
    if (partOf(xhr) === 1 && !refused) {
      refused = true;
      return xhr.answer(403, { body: "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>" });
    }
    xhr.answer(200);
  });
  const { client, sleeps } = gate(api.fetch, storage.XMLHttpRequest, { partConcurrency: 1 });
  await client.upload(blob, { filename: "x", multipart: true, sha256: false });
  assert.deepEqual(api.log.signed.map((batch) => batch.map((p) => p.partNumber)), [[1, 2], [1], [2]]);
  const used = storage.requests.map((xhr) => [partOf(xhr), new URL(xhr.url).searchParams.get("X-Amz-Signature")]);
  assert.deepEqual(used, [[1, "s1"], [1, "s2"], [2, "s3"]]);
  assert.deepEqual(sleeps, [], "an expired URL is replaced at once");
  assert.equal(api.log.completes, 1);
});

test("a part refused ExpiredToken is signed again, and so is every URL of the dead session; another 403 is not", async () => {
  const blob = new Blob([randomBytes(30)]);
  // Without digests parts 1-3 are signed in one request (s1); S3 refuses part 1's token.
  const api = multipartApi(blob, { partSize: 10 });
  const storage = fakeXhr((xhr) => {
    const signature = new URL(xhr.url).searchParams.get("X-Amz-Signature");
    if (signature === "s1") return xhr.answer(403, { body: EXPIRED_TOKEN });
    xhr.answer(200);
  });
  const { client, sleeps } = gate(api.fetch, storage.XMLHttpRequest, { partConcurrency: 1 });
  await client.upload(blob, { filename: "x", multipart: true, sha256: false });
  assert.deepEqual(
    storage.requests.map((xhr) => [partOf(xhr), new URL(xhr.url).searchParams.get("X-Amz-Signature")]),
    [[1, "s1"], [1, "s2"], [2, "s2"], [3, "s2"]],
    "parts 2 and 3 never use the dead session's URLs",
  );
  assert.deepEqual(sleeps, []);
  assert.equal(api.log.completes, 1);

  // A URL past its time that S3 refuses for another reason is not signed again.
  const late = multipartApi(blob, { partSize: 10, urlExpiresAt: () => new Date(Date.now() + 31_000).toISOString() });
  const denied = fakeXhr((xhr) => xhr.answer(403, { body: "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>" }));
  const realNow = Date.now;
  Date.now = () => realNow() + 60_000;
  try {
    await assert.rejects(gate(late.fetch, denied.XMLHttpRequest).client.upload(blob, { filename: "x", multipart: true, sha256: false, concurrency: 1 }), {
      code: "upload_failed",
      storageCode: "AccessDenied",
    });
  } finally {
    Date.now = realNow;
  }
  assert.equal(denied.requests.length, 1);
  assert.equal(late.log.signed.length, 1);
});

test("an abort stops every part in flight, then deletes the file so the server aborts the S3 upload", async () => {
  const blob = new Blob([randomBytes(40)]);
  const api = multipartApi(blob, { partSize: 10 });
  const controller = new AbortController();
  const storage = fakeXhr((xhr) => {
    xhr.progress(3);
    if (storage.requests.length === 2) setTimeout(() => controller.abort(), 1);
  });
  await assert.rejects(
    gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, {
      filename: "x",
      multipart: true,
      sha256: false,
      concurrency: 2,
      signal: controller.signal,
    }),
    { name: "AbortError" },
  );
  assert.equal(storage.requests.length, 2, "no part started after the abort");
  assert.equal(api.log.deletes, 1);
  assert.equal(api.log.completes, 0);
  assert.equal(api.log.calls.at(-1), `DELETE /files/${FILE_ID}`);
});

test("resume sends only the parts S3 lacks (a stored part of the wrong length counts as missing), then completes", async () => {
  const content = randomBytes(35);
  const blob = new Blob([content]);
  const api = multipartApi(blob, {
    partSize: 10,
    stored: [
      { partNumber: 1, size: 10, etag: '"a"' },
      { partNumber: 3, size: 10, etag: '"c"' },
      { partNumber: 4, size: 3, etag: '"short"' },
    ],
  });
  const storage = fakeXhr((xhr) => xhr.answer(200));
  const progress = [];
  const file = await gate(api.fetch, storage.XMLHttpRequest).client.resume(FILE_ID, blob, {
    onProgress: (p) => progress.push(p.loaded),
  });
  assert.equal(file.status, "available");
  assert.deepEqual(storage.requests.map(partOf).sort(), [2, 4]);
  const part4 = storage.requests.find((xhr) => partOf(xhr) === 4);
  assert.deepEqual(await bytesOf(part4.body), content.subarray(30));
  assert.equal(progress[0], 20, "progress starts from what S3 holds");
  assert.equal(progress.at(-1), 35);
  assert.deepEqual(api.log.calls.slice(0, 2), [`GET /files/${FILE_ID}`, `GET /files/${FILE_ID}/parts`]);
  assert.equal(api.log.completes, 1);
});

test("resume hashes the parts exactly when the reservation chose partSha256, whatever the caller's option", async () => {
  const content = randomBytes(25);
  for (const partSha256 of [true, false]) {
    const api = multipartApi(new Blob([content]), { partSize: 10, partSha256 });
    const storage = fakeXhr((xhr) => xhr.answer(200));
    const file = await gate(api.fetch, storage.XMLHttpRequest).client.resume(FILE_ID, new Blob([content]), {
      sha256: !partSha256,
    });
    assert.equal(file.status, "available");
    // Parts are hashed and signed in parallel: compare by part number, not by arrival.
    const digests = api.log.signed
      .flat()
      .sort((a, b) => a.partNumber - b.partNumber)
      .map((p) => [p.partNumber, p.sha256]);
    assert.deepEqual(
      digests,
      [1, 2, 3].map((n) => [n, partSha256 ? nodeSha256(content.subarray((n - 1) * 10, n * 10)) : undefined]),
    );
  }
});

test("resume refuses a blob that is not the reserved file, and returns an available file as it is", async () => {
  const reserved = new Blob([randomBytes(35)]);
  const api = multipartApi(reserved, { partSize: 10 });
  const storage = fakeXhr([]);
  const { client } = gate(api.fetch, storage.XMLHttpRequest);
  await assert.rejects(client.resume(FILE_ID, new Blob([randomBytes(34)])), { code: "resume_mismatch", status: 0 });

  const done = multipartApi(reserved, { partSize: 10, status: "available" });
  const file = await gate(done.fetch, storage.XMLHttpRequest).client.resume(FILE_ID, reserved);
  assert.equal(file.status, "available");
  assert.deepEqual(done.log.calls, [`GET /files/${FILE_ID}`]);
  assert.equal(storage.requests.length, 0);
});

test("a whole-file digest is computed only under the multipart threshold", async () => {
  const small = new Blob(["0123456789"], { type: "text/plain" });
  const api = fakeApi([
    (_m, _u, init) => {
      const body = JSON.parse(init.body);
      assert.equal(body.multipart, undefined);
      assert.equal(body.sha256, nodeSha256(Buffer.from("0123456789")));
      return json(201, reservation(small));
    },
  ]);
  const { client } = gate(api.fetch, fakeXhr([]).XMLHttpRequest, { multipartThreshold: 10 });
  await client.reserve(small, { filename: "x" });
  assert.equal(client.multipartThreshold, 10);
});

/**
 * A fake API that plans uploads by the server's rule (src/domain/policy.rs): multipart when asked
 * or above its MULTIPART_THRESHOLD_BYTES, and a whole-file sha256 on a multipart upload refused
 * with 400 invalid_request, as S3 verifies no whole-file SHA-256 of a multipart upload (README,
 * "Multipart uploads"; S3 User Guide, "Checking object integrity": a multipart upload's checksum is
 * a checksum of the parts' checksums). `GET /usage` reports the threshold as the API does.
 */
function serverPlanning(threshold, { reports = true } = {}) {
  const log = { usage: 0, reservations: [] };
  const fetch = async (url, init) => {
    const path = new URL(url).pathname.replace(/^\/prod/, "");
    const body = init.body ? JSON.parse(init.body) : undefined;
    if (init.method === "GET" && path === "/usage") {
      log.usage++;
      return json(200, {
        pendingUploads: 0, bytes: 0, limits: { pendingUploads: 10, bytes: 1 << 30 },
        ...(reports ? { uploads: { multipartThresholdBytes: threshold } } : {}),
      });
    }
    if (init.method === "POST" && path === "/uploads") {
      log.reservations.push(body);
      const multipart = body.multipart === true || body.size > threshold;
      if (multipart && body.sha256 !== undefined) {
        return json(400, { error: { code: "invalid_request", message: "a whole-file sha256 cannot be verified on a multipart upload" } });
      }
      const partSize = 5 * 1024 * 1024;
      return json(201, {
        file: { id: FILE_ID, size: body.size, status: "pending" },
        upload: multipart
          ? { method: "MULTIPART", partSize, partCount: Math.ceil(body.size / partSize), partSha256: body.partSha256 === true, expiresAt: new Date(Date.now() + 86_400_000).toISOString() }
          : { method: "PUT", url: `https://bucket.example.test/k?X-Amz-Signature=s`, headers: {}, expiresAt: new Date(Date.now() + 300_000).toISOString() },
      });
    }
    if (init.method === "POST" && path === `/files/${FILE_ID}/parts`) {
      return json(200, {
        parts: body.parts.map(({ partNumber }) => ({
          partNumber, method: "PUT", headers: {},
          url: `https://bucket.example.test/k?partNumber=${partNumber}&X-Amz-Signature=s`,
          expiresAt: new Date(Date.now() + 300_000).toISOString(),
        })),
      });
    }
    if (init.method === "POST" && path === `/files/${FILE_ID}/complete`) {
      return json(200, { file: { id: FILE_ID, status: "available" } });
    }
    throw new Error(`unexpected API call ${init.method} ${path}`);
  };
  return { fetch, log };
}

// Issue 20, 2.9: the server at MULTIPART_THRESHOLD_BYTES = 6 MiB and a client left with its
// default options; every file between the two thresholds used to fail with 400 invalid_request.
test("the client plans an upload by the threshold the API reports: a 13 MiB file against a 6 MiB server uploads", async () => {
  const MIB = 1024 * 1024;
  const server = serverPlanning(6 * MIB);
  const storage = fakeXhr((xhr) => xhr.answer(200));
  const { client } = gate(server.fetch, storage.XMLHttpRequest, { multipartThreshold: undefined });
  assert.equal(client.multipartThreshold, 100 * MIB, "the API's default until it has said");
  const big = await client.upload(new Blob([new Uint8Array(13 * MIB)], { type: "video/mp4" }), { filename: "big.mp4" });
  assert.equal(big.status, "available");
  const [reservation] = server.log.reservations;
  assert.equal(reservation.multipart, true);
  assert.equal(reservation.sha256, undefined);
  assert.equal(storage.requests.length, 3, "three parts of 5 MiB at most");
  assert.equal(client.multipartThreshold, 6 * MIB);

  // Under the threshold: one PUT with the whole file's digest. The API was asked once.
  const small = await client.upload(new Blob([new Uint8Array(6 * MIB)], { type: "video/mp4" }), { filename: "small.mp4" });
  assert.equal(small.status, "available");
  assert.equal(server.log.reservations[1].multipart, undefined);
  assert.equal(typeof server.log.reservations[1].sha256, "string");
  assert.equal(server.log.usage, 1);

  // An API that does not report one has its default; a caller's own threshold is used as given.
  const old = serverPlanning(100 * MIB, { reports: false });
  assert.equal(await gate(old.fetch, fakeXhr([]).XMLHttpRequest, { multipartThreshold: undefined }).client.resolveMultipartThreshold(), 100 * MIB);
  const own = serverPlanning(6 * MIB);
  assert.equal(await gate(own.fetch, fakeXhr([]).XMLHttpRequest, { multipartThreshold: 1 }).client.resolveMultipartThreshold(), 1);
  assert.equal(own.log.usage, 0);
});


// Issue 20, 2.11 (the Chromium test runs the page itself): the demo sends the token typed into it
// to its form's API URL, so a link's ?api= is taken for a loopback API only, and no API URL is saved.
test("the demo's connection form takes ?api= for loopback only and saves no API URL", async () => {
  const { connectionFromPage, loopbackApiUrl } = await import("../../demo/shared.js");
  for (const ok of ["http://127.0.0.1:9000", "http://localhost:9000/", "http://[::1]:9000"]) assert.equal(loopbackApiUrl(ok), ok);
  for (const no of ["https://collector.example.test/", "http://127.0.0.1.collector.test/", "http://user:pw@127.0.0.1/", "javascript:alert(1)", "", null]) {
    assert.equal(loopbackApiUrl(no), null, String(no));
  }
  const store = new Map([["presign-gate-demo", JSON.stringify({ apiUrl: "https://saved-by-a-link.test", devUser: "bob" })]]);
  const saved = { location: globalThis.location, localStorage: globalThis.localStorage };
  globalThis.location = { search: "?api=https%3A%2F%2Fcollector.example.test%2F" };
  globalThis.localStorage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  try {
    const field = (value = "") => ({ value });
    const form = { dataset: {}, elements: { apiUrl: field(), devUser: field(), token: field() } };
    class Recorder {
      constructor(options) {
        this.options = options;
      }
    }
    const client = connectionFromPage(form, Recorder);
    assert.equal(client.options.apiUrl, "http://127.0.0.1:9000", "neither the link's nor the saved API URL");
    assert.equal(form.elements.devUser.value, "bob");
    assert.deepEqual(JSON.parse(store.get("presign-gate-demo")), { devUser: "bob" });
    globalThis.location = { search: "?api=http%3A%2F%2F127.0.0.1%3A9999" };
    const local = connectionFromPage({ dataset: {}, elements: { apiUrl: field(), devUser: field(), token: field("t") } }, Recorder);
    assert.equal(local.options.apiUrl, "http://127.0.0.1:9999");
    assert.doesNotMatch(store.get("presign-gate-demo"), /9999|apiUrl/);
  } finally {
    Object.assign(globalThis, saved);
  }
});
