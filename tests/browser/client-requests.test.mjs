// What the client asks of the API and of S3, request by request: URLs, headers, bodies, the
// fetch options that keep answers out of caches and credentials out of requests, signals, and
// the API's errors in the client's words.
import { test } from "node:test";
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { randomBytes } from "node:crypto";

import { PresignGate } from "../../client/presign-gate.js";
import { randomKey } from "../../client/api.js";
import {
  API, FILE_ID, EXPIRED_TOKEN, fakeApi, fakeXhr, forbidLogging, gate, honouringSignal, json, multipartApi, reservation,
} from "./fakes.mjs";

forbidLogging();

/** A client of `fetch` with fixed headers (an object, not a function) and no retries unless asked. */
const plainClient = (fetch, extra = {}) =>
  new PresignGate({ apiUrl: `${API}//`, headers: { authorization: "Bearer t" }, fetch, sleep: async () => {}, retry: { retries: 0 }, ...extra });

test("API calls go to the API URL, trailing slashes dropped, with the caller's headers, uncached and without credentials", async () => {
  const api = fakeApi([
    () => json(200, { files: [], nextToken: null }),
    () => json(200, { files: [] }),
    () => json(200, { urls: [{ id: "a" }], errors: [] }),
  ]);
  const client = plainClient(api.fetch);
  assert.deepEqual(await client.list(), { files: [], nextToken: null });
  // A caller may hand back the last page's `nextToken: null` as it came.
  await client.list({ limit: 5, nextToken: null });
  assert.deepEqual(await client.downloadUrls(["a"]), { urls: [{ id: "a" }], errors: [] });
  const [list, limited, batch] = api.calls;
  assert.deepEqual([list.method, list.path, list.query.toString()], ["GET", "/prod/files", ""]);
  assert.equal(limited.query.toString(), "limit=5");
  for (const { init } of api.calls) {
    assert.deepEqual([init.cache, init.credentials, init.headers.authorization], ["no-store", "omit", "Bearer t"]);
  }
  assert.equal(list.init.body, undefined);
  assert.equal("content-type" in list.init.headers, false, "no body, no content type");
  assert.deepEqual([batch.method, batch.path, batch.init.headers["content-type"]], ["POST", "/prod/files/download-urls", "application/json"]);
  assert.deepEqual(JSON.parse(batch.init.body), { ids: ["a"] });
});

test("without a fetch of its own the client uses the page's", async () => {
  const original = globalThis.fetch;
  const api = fakeApi([() => json(200, { file: { id: FILE_ID } })]);
  globalThis.fetch = api.fetch;
  try {
    assert.equal((await new PresignGate({ apiUrl: API }).get(FILE_ID)).id, FILE_ID);
  } finally {
    globalThis.fetch = original;
  }
  assert.equal(api.calls[0].path, `/prod/files/${FILE_ID}`);
});

test("the constructor refuses a missing API URL and part counts that are not positive integers, naming the option", async () => {
  assert.throws(() => new PresignGate({}), { name: "TypeError", message: "PresignGate: apiUrl is required" });
  for (const value of [0, -1, 1.5, "2", null]) {
    assert.throws(() => new PresignGate({ apiUrl: API, partConcurrency: value }), {
      name: "TypeError",
      message: "PresignGate: partConcurrency must be a positive integer",
    });
  }
  const blob = new Blob([randomBytes(2)]);
  const api = multipartApi(blob, { partSize: 1 });
  await assert.rejects(gate(api.fetch, fakeXhr([]).XMLHttpRequest).client.upload(blob, { filename: "x", multipart: true, sha256: false, concurrency: 0 }), {
    message: "PresignGate: concurrency must be a positive integer",
  });
});

test("the idempotency key is the page's crypto.randomUUID() where it has one", () => {
  Object.defineProperty(globalThis.crypto, "randomUUID", { value: () => "from-randomUUID", configurable: true });
  try {
    assert.equal(randomKey(), "from-randomUUID");
  } finally {
    delete globalThis.crypto.randomUUID;
  }
});

test("the API's errors: its own code and message; words of the client's for what answers in front of it", async () => {
  const broken = () => new Response(new ReadableStream({ start: (controller) => controller.error(new Error("reset")) }), { status: 502 });
  const cases = [
    [() => json(400, { error: { code: "invalid_request", message: "size is missing" } }), "invalid_request", "size is missing"],
    [() => json(409, { error: { code: "not_pending" } }), "not_pending", "not_pending"],
    [() => json(400, { error: { message: "no code" } }), "http_error", "The API answered 400."],
    [() => json(400, { error: "words" }), "http_error", "The API answered 400."],
    [() => new Response("null", { status: 502 }), "unavailable", "The API answered 502."],
    [() => json(401, { message: "Unauthorized" }), "unauthenticated", "Unauthorized"],
    [() => json(403, { message: "Forbidden" }), "forbidden", "Forbidden"],
    [() => new Response("<html>", { status: 404 }), "http_error", "The API answered 404."],
    [() => new Response("<html>", { status: 499 }), "http_error", "The API answered 499."],
    [() => new Response("<html>", { status: 500 }), "unavailable", "The API answered 500."],
    [broken, "unavailable", "The API answered 502."],
  ];
  for (const [answer, code, message] of cases) {
    const error = await plainClient(fakeApi([answer]).fetch).get(FILE_ID).catch((e) => e);
    assert.deepEqual([error.name, error.code, error.message], ["PresignGateError", code, message]);
    assert.equal("cause" in error, false);
  }
});

test("an API answer that is not JSON is invalid_response, with the parse error as its cause", async () => {
  const error = await plainClient(fakeApi([() => new Response("<html>", { status: 200 })]).fetch).get(FILE_ID).catch((e) => e);
  assert.deepEqual([error.code, error.status, error.message], ["invalid_response", 200, "The API answered with something other than JSON."]);
  assert.equal(error.cause?.name, "SyntaxError");
});

test("an API that cannot be reached is network_error, with the browser's error as its cause", async () => {
  const failure = new TypeError("Failed to fetch");
  const error = await plainClient(fakeApi([() => failure]).fetch).get(FILE_ID).catch((e) => e);
  assert.deepEqual([error.code, error.status], ["network_error", 0]);
  assert.match(error.message, /^The API could not be reached/);
  assert.equal(error.cause, failure);
});

test("a 503 without a body is retried like any other", async () => {
  const api = fakeApi([() => new Response(null, { status: 503 }), () => json(200, { file: { id: FILE_ID } })]);
  assert.equal((await plainClient(api.fetch, { retry: { retries: 1 } }).get(FILE_ID)).id, FILE_ID);
});

test("an API call aborted in flight is not retried: no backoff, the signal's reason even with retries left", async () => {
  const reason = new Error("the user left");
  const controller = new AbortController();
  const api = fakeApi([() => (setTimeout(() => controller.abort(reason), 1), new Promise(() => {}))]);
  const { client, sleeps } = gate(api.fetch, fakeXhr([]).XMLHttpRequest);
  await assert.rejects(client.get(FILE_ID, { signal: controller.signal }), (error) => error === reason);
  assert.deepEqual(sleeps, []);
  assert.equal(api.calls.length, 1);
});

test("download: the URL is fetched with none of the caller's headers; an expired one is replaced `retries` times, other refusals fail at once", async () => {
  const url = "https://bucket.example.test/users/alice/f?X-Amz-Signature=s";
  const downloadUrl = () => json(200, { url, expiresAt: new Date(Date.now() + 60_000).toISOString() });
  const ok = fakeApi([downloadUrl, () => new Response("bytes")]);
  const controller = new AbortController();
  const response = await plainClient(ok.fetch).download(FILE_ID, { disposition: "attachment", signal: controller.signal });
  assert.equal(await response.text(), "bytes");
  const [asked, fetched] = ok.calls;
  assert.deepEqual([asked.path, asked.query.get("disposition")], [`/prod/files/${FILE_ID}/download-url`, "attachment"]);
  assert.equal(fetched.init.method, "GET");
  assert.deepEqual([fetched.init.cache, fetched.init.credentials, fetched.init.headers], ["no-store", "omit", undefined]);
  assert.equal(fetched.init.signal, controller.signal);

  const expired = fakeApi(Array.from({ length: 3 }, () => [downloadUrl, () => new Response(EXPIRED_TOKEN, { status: 403 })]).flat());
  const error = await plainClient(expired.fetch, { retry: { retries: 2 } }).download(FILE_ID).catch((e) => e);
  assert.deepEqual([error.code, error.status, error.storageCode], ["download_failed", 403, "ExpiredToken"]);
  assert.equal(error.message, "Storage refused the download (ExpiredToken).");
  assert.equal(expired.calls.length, 6, "three URLs, each refused");

  for (const [answer, message] of [
    [() => new Response("<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", { status: 403 }), "Storage refused the download (AccessDenied)."],
    [() => new Response("", { status: 404 }), "Storage refused the download (HTTP 404)."],
  ]) {
    const once = fakeApi([downloadUrl, answer]);
    await assert.rejects(plainClient(once.fetch, { retry: { retries: 2 } }).download(FILE_ID), { code: "download_failed", message });
    assert.equal(once.calls.length, 2);
  }
});

test("download: storage that cannot be reached is network_error; an abort is the signal's reason", async () => {
  const url = "https://bucket.example.test/users/alice/f?X-Amz-Signature=s";
  const downloadUrl = () => json(200, { url });
  const failure = new TypeError("Failed to fetch");
  const error = await plainClient(fakeApi([downloadUrl, () => failure]).fetch).download(FILE_ID).catch((e) => e);
  assert.deepEqual([error.code, error.status, error.cause], ["network_error", 0, failure]);
  assert.match(error.message, /^The file could not be fetched from storage/);
  assert.doesNotMatch(error.message, /https?:|Signature/);

  const reason = new Error("the user left");
  const controller = new AbortController();
  const stalled = fakeApi([downloadUrl, () => (controller.abort(reason), new Promise(() => {}))]);
  await assert.rejects(plainClient(stalled.fetch).download(FILE_ID, { signal: controller.signal }), (e) => e === reason);
});

test("every request of an upload, a resume and the others is made under the caller's signal", async () => {
  const blob = new Blob([randomBytes(20)]);
  const controller = new AbortController();
  const signals = [];
  const record = (fetch) => (url, init) => {
    signals.push([`${init.method} ${new URL(url).pathname}`, init.signal]);
    return fetch(url, init);
  };
  const single = fakeApi([() => json(201, reservation(blob)), () => json(200, { file: { id: FILE_ID, status: "available" } })]);
  const storage = fakeXhr((xhr) => xhr.answer(200));
  const options = { signal: controller.signal };
  await gate(record(single.fetch), storage.XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false, ...options });
  const parts = multipartApi(blob, { partSize: 10 });
  const client = gate(record(parts.fetch), storage.XMLHttpRequest).client;
  await client.upload(blob, { filename: "x", multipart: true, sha256: false, ...options });
  await client.resume(FILE_ID, blob, options);
  await client.delete(FILE_ID, options);
  const others = fakeApi([
    () => json(200, { url: "https://bucket.example.test/k" }),
    () => new Response("bytes"),
    () => json(200, { files: [] }),
    () => json(200, { urls: [], errors: [] }),
    () => json(200, { upload: { method: "PUT" } }),
  ]);
  const another = gate(record(others.fetch), storage.XMLHttpRequest).client;
  await another.download(FILE_ID, options);
  await another.list(options);
  await another.downloadUrls([FILE_ID], options);
  await another.uploadUrl(FILE_ID, options);
  const file = `/prod/files/${FILE_ID}`;
  assert.deepEqual(signals.map(([call]) => call), [
    "POST /prod/uploads", `POST ${file}/complete`,
    "POST /prod/uploads", `POST ${file}/parts`, `POST ${file}/complete`,
    `GET ${file}`, `GET ${file}/parts`, `POST ${file}/parts`, `POST ${file}/complete`,
    `DELETE ${file}`,
    `GET ${file}/download-url`, "GET /k", "GET /prod/files", "POST /prod/files/download-urls", `POST ${file}/upload-url`,
  ]);
  // Parts are signed under the upload's own signal, which the caller's aborts while the parts
  // are sent (the abort tests); every other request under the caller's.
  const partSigning = signals.filter(([call]) => call.endsWith("/parts") && call.startsWith("POST"));
  assert.ok(partSigning.every(([, signal]) => signal instanceof AbortSignal && signal !== controller.signal));
  controller.abort();
  const unaborted = signals.filter(([, signal]) => !signal?.aborted && !partSigning.some(([, own]) => own === signal));
  assert.deepEqual(unaborted.map(([call]) => call), [], "requests not under the caller's signal");
});

test("an upload or a part leaves no listener on the caller's signal, whether it retried or not", async () => {
  const blob = new Blob([randomBytes(20)]);
  const controller = new AbortController();
  // The client's own sleep: short backoffs.
  const fast = { sleep: undefined, retry: { baseDelayMs: 2, maxDelayMs: 2 } };
  const single = fakeApi([() => json(201, reservation(blob)), () => json(200, { file: { id: FILE_ID, status: "available" } })]);
  const storage = fakeXhr([(xhr) => xhr.answer(503), (xhr) => xhr.answer(200)]);
  await gate(single.fetch, storage.XMLHttpRequest, fast).client.upload(blob, { filename: "x", sha256: false, signal: controller.signal });
  const parts = multipartApi(blob, { partSize: 10 });
  const partStorage = fakeXhr([(xhr) => xhr.answer(503), (xhr) => xhr.answer(200), (xhr) => xhr.answer(200)]);
  await gate(parts.fetch, partStorage.XMLHttpRequest, fast).client.upload(blob, { filename: "x", multipart: true, sha256: false, concurrency: 1, signal: controller.signal });
  assert.deepEqual(getEventListeners(controller.signal, "abort"), []);

  // Without a signal the same retries run.
  const bare = fakeApi([() => json(201, reservation(blob)), () => json(200, { file: { id: FILE_ID, status: "available" } })]);
  await gate(bare.fetch, fakeXhr([(xhr) => xhr.answer(503), (xhr) => xhr.answer(200)]).XMLHttpRequest, fast).client.upload(blob, { filename: "x", sha256: false });
});

test("the API's multipart threshold: 0 and up as reported, anything else the default; a failure is asked again", async () => {
  for (const [body, expected] of [
    [{ uploads: { multipartThresholdBytes: 0 } }, 0],
    [{ uploads: { multipartThresholdBytes: 6 } }, 6],
    [{ uploads: { multipartThresholdBytes: -1 } }, 100 * 1024 * 1024],
    [{ uploads: { multipartThresholdBytes: 1.5 } }, 100 * 1024 * 1024],
    [{ uploads: { multipartThresholdBytes: "6" } }, 100 * 1024 * 1024],
    [null, 100 * 1024 * 1024],
  ]) {
    const client = plainClient(fakeApi([() => new Response(JSON.stringify(body))]).fetch);
    assert.equal(await client.resolveMultipartThreshold(), expected, JSON.stringify(body));
  }
  const api = fakeApi([() => json(500, { error: { code: "internal", message: "fault" } }), () => json(200, { uploads: { multipartThresholdBytes: 7 } })]);
  const client = plainClient(api.fetch);
  await assert.rejects(client.resolveMultipartThreshold(), { code: "internal" });
  assert.equal(await client.resolveMultipartThreshold(), 7);
  assert.equal(await client.resolveMultipartThreshold(), 7);
  assert.equal(api.calls.length, 2);
});

test("an abort while the threshold is asked ends that caller's wait; the answer still serves the next", async () => {
  let answer;
  const api = fakeApi([() => new Promise((resolve) => (answer = resolve))]);
  const client = plainClient(api.fetch);
  const reason = new Error("the user left");
  const controller = new AbortController();
  const waiting = client.reserve(new Blob(["x"]), { filename: "x", signal: controller.signal });
  await new Promise((done) => setTimeout(done, 1));
  controller.abort(reason);
  await assert.rejects(waiting, (error) => error === reason);
  assert.equal(api.calls[0].init.signal, undefined, "shared by concurrent uploads, so under no one's signal");
  answer(json(200, { uploads: { multipartThresholdBytes: 9 } }));
  const later = new AbortController();
  const unknown = plainClient(fakeApi([() => json(200, { uploads: { multipartThresholdBytes: 9 } })]).fetch);
  assert.equal(await unknown.resolveMultipartThreshold({ signal: later.signal }), 9);
  assert.deepEqual(getEventListeners(later.signal, "abort"), [], "no listener left on the caller's signal");
  assert.equal(await client.resolveMultipartThreshold({ signal: later.signal }), 9);
  const aborted = new AbortController();
  aborted.abort(reason);
  await assert.rejects(plainClient(honouringSignal(async () => json(200, {}))).resolveMultipartThreshold({ signal: aborted.signal }), (e) => e === reason);
});

test("signParts fails as invalid_response when the API signs no URL for a part it was asked for", async () => {
  const answers = [
    json(200, { parts: [{ partNumber: 1, url: "https://bucket.example.test/1" }] }),
    json(200, { parts: [{ partNumber: 1, url: "https://bucket.example.test/1" }, { partNumber: 2 }] }),
    json(200, {}),
    new Response(null, { status: 204 }),
  ];
  for (const answer of answers) {
    const error = await plainClient(fakeApi([() => answer]).fetch).signParts(FILE_ID, [{ partNumber: 1 }, { partNumber: 2 }]).catch((e) => e);
    assert.deepEqual([error.code, error.status, error.message], ["invalid_response", 200, `The API signed no URL for part ${error.message.includes("part 1") ? 1 : 2}.`]);
  }
});

test("resume refuses another file in words that give both sizes", async () => {
  const api = multipartApi(new Blob([randomBytes(35)]), { partSize: 10 });
  await assert.rejects(gate(api.fetch, fakeXhr([]).XMLHttpRequest).client.resume(FILE_ID, new Blob([randomBytes(34)])), {
    code: "resume_mismatch",
    message: "This is not the file that upload was reserved for: it has 34 bytes, the reservation 35.",
  });
});
