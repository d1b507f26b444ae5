// Presign Gate's browser client: sending bytes to S3 with a presigned URL, and the retry rules
// (backoff, the API's Retry-After) every request of the client follows.

import { storageCodeOf, storageError, urlExpired } from "./errors.js";

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

/** @param {Record<string, string> | undefined} headers @returns {[string, string][]} */
export function settable(headers) {
  return Object.entries(headers ?? {}).filter(([name]) => browserMaySet(name));
}

/**
 * Storage statuses worth another attempt: 503 S3's SlowDown, 429 throttling, 500 S3's
 * InternalError (which AWS says to retry).
 */
export const RETRYABLE_STORAGE = new Set([429, 500, 503]);

export const DEFAULT_RETRY = Object.freeze({
  /** Attempts after the first. */
  retries: 4,
  /** Exponential backoff with full jitter: a delay in [0, min(maxDelayMs, baseDelayMs * 2^n)). */
  baseDelayMs: 300,
  maxDelayMs: 8000,
  /** A `Retry-After` longer than this is cut to it. */
  maxRetryAfterMs: 30000,
});

/**
 * @typedef {{ status: number, body?: string }} StorageAnswer
 * What S3 answered a request: status 0 when no answer arrived (network failure, CORS refusal).
 * No `Retry-After`: the bucket's CORS rule exposes only `ETag`, so a page cannot read S3's
 * headers, and S3 documents none on SlowDown; its retries wait the backoff.
 */

/** How the client waits and retries, and how it sends bytes (XMLHttpRequest: fetch reports no upload progress). */
export class Transport {
  #XMLHttpRequest;
  #random;
  #sleep;
  /** @type {Required<import("./presign-gate.js").RetryOptions>} */
  retry;

  /**
   * @param {{ XMLHttpRequest?: typeof XMLHttpRequest, retry?: import("./presign-gate.js").RetryOptions,
   *   random?: () => number, sleep?: (ms: number, signal?: AbortSignal) => Promise<void> }} options
   */
  constructor({ XMLHttpRequest, retry, random, sleep }) {
    this.#XMLHttpRequest = XMLHttpRequest ?? globalThis.XMLHttpRequest;
    this.retry = { ...DEFAULT_RETRY, ...retry };
    this.#random = random ?? Math.random;
    this.#sleep = sleep ?? abortableSleep;
  }

  /** @param {number} ms @param {AbortSignal} [signal] */
  sleep(ms, signal) {
    return this.#sleep(ms, signal);
  }

  /**
   * Milliseconds before attempt `attempt + 1`: the API's `Retry-After` if it sent one (cut to
   * `maxRetryAfterMs`), else the backoff.
   * @param {number} attempt @param {string | null | undefined} [retryAfter]
   */
  delay(attempt, retryAfter) {
    const { baseDelayMs, maxDelayMs, maxRetryAfterMs } = this.retry;
    const asked = parseRetryAfter(retryAfter);
    if (asked !== null) return Math.min(asked, maxRetryAfterMs);
    return Math.floor(this.#random() * Math.min(maxDelayMs, baseDelayMs * 2 ** attempt));
  }

  /**
   * One XMLHttpRequest. Resolves with status 0 on a network failure.
   * @param {string} method @param {string} url
   * @param {{ headers: [string, string][], body: Blob, onProgress?: (p: { loaded: number, total: number }) => void, signal?: AbortSignal }} request
   * @returns {Promise<StorageAnswer>}
   */
  xhr(method, url, { headers, body, onProgress, signal }) {
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
      xhr.onload = () => settle(() => resolve({ status: xhr.status, body: xhr.responseText }));
      xhr.onerror = () => settle(() => resolve({ status: 0 }));
      xhr.ontimeout = () => settle(() => resolve({ status: 0 }));
      xhr.onabort = () =>
        settle(() => reject(signal?.reason ?? new DOMException("The upload was aborted.", "AbortError")));
      // Stryker disable next-line ObjectLiteral,BooleanLiteral: settle removes it (mutants-equivalent.md)
      signal?.addEventListener("abort", abort, { once: true });
      xhr.send(body);
    });
  }
}

/**
 * @typedef {{ url: string, headers?: Record<string, string>, expiresAt: string }} PutUpload
 */

/**
 * Sends the bytes of a single-request (`PUT`) reservation, retried on network failures and S3's
 * retryable statuses while the URL lives. A URL S3 refuses as expired (or signed with a session
 * token that has expired) is replaced by `renew`'s.
 * @param {Transport} transport
 * @param {Blob} blob
 * @param {PutUpload} upload
 * @param {{ onProgress?: (p: { loaded: number, total: number }) => void, signal?: AbortSignal,
 *   renew?: () => Promise<PutUpload> }} options
 */
export async function putWithRetries(transport, blob, upload, { onProgress, signal, renew }) {
  let headers = settable(upload.headers);
  let expiresAt = Date.parse(upload.expiresAt);
  let { url } = upload;
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    onProgress?.({ loaded: 0, total: blob.size });
    const answer = await transport.xhr("PUT", url, { headers, body: blob, onProgress, signal });
    if (answer.status >= 200 && answer.status < 300) {
      onProgress?.({ loaded: blob.size, total: blob.size });
      return;
    }
    // The URL refuses to overwrite (If-None-Match: *). A 412 on a retry means an earlier attempt
    // did store the object and only its answer was lost; the confirmation checks the bytes.
    if (answer.status === 412 && attempt > 0) return;
    if (renew && urlExpired(answer) && attempt < transport.retry.retries) {
      let fresh;
      try {
        fresh = await renew();
      } catch (error) {
        // The reservation may have lapsed, or the API not be reachable: S3's refusal says most.
        if (signal?.aborted) throw signal.reason;
        const refused = storageError(answer);
        refused.cause = error;
        throw refused;
      }
      ({ url } = fresh);
      headers = settable(fresh.headers);
      expiresAt = Date.parse(fresh.expiresAt);
      continue;
    }
    // 409 ConditionalRequestConflict: another write of this key (an earlier attempt of ours whose
    // answer was lost, still in flight) is under way, and S3 says to retry (S3 API Reference,
    // PutObject, "If-None-Match"). The retry stores the object, or gets 412: stored.
    const conflict = answer.status === 409 && storageCodeOf(answer) === "ConditionalRequestConflict";
    const retryable = answer.status === 0 || conflict || RETRYABLE_STORAGE.has(answer.status);
    const delay = transport.delay(attempt);
    if (retryable && attempt < transport.retry.retries && !(Date.now() + delay >= expiresAt)) {
      await transport.sleep(delay, signal);
      continue;
    }
    throw storageError(answer);
  }
}

/**
 * `Retry-After` as milliseconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
 * @param {string | null | undefined} value
 */
export function parseRetryAfter(value) {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/** @param {number} ms @param {AbortSignal} [signal] @returns {Promise<void>} */
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
    // Stryker disable next-line ObjectLiteral,BooleanLiteral: a signal aborts once (mutants-equivalent.md)
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
