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

  /** @param {Partial<import("./presign-gate.js").PresignGateOptions>} options `apiUrl` is required */
  constructor({ apiUrl, headers, fetch, XMLHttpRequest, retry, random, sleep } = {}) {
    if (!apiUrl) throw new TypeError("PresignGate: apiUrl is required");
    this.#apiUrl = String(apiUrl).replace(/\/+$/, "");
    this.#headers = headers ?? {};
    this.#fetch = fetch ?? ((url, init) => globalThis.fetch(url, init));
    this.#XMLHttpRequest = XMLHttpRequest ?? globalThis.XMLHttpRequest;
    this.#retry = { ...DEFAULT_RETRY, ...retry };
    this.#random = random ?? Math.random;
    this.#sleep = sleep ?? abortableSleep;
  }

  /**
   * Hashes (optional), reserves, sends the bytes to S3 and confirms. Resolves with the file record
   * once it is `available`.
   * @param {Blob} blob
   * @param {import("./presign-gate.js").UploadOptions} [options]
   */
  async upload(blob, options = {}) {
    const { signal, onProgress, onStored } = options;
    const { file, upload } = await this.reserve(blob, options);
    await this.#transfer(blob, upload, { onProgress, signal });
    // S3 now holds the bytes. Its event notification confirms the file by itself; `complete`
    // gives the verdict at once and is idempotent, so both may happen in either order.
    await onStored?.(file);
    return this.complete(file.id, { signal });
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
    signal?.throwIfAborted();
    const sha256 =
      options.sha256 === false ? undefined
      : typeof options.sha256 === "string" ? options.sha256
      : await sha256Base64(blob, { signal });
    return this.#api("POST", "/uploads", {
      body: { filename, contentType, size: blob.size, sha256, expiresIn },
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

  /** Sends the bytes the way the reservation says. Issue 13 adds `MULTIPART` here. */
  async #transfer(blob, upload, { onProgress, signal }) {
    if (upload.method !== "PUT") {
      throw new PresignGateError(`This client cannot send a ${upload.method} upload yet.`, {
        status: 0,
        code: "unsupported_upload",
      });
    }
    await this.#putWithRetries(blob, upload, { onProgress, signal });
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
