// The browser client against a fake fetch and a fake XMLHttpRequest: the request sequence, the
// retry rules, error codes and aborts, without a browser. tests/browser/chromium.test.mjs runs
// the same client in Chromium against the real local stack.
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";

import { PresignGate, PresignGateError, parseRetryAfter, browserMaySet } from "../../client/presign-gate.js";
import { Sha256, sha256Base64, toBase64 } from "../../client/sha256.js";

const API = "https://api.example.test/prod";
const FILE_ID = "8b2d4c1e-0f3a-4b5c-9d6e-7f8091a2b3c4";
const nodeSha256 = (bytes) => createHash("sha256").update(bytes).digest("base64");

// The client must never log: presigned URLs are credentials.
let consoleCalls;
const originalConsole = {};
beforeEach(() => {
  consoleCalls = [];
  for (const level of ["log", "info", "warn", "error", "debug", "trace"]) {
    originalConsole[level] = console[level];
    console[level] = (...args) => consoleCalls.push([level, ...args]);
  }
});
afterEach(() => {
  Object.assign(console, originalConsole);
  assert.deepEqual(consoleCalls, [], "the client logged something");
});

function json(status, body, headers = {}) {
  return new Response(body === null ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function reservation(blob, { method = "PUT" } = {}) {
  return {
    file: { id: FILE_ID, filename: "a.txt", contentType: "text/plain", size: blob.size, status: "pending" },
    upload:
      method === "PUT"
        ? {
            method: "PUT",
            url: "https://bucket.example.test/users/alice/" + FILE_ID + "?X-Amz-Signature=secret",
            headers: { "content-type": "text/plain", "content-length": String(blob.size), "if-none-match": "*" },
            expiresAt: new Date(Date.now() + 300_000).toISOString(),
          }
        : { method, partSize: 5 << 20, partCount: 2, expiresAt: new Date(Date.now() + 86_400_000).toISOString() },
  };
}

/** A fake fetch answering from a list of handlers, each `(method, url, init) => Response | Error`. */
function fakeApi(handlers) {
  const calls = [];
  const fetch = async (url, init) => {
    const parsed = new URL(url);
    calls.push({ method: init.method, path: parsed.pathname, query: parsed.searchParams, init });
    const handler = handlers.shift();
    assert.ok(handler, `unexpected API call ${init.method} ${parsed.pathname}`);
    const answer = handler(init.method, parsed, init);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { fetch, calls, handlers };
}

/** A fake XMLHttpRequest whose answers are scripted per request. */
function fakeXhr(script) {
  const requests = [];
  class FakeXMLHttpRequest {
    upload = {};
    headers = {};
    status = 0;
    responseText = "";
    #responseHeaders = {};
    open(method, url) {
      this.method = method;
      this.url = url;
    }
    setRequestHeader(name, value) {
      this.headers[name.toLowerCase()] = value;
    }
    getAllResponseHeaders() {
      return Object.entries(this.#responseHeaders).map(([name, value]) => `${name}: ${value}\r\n`).join("");
    }
    abort() {
      queueMicrotask(() => this.onabort?.());
    }
    send(body) {
      this.body = body;
      requests.push(this);
      const step = script.shift();
      assert.ok(step, "unexpected PUT");
      queueMicrotask(() => step(this));
    }
    answer(status, { body = "", headers = {} } = {}) {
      this.status = status;
      this.responseText = body;
      this.#responseHeaders = headers;
      this.upload.onprogress?.({ lengthComputable: true, loaded: this.body.size, total: this.body.size });
      this.onload?.();
    }
    fail() {
      this.onerror?.();
    }
  }
  return { XMLHttpRequest: FakeXMLHttpRequest, requests };
}

function gate(fetch, XMLHttpRequest, extra = {}) {
  const sleeps = [];
  const client = new PresignGate({
    apiUrl: API + "/",
    headers: async () => ({ authorization: "Bearer token-1" }),
    fetch,
    XMLHttpRequest,
    random: () => 0.5,
    sleep: async (ms) => void sleeps.push(ms),
    ...extra,
  });
  return { client, sleeps };
}

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

test("S3's refusal is not retried, and its error never carries the URL", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const api = fakeApi([() => json(201, reservation(blob))]);
  const storage = fakeXhr([
    (xhr) => xhr.answer(403, { body: "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>" }),
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

test("a MULTIPART reservation is refused by name until the client sends parts", async () => {
  const blob = new Blob(["x"], { type: "text/plain" });
  const api = fakeApi([() => json(201, reservation(blob, { method: "MULTIPART" }))]);
  await assert.rejects(gate(api.fetch, fakeXhr([]).XMLHttpRequest).client.upload(blob, { filename: "x", sha256: false }), {
    code: "unsupported_upload",
  });
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
