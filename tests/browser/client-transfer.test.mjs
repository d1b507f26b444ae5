// Sending bytes to S3, rule by rule: which headers a page may set, how S3's answers are read
// (success, expiry, refusals in words), what the XMLHttpRequest reports, and the SHA-256.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { browserMaySet, parseRetryAfter } from "../../client/presign-gate.js";
import { storageError, urlExpired } from "../../client/errors.js";
import { Sha256, sha256Base64 } from "../../client/sha256.js";
import {
  FILE_ID, EXPIRED_TOKEN, fakeApi, fakeXhr, forbidLogging, gate, json, multipartApi, nodeSha256, reservation,
} from "./fakes.mjs";

forbidLogging();

const available = () => json(200, { file: { id: FILE_ID, status: "available" } });

// Fetch standard, "forbidden request-header": these names, and any starting `proxy-` or `sec-`.
test("a page may set every header but the Fetch standard's forbidden ones", () => {
  const forbidden = [
    "Accept-Charset", "Accept-Encoding", "Access-Control-Request-Headers", "Access-Control-Request-Method",
    "Connection", "Content-Length", "Cookie", "Cookie2", "Date", "DNT", "Expect", "Host", "Keep-Alive",
    "Origin", "Referer", "Set-Cookie", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Via",
    "Proxy-Authorization", "Sec-Fetch-Mode",
  ];
  for (const name of forbidden) assert.equal(browserMaySet(name), false, name);
  for (const name of ["content-type", "if-none-match", "cache-control", "x-amz-checksum-sha256", "x-amz-meta-proxy"]) {
    assert.equal(browserMaySet(name), true, name);
  }
});

test("Retry-After is delay-seconds (spaces around them allowed) or an HTTP date; anything else is none", () => {
  assert.equal(parseRetryAfter("120"), 120_000);
  assert.equal(parseRetryAfter(" 7 "), 7_000);
  for (const value of ["7s", "x7", "", null, undefined, "soon"]) assert.equal(parseRetryAfter(value), null, String(value));
  const inTenSeconds = new Date(Date.now() + 10_000).toUTCString();
  const ms = parseRetryAfter(inTenSeconds);
  assert.ok(ms > 8_000 && ms <= 10_000, `${ms}`);
  assert.equal(parseRetryAfter(new Date(Date.now() - 60_000).toUTCString()), 0);
});

// S3 API Reference, "Error responses": an expired URL is 403 AccessDenied "Request has expired";
// AWS Knowledge Center, "Why does my presigned URL for Amazon S3 expire before the expiration
// time?": a URL whose session token expired is answered ExpiredToken (400, or 403).
test("only S3's two words for an expired URL count as expired", () => {
  const cases = [
    [403, EXPIRED_TOKEN, true],
    [400, EXPIRED_TOKEN, true],
    [403, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", true],
    [400, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", false],
    [403, "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", false],
    [403, "<Error><Code>AccessDenied</Code></Error>", false],
    [403, "<Error><Code>SignatureDoesNotMatch</Code><Message>Request has expired</Message></Error>", false],
    [403, "<Error><Code>AccessDenied</Code><Message>The Request has expired</Message></Error>", false],
    [500, EXPIRED_TOKEN, false],
    [0, undefined, false],
  ];
  for (const [status, body, expired] of cases) assert.equal(urlExpired({ status, body }), expired, `${status} ${body}`);
});

test("S3's refusals in words: a sentence of their own for the codes S3 sends, the code or status for the others", () => {
  const codes = [
    "AccessDenied", "ExpiredToken", "SignatureDoesNotMatch", "BadDigest", "PreconditionFailed", "IncompleteBody",
    "SlowDown", "ConditionalRequestConflict", "NoSuchUpload",
  ];
  const messages = codes.map((code) => {
    const error = storageError({ status: 400, body: `<Error><Code>${code}</Code></Error>` });
    assert.deepEqual([error.code, error.storageCode, error.status], ["upload_failed", code, 400]);
    assert.doesNotMatch(error.message, /Storage refused the upload \(/, code);
    assert.ok(error.message.length > 20, code);
    return error.message;
  });
  assert.equal(new Set(messages).size, codes.length, "one sentence per code");
  assert.equal(storageError({ status: 400, body: "<Error><Code>InvalidArgument</Code></Error>" }).message, "Storage refused the upload (InvalidArgument).");
  assert.equal(storageError({ status: 502, body: "<html>Bad Gateway</html>" }).message, "Storage refused the upload (HTTP 502).");
  const lost = storageError({ status: 0 });
  assert.deepEqual([lost.code, lost.status, lost.storageCode], ["network_error", 0, undefined]);
  assert.match(lost.message, /could not be sent to storage/);
  assert.equal("cause" in lost, false, "no cause where there was none");
});

test("a PUT lost to the network on every attempt fails as network_error; a timed-out one is retried", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const lost = fakeApi([() => json(201, reservation(blob))]);
  const storage = fakeXhr((xhr) => xhr.fail());
  await assert.rejects(gate(lost.fetch, storage.XMLHttpRequest, { retry: { retries: 1 } }).client.upload(blob, { filename: "x", sha256: false }), {
    code: "network_error",
    status: 0,
  });
  assert.equal(storage.requests.length, 2);

  const slow = fakeApi([() => json(201, reservation(blob)), available]);
  const timedOut = fakeXhr([(xhr) => xhr.timeout(), (xhr) => xhr.answer(200)]);
  await gate(slow.fetch, timedOut.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false });
  assert.equal(timedOut.requests.length, 2);
});

test("only a 2xx is stored: a 300 fails a single PUT and a part", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const api = fakeApi([() => json(201, reservation(blob))]);
  await assert.rejects(gate(api.fetch, fakeXhr([(xhr) => xhr.answer(300)]).XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false }), {
    status: 300,
    code: "upload_failed",
  });
  const parts = multipartApi(blob, { partSize: 1 });
  await assert.rejects(
    gate(parts.fetch, fakeXhr([(xhr) => xhr.answer(300)]).XMLHttpRequest).client.upload(blob, { filename: "x", multipart: true, sha256: false }),
    { status: 300 },
  );
  assert.equal(parts.log.completes, 0);
});

test("only a 409 ConditionalRequestConflict is a conflict to retry; the same code at another status is not", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const api = fakeApi([() => json(201, reservation(blob))]);
  const storage = fakeXhr((xhr) => xhr.answer(400, { body: "<Error><Code>ConditionalRequestConflict</Code></Error>" }));
  await assert.rejects(gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false }), { status: 400 });
  assert.equal(storage.requests.length, 1);
});

test("upload progress is reported only when its length is known, and always against the blob's size", async () => {
  const blob = new Blob(["0123456789"], { type: "text/plain" });
  const api = fakeApi([() => json(201, reservation(blob)), available]);
  const storage = fakeXhr([(xhr) => (xhr.progress(3, { lengthComputable: false }), xhr.progress(6), xhr.answer(200))]);
  const progress = [];
  await gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false, onProgress: (p) => progress.push([p.loaded, p.total]) });
  assert.deepEqual(progress, [[0, 10], [6, 10], [10, 10], [10, 10]]);
});

test("a request the browser ends by itself rejects as an AbortError; one of ours with the signal's reason", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const api = fakeApi([() => json(201, reservation(blob))]);
  const storage = fakeXhr([(xhr) => xhr.abortedByBrowser()]);
  const error = await gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false }).catch((e) => e);
  assert.ok(error instanceof DOMException, String(error));
  assert.deepEqual([error.name, error.message], ["AbortError", "The upload was aborted."]);
});

test("an abort while a fresh URL is asked for rejects with the signal's reason, not S3's refusal", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const reason = new Error("the user left");
  const controller = new AbortController();
  const api = fakeApi([
    () => json(201, reservation(blob)),
    () => {
      controller.abort(reason);
      return new Promise(() => {});
    },
  ]);
  const storage = fakeXhr([(xhr) => xhr.answer(403, { body: EXPIRED_TOKEN })]);
  await assert.rejects(
    gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false, signal: controller.signal }),
    (error) => error === reason,
  );
});

test("a fresh URL that is not a PUT URL fails the upload with S3's refusal, the API's answer as its cause", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  for (const upload of [{ method: "MULTIPART", url: "https://bucket.example.test/k" }, { method: "PUT" }]) {
    const api = fakeApi([() => json(201, reservation(blob)), () => json(200, { upload })]);
    const storage = fakeXhr([(xhr) => xhr.answer(403, { body: EXPIRED_TOKEN })]);
    const error = await gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false }).catch((e) => e);
    assert.deepEqual([error.code, error.storageCode], ["upload_failed", "ExpiredToken"], JSON.stringify(upload));
    assert.deepEqual([error.cause?.code, error.cause?.status, error.cause?.message], ["invalid_response", 200, "The API signed no upload URL."]);
    assert.equal(storage.requests.length, 1);
  }
});

test("a reservation of a method the client does not know fails before anything is sent", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const answer = reservation(blob);
  answer.upload = { method: "POST", url: "https://bucket.example.test/", fields: {} };
  const api = fakeApi([() => json(201, answer)]);
  const storage = fakeXhr([]);
  await assert.rejects(gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false }), {
    code: "unsupported_upload",
    status: 0,
    message: "This client cannot send a POST upload yet.",
  });
  assert.equal(storage.requests.length, 0);
});

test("Sha256 refuses more bytes after its digest, and a second digest", () => {
  const hash = new Sha256().update(new Uint8Array(3));
  hash.digest();
  assert.throws(() => hash.update(new Uint8Array(1)), { message: "Sha256: update after digest" });
  assert.throws(() => hash.digest(), { message: "Sha256: digest called twice" });
});

/** A blob-like that records how it is read: whole (`arrayBuffer`) or as a stream. */
function watched(bytes) {
  const blob = new Blob([bytes]);
  const reads = [];
  return {
    size: blob.size,
    reads,
    arrayBuffer: () => (reads.push("whole"), blob.arrayBuffer()),
    stream: () => (reads.push("stream"), blob.stream()),
  };
}

test("a blob up to wholeBufferLimit is read whole; one byte more is streamed; without WebCrypto every blob is", async () => {
  const bytes = randomBytes(1000);
  const atLimit = watched(bytes);
  assert.equal(await sha256Base64(atLimit, { wholeBufferLimit: 1000 }), nodeSha256(bytes));
  const over = watched(bytes);
  assert.equal(await sha256Base64(over, { wholeBufferLimit: 999 }), nodeSha256(bytes));
  assert.deepEqual([atLimit.reads, over.reads], [["whole"], ["stream"]]);

  // A page outside a secure context has no crypto.subtle; a very old one no crypto at all.
  const { crypto } = globalThis;
  const ownCrypto = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  const withoutSubtle = () => Object.defineProperty(crypto, "subtle", { value: undefined, configurable: true });
  const withoutCrypto = () => Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true });
  for (const without of [withoutSubtle, withoutCrypto]) {
    without();
    try {
      const small = watched(bytes);
      assert.equal(await sha256Base64(small), nodeSha256(bytes));
      assert.deepEqual(small.reads, ["stream"]);
    } finally {
      delete crypto.subtle;
      Object.defineProperty(globalThis, "crypto", ownCrypto);
    }
  }
  assert.equal(typeof globalThis.crypto.subtle.digest, "function");
});
