// The client's retry table, its limits and its aborts, against the fakes of tests/browser/fakes.mjs:
// each test here fails on a change of the rule it names (issue 24's list of surviving mutants).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { sha256Base64 } from "../../client/sha256.js";
import {
  FILE_ID, EXPIRED_TOKEN, atTime, fakeApi, fakeXhr, forbidLogging, gate, json, multipartApi, partOf, reservation,
} from "./fakes.mjs";

forbidLogging();

const SLOW_DOWN = { body: "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>" };
const available = () => json(200, { file: { id: FILE_ID, status: "available" } });

/** A PUT reservation whose URL expires at `expiresAt` (ms). */
function putReservation(blob, expiresAt) {
  const answer = reservation(blob);
  answer.upload.expiresAt = new Date(expiresAt).toISOString();
  return answer;
}

// With random 0.5 the first backoff is floor(0.5 * 300 * 2^0) = 150 ms: a URL that lives exactly
// that long is not worth another attempt (the attempt would go out as it expires).
test("a single PUT is never retried past the URL's expiry, even by a millisecond", async () => {
  const now = Date.now();
  const blob = new Blob(["x"], { type: "text/plain" });
  await atTime(now, async () => {
    const api = fakeApi([() => json(201, putReservation(blob, now + 150))]);
    const storage = fakeXhr((xhr) => xhr.answer(503, SLOW_DOWN));
    const { client, sleeps } = gate(api.fetch, storage.XMLHttpRequest);
    await assert.rejects(client.upload(blob, { filename: "x", sha256: false }), { status: 503, storageCode: "SlowDown" });
    assert.equal(storage.requests.length, 1);
    assert.deepEqual(sleeps, []);

    // A millisecond more and the retry goes out.
    const later = fakeApi([() => json(201, putReservation(blob, now + 151)), available]);
    const again = fakeXhr([(xhr) => xhr.answer(503, SLOW_DOWN), (xhr) => xhr.answer(200)]);
    const retried = gate(later.fetch, again.XMLHttpRequest);
    await retried.client.upload(blob, { filename: "x", sha256: false });
    assert.deepEqual(retried.sleeps, [150]);
  });
});

test("a part is never retried past the upload's expiry, even by a millisecond", async () => {
  const now = Date.now();
  const blob = new Blob([randomBytes(10)]);
  await atTime(now, async () => {
    const api = multipartApi(blob, { partSize: 10, uploadExpiresAt: new Date(now + 150).toISOString() });
    const storage = fakeXhr((xhr) => xhr.answer(503, SLOW_DOWN));
    const { client, sleeps } = gate(api.fetch, storage.XMLHttpRequest);
    await assert.rejects(client.upload(blob, { filename: "x", multipart: true, sha256: false }), { storageCode: "SlowDown" });
    assert.equal(storage.requests.length, 1);
    assert.deepEqual(sleeps, []);

    const later = multipartApi(blob, { partSize: 10, uploadExpiresAt: new Date(now + 151).toISOString() });
    const again = fakeXhr([(xhr) => xhr.answer(503, SLOW_DOWN), (xhr) => xhr.answer(200)]);
    const retried = gate(later.fetch, again.XMLHttpRequest);
    await retried.client.upload(blob, { filename: "x", multipart: true, sha256: false });
    assert.deepEqual(retried.sleeps, [150]);
  });
});

test("S3's 429, 500 and 503 are retried, on a single PUT and on a part; 400 and 502 are not", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  for (const status of [429, 500, 503]) {
    const api = fakeApi([() => json(201, reservation(blob)), available]);
    const storage = fakeXhr([(xhr) => xhr.answer(status), (xhr) => xhr.answer(200)]);
    await gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false });
    assert.equal(storage.requests.length, 2, `single PUT, ${status}`);

    const parts = multipartApi(blob, { partSize: 1 });
    const partStorage = fakeXhr([(xhr) => xhr.answer(status), (xhr) => xhr.answer(200)]);
    await gate(parts.fetch, partStorage.XMLHttpRequest).client.upload(blob, { filename: "x", multipart: true, sha256: false });
    assert.equal(partStorage.requests.length, 2, `part, ${status}`);
  }
  for (const status of [400, 502]) {
    const api = fakeApi([() => json(201, reservation(blob))]);
    const storage = fakeXhr((xhr) => xhr.answer(status));
    await assert.rejects(gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false }), { status });
    assert.equal(storage.requests.length, 1, `single PUT, ${status}`);
    const parts = multipartApi(blob, { partSize: 1 });
    const partStorage = fakeXhr((xhr) => xhr.answer(status));
    await assert.rejects(
      gate(parts.fetch, partStorage.XMLHttpRequest).client.upload(blob, { filename: "x", multipart: true, sha256: false }),
      { status },
    );
    assert.equal(partStorage.requests.length, 1, `part, ${status}`);
  }
});

test("the API's 503 and API Gateway's throttling 429 are retried; the API's own 500 is not", async () => {
  const throttled = () => json(429, { message: "Too Many Requests" });
  const unavailable = () => json(503, { error: { code: "unavailable", message: "busy" } });
  for (const refusal of [throttled, unavailable]) {
    const api = fakeApi([refusal, () => json(200, { file: { id: FILE_ID } })]);
    assert.equal((await gate(api.fetch, fakeXhr([]).XMLHttpRequest).client.get(FILE_ID)).id, FILE_ID);
    assert.equal(api.calls.length, 2);
  }
  const api = fakeApi([() => json(500, { error: { code: "internal", message: "fault" } })]);
  await assert.rejects(gate(api.fetch, fakeXhr([]).XMLHttpRequest).client.get(FILE_ID), { status: 500 });
  assert.equal(api.calls.length, 1);
});

test("`retries: 2` means three attempts exactly: API 503, API 429, single PUT, part, expired URLs", async () => {
  const retry = { retries: 2 };
  const blob = new Blob(["x"], { type: "text/plain" });

  const unavailable = fakeApi(Array.from({ length: 3 }, () => () => json(503, { error: { code: "unavailable", message: "busy" } })));
  await assert.rejects(gate(unavailable.fetch, fakeXhr([]).XMLHttpRequest, { retry }).client.get(FILE_ID), { status: 503 });
  assert.equal(unavailable.calls.length, 3, "API 503");

  const throttled = fakeApi(Array.from({ length: 3 }, () => () => json(429, { message: "Too Many Requests" })));
  await assert.rejects(gate(throttled.fetch, fakeXhr([]).XMLHttpRequest, { retry }).client.get(FILE_ID), { code: "throttled" });
  assert.equal(throttled.calls.length, 3, "API 429");

  const put = fakeApi([() => json(201, reservation(blob))]);
  const putStorage = fakeXhr((xhr) => xhr.answer(503, SLOW_DOWN));
  const single = gate(put.fetch, putStorage.XMLHttpRequest, { retry });
  await assert.rejects(single.client.upload(blob, { filename: "x", sha256: false }), { storageCode: "SlowDown" });
  assert.equal(putStorage.requests.length, 3, "single PUT");
  assert.equal(single.sleeps.length, 2);

  const parts = multipartApi(blob, { partSize: 1 });
  const partStorage = fakeXhr((xhr) => xhr.answer(503, SLOW_DOWN));
  await assert.rejects(
    gate(parts.fetch, partStorage.XMLHttpRequest, { retry }).client.upload(blob, { filename: "x", multipart: true, sha256: false }),
    { storageCode: "SlowDown" },
  );
  assert.equal(partStorage.requests.length, 3, "part");

  // Expired every time: signed again twice, then S3's refusal.
  const renewed = fakeApi([
    () => json(201, reservation(blob)),
    ...Array.from({ length: 2 }, () => () => json(200, { upload: reservation(blob).upload })),
  ]);
  const expired = fakeXhr((xhr) => xhr.answer(403, { body: EXPIRED_TOKEN }));
  await assert.rejects(gate(renewed.fetch, expired.XMLHttpRequest, { retry }).client.upload(blob, { filename: "x", sha256: false }), {
    storageCode: "ExpiredToken",
  });
  assert.equal(expired.requests.length, 3, "single PUT, expired");
  assert.equal(renewed.calls.length, 3, "the reservation and two fresh URLs, no third");

  const partsExpired = multipartApi(blob, { partSize: 1 });
  const partExpired = fakeXhr((xhr) => xhr.answer(403, { body: EXPIRED_TOKEN }));
  await assert.rejects(
    gate(partsExpired.fetch, partExpired.XMLHttpRequest, { retry }).client.upload(blob, { filename: "x", multipart: true, sha256: false }),
    { storageCode: "ExpiredToken" },
  );
  assert.equal(partExpired.requests.length, 3, "part, expired");
  assert.equal(partsExpired.log.signed.length, 3);
});

test("the API's Retry-After is cut to 30 s, or to maxRetryAfterMs", async () => {
  for (const [extra, expected] of [[{}, 30_000], [{ retry: { maxRetryAfterMs: 5_000 } }, 5_000]]) {
    const api = fakeApi([
      () => json(503, { error: { code: "unavailable", message: "busy" } }, { "retry-after": "120" }),
      () => json(200, { file: { id: FILE_ID } }),
    ]);
    const { client, sleeps } = gate(api.fetch, fakeXhr([]).XMLHttpRequest, extra);
    await client.get(FILE_ID);
    assert.deepEqual(sleeps, [expected]);
  }
});

/** A blob-like whose reads are watched; `onRead` runs as the hash reads it. */
function watchedBlob(bytes, onRead = () => {}) {
  const blob = new Blob([bytes]);
  const reads = [];
  return {
    size: blob.size,
    reads,
    async arrayBuffer() {
      reads.push("arrayBuffer");
      onRead();
      return blob.arrayBuffer();
    },
    stream() {
      reads.push("stream");
      const reader = blob.stream().getReader();
      return new ReadableStream({
        async pull(controller) {
          onRead();
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
        cancel: () => void reads.push("cancel"),
      }, { highWaterMark: 0 });
    },
  };
}

test("hashing stops on an abort: before reading, after WebCrypto's digest, and between streamed chunks", async () => {
  const reason = new Error("the user left");
  const before = new AbortController();
  before.abort(reason);
  const untouched = watchedBlob(randomBytes(10));
  await assert.rejects(sha256Base64(untouched, { signal: before.signal }), (error) => error === reason);
  assert.deepEqual(untouched.reads, [], "nothing read once aborted");

  const during = new AbortController();
  const whole = watchedBlob(randomBytes(10), () => during.abort(reason));
  await assert.rejects(sha256Base64(whole, { signal: during.signal }), (error) => error === reason);

  const streamed = new AbortController();
  const bytes = randomBytes(200_000);
  let chunks = 0;
  const stream = watchedBlob(bytes, () => {
    if (++chunks === 1) streamed.abort(reason);
  });
  await assert.rejects(sha256Base64(stream, { signal: streamed.signal, wholeBufferLimit: 0 }), (error) => error === reason);
  assert.ok(stream.reads.includes("cancel"), "the stream is cancelled");
});

test("an upload aborted while hashing rejects with the signal's own reason and reserves nothing", async () => {
  const reason = new Error("the user left");
  const controller = new AbortController();
  class AbortingBlob extends Blob {
    async arrayBuffer() {
      controller.abort(reason);
      return super.arrayBuffer();
    }
  }
  const api = fakeApi([]);
  const { client } = gate(api.fetch, fakeXhr([]).XMLHttpRequest);
  await assert.rejects(client.upload(new AbortingBlob(["x"]), { filename: "x", signal: controller.signal }), (error) => error === reason);
  assert.equal(api.calls.length, 0);
});

test("an abort rejects with the signal's own reason: during an API call, a single PUT, a part", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const pending = () => new Promise(() => {});

  const reason = new Error("the user left");
  const call = new AbortController();
  const api = fakeApi([pending]);
  setTimeout(() => call.abort(reason), 5);
  await assert.rejects(gate(api.fetch, fakeXhr([]).XMLHttpRequest).client.get(FILE_ID, { signal: call.signal }), (e) => e === reason);

  const put = new AbortController();
  const putApi = fakeApi([() => json(201, reservation(blob))]);
  const storage = fakeXhr([() => put.abort(reason)]);
  await assert.rejects(
    gate(putApi.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false, signal: put.signal }),
    (e) => e === reason,
  );
  assert.equal(storage.requests[0].aborted, true);

  const part = new AbortController();
  const parts = multipartApi(blob, { partSize: 1 });
  const partStorage = fakeXhr([() => part.abort(reason)]);
  await assert.rejects(
    gate(parts.fetch, partStorage.XMLHttpRequest).client.upload(blob, { filename: "x", multipart: true, sha256: false, signal: part.signal }),
    (e) => e === reason,
  );
  assert.equal(partStorage.requests[0].aborted, true);
  assert.equal(parts.log.deletes, 1);
});

test("an abort during a backoff wait ends the wait at once (the client's own sleep)", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  // The client's sleep (none injected); backoffs of about 10 s.
  const slow = { sleep: undefined, random: () => 0.99, retry: { baseDelayMs: 10_000, maxDelayMs: 10_000 } };
  const cases = [
    ["API Retry-After", (signal) => {
      const api = fakeApi([() => json(503, { error: { code: "unavailable", message: "busy" } }, { "retry-after": "10" })]);
      return gate(api.fetch, fakeXhr([]).XMLHttpRequest, slow).client.get(FILE_ID, { signal });
    }],
    ["single PUT backoff", (signal) => {
      const api = fakeApi([() => json(201, reservation(blob))]);
      const storage = fakeXhr([(xhr) => xhr.answer(503, SLOW_DOWN)]);
      return gate(api.fetch, storage.XMLHttpRequest, slow).client.upload(blob, { filename: "x", sha256: false, signal });
    }],
    ["part backoff", (signal) => {
      const parts = multipartApi(blob, { partSize: 1 });
      const storage = fakeXhr([(xhr) => xhr.answer(503, SLOW_DOWN)]);
      return gate(parts.fetch, storage.XMLHttpRequest, slow).client.upload(blob, { filename: "x", multipart: true, sha256: false, signal });
    }],
  ];
  for (const [name, start] of cases) {
    const reason = new Error(`stop: ${name}`);
    const controller = new AbortController();
    const began = performance.now();
    setTimeout(() => controller.abort(reason), 30);
    await assert.rejects(start(controller.signal), (e) => e === reason, name);
    assert.ok(performance.now() - began < 2_000, `${name}: the wait ended with the abort`);
  }
});

test("the first part that fails for good stops the others: the part in flight is aborted, no other is sent", async () => {
  const blob = new Blob([randomBytes(40)]);
  const api = multipartApi(blob, { partSize: 10 });
  const storage = fakeXhr((xhr) =>
    partOf(xhr) === 1
      ? setTimeout(() => xhr.answer(400, { body: "<Error><Code>BadDigest</Code></Error>" }), 1)
      : setTimeout(() => xhr.aborted || xhr.answer(200), 40),
  );
  const error = await gate(api.fetch, storage.XMLHttpRequest).client
    .upload(blob, { filename: "x", multipart: true, sha256: false, concurrency: 2 })
    .catch((e) => e);
  assert.equal(error.storageCode, "BadDigest", "the first failure, not the others' aborts");
  await new Promise((done) => setTimeout(done, 60));
  assert.deepEqual(storage.requests.map(partOf), [1, 2], "parts 3 and 4 never sent");
  assert.equal(storage.requests[1].aborted, true, "part 2 was stopped in flight");
  assert.equal(api.log.completes, 0);
});

test("only an expired URL is signed again for a part: S3's Access Denied fails it at once", async () => {
  const blob = new Blob([randomBytes(10)]);
  const api = multipartApi(blob, { partSize: 10 });
  const storage = fakeXhr((xhr) =>
    xhr.answer(403, { body: "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>" }),
  );
  const { client, sleeps } = gate(api.fetch, storage.XMLHttpRequest);
  await assert.rejects(client.upload(blob, { filename: "x", multipart: true, sha256: false }), {
    status: 403,
    storageCode: "AccessDenied",
  });
  assert.equal(storage.requests.length, 1);
  assert.equal(api.log.signed.length, 1);
  assert.deepEqual(sleeps, []);
});
