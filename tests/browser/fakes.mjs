// Fakes of the browser, the API and S3 for the client's unit tests, behaving as the real ones do
// where the client depends on it: fetch honours its signal, XMLHttpRequest drops the headers a
// page may not set and reads only the response headers the bucket's CORS rule exposes, and the
// fake API refuses a part signed against the reservation's `partSha256`, as the server does.
import { beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";

import { PresignGate, browserMaySet } from "../../client/presign-gate.js";

/** The client must never log: presigned URLs are credentials. Fails any test that logs. */
export function forbidLogging() {
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
}

export const API = "https://api.example.test/prod";
export const FILE_ID = "8b2d4c1e-0f3a-4b5c-9d6e-7f8091a2b3c4";
export const nodeSha256 = (bytes) => createHash("sha256").update(bytes).digest("base64");

export function json(status, body, headers = {}) {
  return new Response(body === null ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

export function reservation(blob, { method = "PUT" } = {}) {
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

/**
 * `fetch` as a browser's honours `init.signal`: an aborted signal rejects the call with the
 * signal's reason, before it is sent or while its answer is awaited.
 */
export function honouringSignal(fetch) {
  return async (url, init = {}) => {
    const { signal } = init;
    signal?.throwIfAborted();
    if (!signal) return fetch(url, init);
    let onAbort;
    const aborted = new Promise((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([fetch(url, init), aborted]);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  };
}

/**
 * A fake fetch answering from a list of handlers, each `(method, url, init) => Response | Error`
 * (or a promise of one: the call waits for it, or for `init.signal`).
 */
export function fakeApi(handlers) {
  const calls = [];
  const fetch = honouringSignal(async (url, init) => {
    const parsed = new URL(url);
    calls.push({ method: init.method, path: parsed.pathname, query: parsed.searchParams, init });
    const handler = handlers.shift();
    assert.ok(handler, `unexpected API call ${init.method} ${parsed.pathname}`);
    const answer = await handler(init.method, parsed, init);
    if (answer instanceof Error) throw answer;
    return answer;
  });
  return { fetch, calls, handlers };
}

/**
 * Response headers a page can read from the bucket's answers: the CORS-safelisted ones (Fetch
 * standard) and what the bucket's CORS rule exposes (template.yaml, `ExposedHeaders: [ETag]`).
 */
export const READABLE_STORAGE_HEADERS = new Set([
  "cache-control", "content-language", "content-length", "content-type", "expires", "last-modified", "pragma",
  "etag",
]);

/**
 * A fake XMLHttpRequest whose answers are scripted per request: a list, or one function for all.
 * As a browser's: a header a page may not set is dropped (and recorded in `refused`, where
 * Chromium logs "Refused to set unsafe header"), and only the response headers the bucket's CORS
 * rule lets a page read are readable (`getResponseHeader` of another one is null, and recorded in
 * `unsafeReads`, where Chromium logs "Refused to get unsafe header").
 */
export function fakeXhr(script) {
  const requests = [];
  const refused = [];
  const unsafeReads = [];
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
      if (!browserMaySet(name)) return void refused.push(name.toLowerCase());
      this.headers[name.toLowerCase()] = value;
    }
    getAllResponseHeaders() {
      return Object.entries(this.#responseHeaders)
        .filter(([name]) => READABLE_STORAGE_HEADERS.has(name.toLowerCase()))
        .map(([name, value]) => `${name.toLowerCase()}: ${value}\r\n`)
        .join("");
    }
    getResponseHeader(name) {
      if (!READABLE_STORAGE_HEADERS.has(name.toLowerCase())) {
        unsafeReads.push(name.toLowerCase());
        return null;
      }
      const found = Object.entries(this.#responseHeaders).find(([key]) => key.toLowerCase() === name.toLowerCase());
      return found ? found[1] : null;
    }
    abort() {
      this.aborted = true;
      queueMicrotask(() => this.onabort?.());
    }
    send(body) {
      this.body = body;
      requests.push(this);
      const step = typeof script === "function" ? script : script.shift();
      assert.ok(step, "unexpected PUT");
      queueMicrotask(() => step(this));
    }
    /**
     * S3's answer; `headers` as S3 sends them, whether or not a page may read them. A browser
     * reports the whole body sent first, unless `progressed: false`.
     */
    answer(status, { body = "", headers = {}, progressed = true } = {}) {
      this.status = status;
      this.responseText = body;
      this.#responseHeaders = headers;
      if (progressed) this.upload.onprogress?.({ lengthComputable: true, loaded: this.body.size, total: this.body.size });
      this.onload?.();
    }
    fail() {
      this.onerror?.();
    }
    timeout() {
      this.ontimeout?.();
    }
    /** The browser ended the request itself (a navigation, a closed page): no abort of ours. */
    abortedByBrowser() {
      this.onabort?.();
    }
    progress(loaded, { lengthComputable = true } = {}) {
      this.upload.onprogress?.({ lengthComputable, loaded, total: lengthComputable ? this.body.size : 0 });
    }
  }
  return { XMLHttpRequest: FakeXMLHttpRequest, requests, refused, unsafeReads };
}

export function gate(fetch, XMLHttpRequest, extra = {}) {
  const sleeps = [];
  const client = new PresignGate({
    apiUrl: API + "/",
    headers: async () => ({ authorization: "Bearer token-1" }),
    fetch,
    XMLHttpRequest,
    random: () => 0.5,
    sleep: async (ms) => void sleeps.push(ms),
    // The API's threshold, known: these tests script every API call. `multipartThreshold:
    // undefined` makes the client ask the API for it.
    multipartThreshold: 100 * 1024 * 1024,
    ...extra,
  });
  return { client, sleeps };
}

// AWS Knowledge Center, "Why does my presigned URL for Amazon S3 expire before the expiration time
// that I specified?": a URL signed with temporary credentials stops working when their session
// token expires, and S3 answers `ExpiredToken`; past X-Amz-Expires it answers AccessDenied
// "Request has expired" (S3 API Reference, "Error responses"). Either way a fresh URL will do.
export const EXPIRED_TOKEN = "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>";
export const REQUEST_EXPIRED = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";

/**
 * A fake API for a multipart upload of `blob` in parts of `partSize`, answering by route.
 * `reportsPartSha256: false` is a server too old to say whether parts carry a SHA-256.
 */
export function multipartApi(blob, { partSize, stored = [], status = "pending", urlLifetimeMs = 300_000, urlExpiresAt, partSha256 = false, uploadExpiresAt, reportsPartSha256 = true } = {}) {
  const partCount = Math.max(1, Math.ceil(blob.size / partSize));
  // As the server: whether parts carry a SHA-256 is fixed by the reservation, and a part that
  // differs is refused (S3 would refuse its upload).
  let hashedParts = partSha256;
  const log = { reservations: [], signed: [], completes: 0, deletes: 0, calls: [] };
  const fetch = honouringSignal(async (url, init) => {
    const { pathname } = new URL(url);
    const path = pathname.replace(/^\/prod/, "");
    const body = init.body ? JSON.parse(init.body) : undefined;
    log.calls.push(`${init.method} ${path}`);
    if (init.method === "POST" && path === "/uploads") {
      log.reservations.push(body);
      hashedParts = body.partSha256 === true;
      return json(201, {
        file: { id: FILE_ID, size: blob.size, status: "pending" },
        upload: {
          method: "MULTIPART",
          partSize,
          partCount,
          ...(reportsPartSha256 ? { partSha256: hashedParts } : {}),
          expiresAt: uploadExpiresAt ?? new Date(Date.now() + 86_400_000).toISOString(),
        },
      });
    }
    if (init.method === "POST" && path === `/files/${FILE_ID}/parts`) {
      // README, "POST /files/{id}/parts": 1 to 100 parts a request, else 400 invalid_request.
      if (!(body.parts.length >= 1 && body.parts.length <= 100)) {
        return json(400, { error: { code: "invalid_request", message: `a batch of ${body.parts.length} parts` } });
      }
      for (const part of body.parts) {
        if (Boolean(part.sha256) !== hashedParts) {
          return json(400, { error: { code: "invalid_request", message: `partNumber ${part.partNumber}: sha256 differs from partSha256` } });
        }
      }
      log.signed.push(body.parts);
      return json(200, {
        parts: body.parts.map(({ partNumber, sha256 }) => ({
          partNumber,
          method: "PUT",
          url: `https://bucket.example.test/users/alice/${FILE_ID}?partNumber=${partNumber}&X-Amz-Signature=s${log.signed.length}`,
          headers: {
            "content-length": String(partNumber < partCount ? partSize : blob.size - partSize * (partCount - 1)),
            ...(sha256 ? { "x-amz-checksum-sha256": sha256 } : {}),
          },
          expiresAt: urlExpiresAt?.(log.signed.length) ?? new Date(Date.now() + urlLifetimeMs).toISOString(),
        })),
      });
    }
    if (init.method === "GET" && path === `/files/${FILE_ID}/parts`) {
      return json(200, { partSize, partCount, ...(reportsPartSha256 ? { partSha256: hashedParts } : {}), parts: stored });
    }
    if (init.method === "GET" && path === `/files/${FILE_ID}`) {
      return json(200, { file: { id: FILE_ID, size: blob.size, status } });
    }
    if (init.method === "POST" && path === `/files/${FILE_ID}/complete`) {
      log.completes++;
      return json(200, { file: { id: FILE_ID, size: blob.size, status: "available" } });
    }
    if (init.method === "DELETE" && path === `/files/${FILE_ID}`) {
      log.deletes++;
      return new Response(null, { status: 204 });
    }
    throw new Error(`unexpected API call ${init.method} ${path}`);
  });
  return { fetch, log, partCount };
}

/** Runs `fn` with `Date.now()` fixed at `now` (the client's expiry guards and URL margins read it). */
export async function atTime(now, fn) {
  const realNow = Date.now;
  Date.now = () => now;
  try {
    return await fn();
  } finally {
    Date.now = realNow;
  }
}

export const partOf = (xhr) => Number(new URL(xhr.url).searchParams.get("partNumber"));
export const bytesOf = async (blob) => Buffer.from(await blob.arrayBuffer());
