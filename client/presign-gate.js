// Presign Gate's browser client: reserve an upload through the API, send the bytes straight to S3
// with the presigned URL, confirm; list, download and delete the caller's files.
//
// Dependency-free ES module: `<script type="module">` can import it as it is. It never logs
// anything: presigned URLs are credentials, and error messages never include one.

import { sha256Base64 } from "./sha256.js";

/**
 * Request headers a page may not set (the Fetch standard's forbidden request-header names): the
 * browser sets them itself or refuses the request, so the upload's listed headers are filtered.
 */
const FORBIDDEN_HEADERS = new Set([
  "accept-charset", "accept-encoding", "access-control-request-headers",
  "access-control-request-method", "connection", "content-length", "cookie", "cookie2", "date",
  "dnt", "expect", "host", "keep-alive", "origin", "referer", "set-cookie", "te", "trailer",
  "transfer-encoding", "upgrade", "via",
]);

/** @param {string} name */
export function browserMaySet(name) {
  const lower = name.toLowerCase();
  return !FORBIDDEN_HEADERS.has(lower) && !lower.startsWith("proxy-") && !lower.startsWith("sec-");
}

/**
 * Statuses worth another attempt: 503 is the API's `unavailable` (and S3's SlowDown), 429 API
 * Gateway's throttling, 500 S3's InternalError (which AWS says to retry; the API's own 500 is a
 * fault that retrying will not fix, so API calls do not retry it).
 */
const RETRYABLE_API = new Set([429, 503]);
const RETRYABLE_STORAGE = new Set([429, 500, 503]);

/** The server's default `MULTIPART_THRESHOLD_BYTES` (100 MiB, Uppy's own threshold). */
export const DEFAULT_MULTIPART_THRESHOLD = 100 * 1024 * 1024;
/** Parts in flight at once (browsers open about six connections per origin). */
export const DEFAULT_PART_CONCURRENCY = 4;
/** The most part URLs `POST /files/{id}/parts` signs in one request. */
export const PART_URL_BATCH = 100;
/** A part URL with less life left than this is signed again before it is used. */
const PART_URL_MARGIN_MS = 30_000;

export const DEFAULT_RETRY = Object.freeze({
  /** Attempts after the first. */
  retries: 4,
  /** Exponential backoff with full jitter: a delay in [0, min(maxDelayMs, baseDelayMs * 2^n)). */
  baseDelayMs: 300,
  maxDelayMs: 8000,
  /** A `Retry-After` longer than this is cut to it. */
  maxRetryAfterMs: 30000,
});

/** An API or storage refusal: `code` is the API's error code, or one of the client's own. */
export class PresignGateError extends Error {
  /**
   * @param {string} message
   * @param {{ status: number, code: string, storageCode?: string, cause?: unknown }} details
   */
  constructor(message, { status, code, storageCode, cause }) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "PresignGateError";
    /** HTTP status; 0 when no response arrived (network failure, CORS refusal). */
    this.status = status;
    this.code = code;
    /** S3's error code when storage refused the bytes (`BadDigest`, `AccessDenied`, ...). */
    this.storageCode = storageCode;
  }
}

export class PresignGate {
  #apiUrl;
  #headers;
  #fetch;
  #XMLHttpRequest;
  #retry;
  #random;
  #sleep;
  #multipartThreshold;
  #partConcurrency;

  /** @param {Partial<import("./presign-gate.js").PresignGateOptions>} options `apiUrl` is required */
  constructor({
    apiUrl, headers, fetch, XMLHttpRequest, retry, random, sleep,
    multipartThreshold = DEFAULT_MULTIPART_THRESHOLD, partConcurrency = DEFAULT_PART_CONCURRENCY,
  } = {}) {
    if (!apiUrl) throw new TypeError("PresignGate: apiUrl is required");
    this.#apiUrl = String(apiUrl).replace(/\/+$/, "");
    this.#headers = headers ?? {};
    this.#fetch = fetch ?? ((url, init) => globalThis.fetch(url, init));
    this.#XMLHttpRequest = XMLHttpRequest ?? globalThis.XMLHttpRequest;
    this.#retry = { ...DEFAULT_RETRY, ...retry };
    this.#random = random ?? Math.random;
    this.#sleep = sleep ?? abortableSleep;
    this.#multipartThreshold = multipartThreshold;
    this.#partConcurrency = positiveInteger(partConcurrency, "partConcurrency");
  }

  /** Files above this size are reserved as multipart uploads and hashed part by part. */
  get multipartThreshold() {
    return this.#multipartThreshold;
  }

  /**
   * Hashes (optional), reserves, sends the bytes to S3 and confirms. Resolves with the file record
   * once it is `available`.
   * @param {Blob} blob
   * @param {import("./presign-gate.js").UploadOptions} [options]
   */
  async upload(blob, options = {}) {
    const { signal, onProgress, onStored, onReserved } = options;
    const { file, upload } = await this.reserve(blob, options);
    await onReserved?.(file, upload);
    if (upload.method === "MULTIPART") {
      await this.#sendParts(file.id, blob, upload, { ...options, have: [] });
    } else {
      await this.#transfer(blob, upload, { onProgress, signal });
    }
    // S3 now holds the bytes (for a multipart upload: every part, still to be assembled, which
    // `complete` does). A single object's event notification confirms the file by itself;
    // `complete` gives the verdict at once and is idempotent, so both may happen in either order.
    await onStored?.(file);
    return this.complete(file.id, { signal });
  }

  /**
   * Continues a multipart upload that stopped (a reload, a lost connection, an error): asks the
   * server which parts S3 holds, sends only the others from `blob` (which must be the same file),
   * then confirms. Resolves with the available file record, at once if it already is.
   * @param {string} id
   * @param {Blob} blob
   * @param {import("./presign-gate.js").ResumeOptions} [options]
   */
  async resume(id, blob, options = {}) {
    const { signal, onStored } = options;
    const record = await this.get(id, { signal });
    if (record.status === "available") return record;
    if (record.size !== blob.size) {
      throw new PresignGateError(
        `This is not the file that upload was reserved for: it has ${blob.size} bytes, the reservation ${record.size}.`,
        { status: 0, code: "resume_mismatch" },
      );
    }
    const { partSize, partCount, partSha256, parts } = await this.parts(id, { signal });
    await this.#sendParts(id, blob, { partSize, partCount, partSha256 }, { ...options, have: parts });
    await onStored?.(record);
    return this.complete(id, { signal });
  }

  /**
   * What S3 holds of a pending multipart upload: the plan and the parts already stored.
   * @param {string} id
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<import("./presign-gate.js").StoredParts>}
   */
  async parts(id, { signal } = {}) {
    const { partSize, partCount, partSha256, parts } = await this.#api("GET", `/files/${encodeURIComponent(id)}/parts`, { signal });
    return { partSize, partCount, partSha256, parts };
  }

  /**
   * Presigned URLs for up to 100 parts of a pending multipart upload, each signed for the
   * part's planned length and, when given, its SHA-256.
   * @param {string} id
   * @param {{ partNumber: number, sha256?: string }[]} parts
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<import("./presign-gate.js").PartUrl[]>}
   */
  async signParts(id, parts, { signal } = {}) {
    const answer = await this.#api("POST", `/files/${encodeURIComponent(id)}/parts`, {
      body: { parts: parts.map(({ partNumber, sha256 }) => ({ partNumber, sha256 })) },
      signal,
    });
    const byNumber = new Map((answer?.parts ?? []).map((part) => [part.partNumber, part]));
    return parts.map(({ partNumber }) => {
      const part = byNumber.get(partNumber);
      if (!part?.url) {
        throw new PresignGateError(`The API signed no URL for part ${partNumber}.`, {
          status: 200,
          code: "invalid_response",
        });
      }
      return part;
    });
  }

  /**
   * The first step of `upload` alone: hashes (unless `sha256: false`) and reserves. Resolves with
   * the pending file record and how to send the bytes (`upload.method`, and for `PUT` the URL and
   * the headers to send with it).
   * @param {Blob} blob
   * @param {import("./presign-gate.js").ReserveOptions} [options]
   */
  async reserve(blob, options = {}) {
    const { signal, expiresIn } = options;
    const filename = options.filename ?? /** @type {File} */ (blob).name;
    const contentType = options.contentType ?? blob.type;
    // S3 verifies no whole-file SHA-256 of a multipart upload: a large file is hashed part by
    // part instead, as its parts are sent.
    const multipart = options.multipart ?? blob.size > this.#multipartThreshold;
    signal?.throwIfAborted();
    const sha256 =
      typeof options.sha256 === "string" ? options.sha256
      : options.sha256 === false || multipart ? undefined
      : await sha256Base64(blob, { signal });
    // S3 fixes at the upload's creation whether its parts carry checksums, and refuses a part
    // that differs: a multipart upload is hashed part by part only if reserved so.
    const partSha256 = multipart && options.sha256 !== false ? true : undefined;
    return this.#api("POST", "/uploads", {
      body: { filename, contentType, size: blob.size, sha256, expiresIn, multipart: multipart || undefined, partSha256 },
      signal,
    });
  }

  /**
   * Confirms an upload: the server checks the stored object against the reservation. Idempotent.
   * @param {string} id
   * @param {{ signal?: AbortSignal }} [options]
   */
  async complete(id, { signal } = {}) {
    const { file } = await this.#api("POST", `/files/${encodeURIComponent(id)}/complete`, { signal });
    return file;
  }

  /**
   * A short-lived GET URL for one of the caller's available files.
   * @param {string} id
   * @param {import("./presign-gate.js").DownloadOptions} [options]
   */
  async downloadUrl(id, { disposition, expiresIn, signal } = {}) {
    const { url, expiresAt } = await this.#api(
      "GET",
      `/files/${encodeURIComponent(id)}/download-url`,
      { query: { disposition, expiresIn }, signal },
    );
    return { url, expiresAt };
  }

  /**
   * Download URLs for up to 100 files in one request; per-id refusals come back in `errors`.
   * @param {string[]} ids
   * @param {import("./presign-gate.js").DownloadOptions} [options]
   */
  async downloadUrls(ids, { disposition, expiresIn, signal } = {}) {
    const { urls, errors } = await this.#api("POST", "/files/download-urls", {
      body: { ids, disposition, expiresIn },
      signal,
    });
    return { urls, errors };
  }

  /** @param {string} id @param {{ signal?: AbortSignal }} [options] */
  async get(id, { signal } = {}) {
    const { file } = await this.#api("GET", `/files/${encodeURIComponent(id)}`, { signal });
    return file;
  }

  /** One page of the caller's files. @param {import("./presign-gate.js").ListOptions} [options] */
  async list({ limit, nextToken, signal } = {}) {
    const { files, nextToken: next } = await this.#api("GET", "/files", {
      query: { limit, nextToken },
      signal,
    });
    return { files, nextToken: next ?? null };
  }

  /** Every file of the caller, page by page. @param {import("./presign-gate.js").ListOptions} [options] */
  async *files({ limit, signal } = {}) {
    let nextToken = null;
    do {
      const page = await this.list({ limit, nextToken: nextToken ?? undefined, signal });
      yield* page.files;
      nextToken = page.nextToken;
    } while (nextToken);
  }

  /** @param {string} id @param {{ signal?: AbortSignal }} [options] */
  async delete(id, { signal } = {}) {
    await this.#api("DELETE", `/files/${encodeURIComponent(id)}`, { signal });
  }

  /** Sends the bytes of a single-request reservation. */
  async #transfer(blob, upload, { onProgress, signal }) {
    if (upload.method !== "PUT") {
      throw new PresignGateError(`This client cannot send a ${upload.method} upload yet.`, {
        status: 0,
        code: "unsupported_upload",
      });
    }
    await this.#putWithRetries(blob, upload, { onProgress, signal });
  }

  /**
   * Sends the parts of `blob` that are not in `have`, `concurrency` at a time, each retried on
   * its own; the first part that fails for good stops the others. An abort through `signal`
   * stops every part and then deletes the file, so the server aborts the S3 upload and no part
   * stays stored (and billed).
   */
  async #sendParts(id, blob, plan, { have, onProgress, signal, sha256 = true, concurrency = this.#partConcurrency }) {
    const { partSize, partCount } = plan;
    if (!(partSize > 0) || partCount !== Math.max(1, Math.ceil(blob.size / partSize))) {
      throw new PresignGateError(
        `This file (${blob.size} bytes) does not fit the upload's plan of ${partCount} parts of ${partSize} bytes.`,
        { status: 0, code: "resume_mismatch" },
      );
    }
    const sizeOf = (n) => (n < partCount ? partSize : blob.size - partSize * (partCount - 1));
    // A stored part of another length cannot be one of this plan's; it is sent again.
    const stored = new Set(have.filter((part) => part.size === sizeOf(part.partNumber)).map((part) => part.partNumber));
    const queue = [];
    for (let n = 1; n <= partCount; n++) if (!stored.has(n)) queue.push(n);
    const confirmed = [...stored].reduce((sum, n) => sum + sizeOf(n), 0);
    const progress = new PartProgress(blob.size, confirmed, onProgress);
    // The reservation decided (`partSha256`); a server that does not say leaves it to the caller.
    const hashing = plan.partSha256 ?? sha256 !== false;
    const urls = new PartUrls((parts, stop) => this.signParts(id, parts, { signal: stop }), {
      // Without digests the next parts' URLs come in the same request; with them a URL can only
      // be signed once its part is hashed.
      prefetch: hashing ? [] : queue,
    });
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const deadline = plan.expiresAt ? Date.parse(plan.expiresAt) : Infinity;
    const worker = async () => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
        const start = partSize * (n - 1);
        const body = blob.slice(start, start + sizeOf(n));
        const digest = hashing ? await sha256Base64(body, { signal: stop.signal }) : undefined;
        await this.#putPart(n, body, digest, { urls, progress, deadline, signal: stop.signal });
      }
    };
    const workers = Array.from({ length: Math.min(positiveInteger(concurrency, "concurrency"), queue.length) }, () =>
      worker().catch((error) => {
        // The first failure stops the other parts; theirs are only echoes of it.
        if (!stop.signal.aborted) stop.abort(error);
        throw error;
      }),
    );
    const results = await Promise.allSettled(workers);
    signal?.removeEventListener("abort", onAbort);
    if (signal?.aborted) {
      // Not under the aborted signal: this request must go out.
      await this.delete(id).catch(() => {});
      throw signal.reason;
    }
    if (stop.signal.aborted) throw stop.signal.reason;
    const failed = results.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    progress.finish();
  }

  async #putPart(n, body, digest, { urls, progress, deadline, signal }) {
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      const part = await urls.get(n, digest, signal);
      const headers = Object.entries(part.headers ?? {}).filter(([name]) => browserMaySet(name));
      progress.sending(n, 0);
      const answer = await this.#xhr("PUT", part.url, {
        headers,
        body,
        onProgress: ({ loaded }) => progress.sending(n, loaded),
        signal,
      });
      if (answer.status >= 200 && answer.status < 300) {
        progress.stored(n, body.size);
        return;
      }
      progress.sending(n, 0);
      // A URL that expired on the way (a slow part, a sleeping laptop) is signed again.
      if (answer.status === 403 && urlExpired(part, answer) && attempt < this.#retry.retries) {
        urls.forget(n);
        continue;
      }
      const retryable = answer.status === 0 || RETRYABLE_STORAGE.has(answer.status);
      const delay = this.#delay(attempt, answer.retryAfter);
      if (retryable && attempt < this.#retry.retries && Date.now() + delay < deadline) {
        await this.#sleep(delay, signal);
        continue;
      }
      throw storageError(answer);
    }
  }

  async #putWithRetries(blob, upload, { onProgress, signal }) {
    const headers = Object.entries(upload.headers ?? {}).filter(([name]) => browserMaySet(name));
    const expiresAt = Date.parse(upload.expiresAt);
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      onProgress?.({ loaded: 0, total: blob.size });
      const answer = await this.#xhr("PUT", upload.url, { headers, body: blob, onProgress, signal });
      if (answer.status >= 200 && answer.status < 300) {
        onProgress?.({ loaded: blob.size, total: blob.size });
        return;
      }
      // The URL refuses to overwrite (If-None-Match: *). A 412 on a retry means an earlier attempt
      // did store the object and only its answer was lost; the confirmation checks the bytes.
      if (answer.status === 412 && attempt > 0) return;
      const retryable = answer.status === 0 || RETRYABLE_STORAGE.has(answer.status);
      const delay = this.#delay(attempt, answer.retryAfter);
      if (retryable && attempt < this.#retry.retries && !(Date.now() + delay >= expiresAt)) {
        await this.#sleep(delay, signal);
        continue;
      }
      throw storageError(answer);
    }
  }

  /** One XMLHttpRequest (fetch reports no upload progress). Resolves with status 0 on a network failure. */
  #xhr(method, url, { headers, body, onProgress, signal }) {
    return new Promise((resolve, reject) => {
      const xhr = new this.#XMLHttpRequest();
      const abort = () => xhr.abort();
      const settle = (action) => {
        signal?.removeEventListener("abort", abort);
        action();
      };
      xhr.open(method, url);
      for (const [name, value] of headers) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress?.({ loaded: event.loaded, total: body.size });
      };
      xhr.onload = () =>
        settle(() =>
          resolve({
            status: xhr.status,
            body: xhr.responseText,
            // Only headers the bucket's CORS rules expose are readable; asking for another one by
            // name makes the browser log a warning, reading the list does not.
            retryAfter: /^retry-after:\s*(.*)$/im.exec(xhr.getAllResponseHeaders())?.[1]?.trim() ?? null,
          }),
        );
      xhr.onerror = () => settle(() => resolve({ status: 0 }));
      xhr.ontimeout = () => settle(() => resolve({ status: 0 }));
      xhr.onabort = () =>
        settle(() => reject(signal?.reason ?? new DOMException("The upload was aborted.", "AbortError")));
      signal?.addEventListener("abort", abort, { once: true });
      xhr.send(body);
    });
  }

  /**
   * One API call, retried on 503, 429 and network failures; the parsed body, or null for a 204.
   * @param {string} method
   * @param {string} path
   * @param {{ body?: unknown, query?: Record<string, unknown>, signal?: AbortSignal }} [request]
   */
  async #api(method, path, { body, query, signal } = {}) {
    const url = new URL(this.#apiUrl + path);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      const headers = { ...(await this.#callerHeaders()) };
      if (body !== undefined) headers["content-type"] = "application/json";
      let response;
      try {
        response = await this.#fetch(url.href, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal,
          cache: "no-store",
          credentials: "omit",
        });
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (attempt < this.#retry.retries) {
          await this.#sleep(this.#delay(attempt, null), signal);
          continue;
        }
        throw new PresignGateError(
          "The API could not be reached (network failure, or the API's CORS rules refused this page).",
          { status: 0, code: "network_error", cause: error },
        );
      }
      if (response.ok) return response.status === 204 ? null : readJson(response);
      const retryAfter = response.headers.get("retry-after");
      if (RETRYABLE_API.has(response.status) && attempt < this.#retry.retries) {
        await response.body?.cancel().catch(() => {});
        await this.#sleep(this.#delay(attempt, retryAfter), signal);
        continue;
      }
      throw await apiError(response);
    }
  }

  async #callerHeaders() {
    return typeof this.#headers === "function" ? await this.#headers() : this.#headers;
  }

  /** Milliseconds before attempt `attempt + 1`: the server's `Retry-After` if it sent one. */
  #delay(attempt, retryAfter) {
    const { baseDelayMs, maxDelayMs, maxRetryAfterMs } = this.#retry;
    const asked = parseRetryAfter(retryAfter);
    if (asked !== null) return Math.min(asked, maxRetryAfterMs);
    return Math.floor(this.#random() * Math.min(maxDelayMs, baseDelayMs * 2 ** attempt));
  }
}

/**
 * Part URLs, signed in batches of up to 100: the parts asked for in the same turn of the event
 * loop, topped up with the next parts still to send when those need no digest. A URL close to
 * its expiry is signed again.
 */
class PartUrls {
  #sign;
  #prefetch;
  /** partNumber -> a signed part (`{ url, headers, expiresAt }`) or the promise of one. */
  #known = new Map();
  /** Parts asked for in this turn: partNumber -> { digest, settle }. */
  #asked = new Map();

  /**
   * @param {(parts: { partNumber: number, sha256?: string }[], signal: AbortSignal) => Promise<any[]>} sign
   * @param {{ prefetch: number[] }} options the queue of parts still to send (read, never changed)
   */
  constructor(sign, { prefetch }) {
    this.#sign = sign;
    this.#prefetch = prefetch;
  }

  /** @param {number} n @param {string | undefined} digest @param {AbortSignal} signal */
  async get(n, digest, signal) {
    const known = this.#known.get(n);
    if (known) {
      const part = await known;
      if (Date.parse(part.expiresAt) - Date.now() > PART_URL_MARGIN_MS) return part;
      this.#known.delete(n);
    }
    const promise = new Promise((resolve, reject) => {
      if (this.#asked.size === 0) queueMicrotask(() => this.#flush(signal));
      this.#asked.set(n, { digest, settle: { resolve, reject } });
    });
    this.#known.set(n, promise);
    promise.catch(() => this.#known.delete(n));
    return promise;
  }

  forget(n) {
    this.#known.delete(n);
  }

  #flush(signal) {
    const asked = [...this.#asked];
    this.#asked.clear();
    for (let i = 0; i < asked.length; i += PART_URL_BATCH) {
      const batch = asked.slice(i, i + PART_URL_BATCH);
      const waiting = new Map(batch.map(([n, { settle }]) => [n, settle]));
      const parts = batch.map(([partNumber, { digest }]) => ({ partNumber, sha256: digest }));
      for (const n of this.#prefetch) {
        if (parts.length >= PART_URL_BATCH) break;
        if (this.#known.has(n) || waiting.has(n)) continue;
        parts.push({ partNumber: n });
        const promise = new Promise((resolve, reject) => waiting.set(n, { resolve, reject }));
        promise.catch(() => this.#known.delete(n));
        this.#known.set(n, promise);
      }
      this.#sign(parts, signal).then(
        (signed) => signed.forEach((part) => waiting.get(part.partNumber)?.resolve(part)),
        (error) => waiting.forEach(({ reject }) => reject(error)),
      );
    }
  }
}

/** One progress figure across parts: bytes stored plus bytes in flight, never going back. */
class PartProgress {
  #total;
  #stored;
  #sending = new Map();
  #reported = -1;
  #onProgress;

  constructor(total, stored, onProgress) {
    this.#total = total;
    this.#stored = stored;
    this.#onProgress = onProgress;
    this.#report();
  }

  sending(n, loaded) {
    this.#sending.set(n, loaded);
    this.#report();
  }

  stored(n, size) {
    this.#sending.delete(n);
    this.#stored += size;
    this.#report();
  }

  finish() {
    this.#stored = this.#total;
    this.#sending.clear();
    this.#report();
  }

  #report() {
    let loaded = this.#stored;
    for (const bytes of this.#sending.values()) loaded += bytes;
    loaded = Math.min(loaded, this.#total);
    // A retried part starts again from 0; the figure waits for it instead of going back.
    if (loaded <= this.#reported) return;
    this.#reported = loaded;
    this.#onProgress?.({ loaded, total: this.#total });
  }
}

/** S3 refused a URL because it has expired ("Request has expired"), or its time is up anyway. */
function urlExpired(part, answer) {
  const code = /<Code>([^<]*)<\/Code>/.exec(answer.body ?? "")?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(answer.body ?? "")?.[1] ?? "";
  return code === "AccessDenied" && (/expired/i.test(message) || Date.parse(part.expiresAt) <= Date.now());
}

function positiveInteger(value, name) {
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`PresignGate: ${name} must be a positive integer`);
  return value;
}

/** `Retry-After` as milliseconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value) {
  if (value === null || value === undefined || value === "") return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

function abortableSleep(ms, signal) {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

async function readJson(response) {
  try {
    return await response.json();
  } catch (error) {
    throw new PresignGateError("The API answered with something other than JSON.", {
      status: response.status,
      code: "invalid_response",
      cause: error,
    });
  }
}

/** The API's `{"error": {"code", "message"}}`, or words for a reply from something in front of it. */
async function apiError(response) {
  const text = await response.text().catch(() => "");
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not the API's JSON: API Gateway's own refusals are `{"message": ...}`, proxies send HTML.
  }
  const error = parsed?.error;
  if (error && typeof error.code === "string") {
    return new PresignGateError(String(error.message ?? error.code), {
      status: response.status,
      code: error.code,
    });
  }
  const gatewayMessage = typeof parsed?.message === "string" ? parsed.message : null;
  const code =
    response.status === 401 ? "unauthenticated"
    : response.status === 403 ? "forbidden"
    : response.status === 429 ? "throttled"
    : response.status >= 500 ? "unavailable"
    : "http_error";
  return new PresignGateError(gatewayMessage ?? `The API answered ${response.status}.`, {
    status: response.status,
    code,
  });
}

/** Words for S3's refusals of a presigned PUT; S3 answers with an XML `<Error>`. */
const STORAGE_REFUSALS = {
  AccessDenied: "Storage refused the upload URL: it has expired or was altered.",
  SignatureDoesNotMatch: "Storage refused the upload: the request does not match what was signed.",
  BadDigest: "The bytes sent do not match the file's declared SHA-256.",
  PreconditionFailed: "A file is already stored for this upload; it cannot be overwritten.",
  IncompleteBody: "The upload ended before all the bytes were sent.",
  SlowDown: "Storage is busy; try again shortly.",
  NoSuchUpload: "The multipart upload no longer exists (it was cancelled or has lapsed).",
};

function storageError(answer) {
  if (answer.status === 0) {
    return new PresignGateError(
      "The file could not be sent to storage (network failure, or the bucket's CORS rules refused this page).",
      { status: 0, code: "network_error" },
    );
  }
  const storageCode = /<Code>([^<]*)<\/Code>/.exec(answer.body ?? "")?.[1];
  const message =
    STORAGE_REFUSALS[storageCode] ??
    `Storage refused the upload (${storageCode ?? `HTTP ${answer.status}`}).`;
  return new PresignGateError(message, { status: answer.status, code: "upload_failed", storageCode });
}
