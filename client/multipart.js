// Presign Gate's browser client: a multipart upload's parts, signed in batches, sent in parallel,
// each retried on its own.

import { PresignGateError, storageCodeOf, storageError, urlExpired } from "./errors.js";
import { sha256Base64 } from "./sha256.js";
import { RETRYABLE_STORAGE, settable } from "./transfer.js";

/** Parts in flight at once (browsers open about six connections per origin). */
export const DEFAULT_PART_CONCURRENCY = 4;
/** The most part URLs `POST /files/{id}/parts` signs in one request. */
export const PART_URL_BATCH = 100;
/** A part URL with less life left than this is signed again before it is used. */
const PART_URL_MARGIN_MS = 30_000;

/**
 * @typedef {object} PartsContext
 * @property {import("./transfer.js").Transport} transport
 * @property {(parts: { partNumber: number, sha256?: string }[], signal: AbortSignal) => Promise<import("./presign-gate.js").PartUrl[]>} signParts
 * @property {() => Promise<void>} deleteFile deletes the file (the server aborts the S3 upload)
 */

/**
 * Sends the parts of `blob` that are not in `have`, `concurrency` at a time, each retried on
 * its own; the first part that fails for good stops the others. An abort through `signal`
 * stops every part and then deletes the file, so the server aborts the S3 upload and no part
 * stays stored (and billed).
 * @param {PartsContext} context
 * @param {Blob} blob
 * @param {{ partSize: number, partCount: number, partSha256?: boolean, expiresAt?: string }} plan
 * @param {{ have: { partNumber: number, size: number }[], concurrency: number, sha256?: boolean | string,
 *   onProgress?: (p: { loaded: number, total: number }) => void, signal?: AbortSignal }} options
 */
export async function sendParts(context, blob, plan, { have, onProgress, signal, sha256 = true, concurrency }) {
  const { partSize, partCount } = plan;
  // Stryker disable next-line EqualityOperator: a partSize of 0 fails the count check anyway (mutants-equivalent.md)
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
  const urls = new PartUrls(context.signParts, {
    // Without digests the next parts' URLs come in the same request; with them a URL can only
    // be signed once its part is hashed.
    prefetch: hashing ? [] : queue,
  });
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  // Stryker disable next-line ObjectLiteral,BooleanLiteral: removed below on every path (mutants-equivalent.md)
  signal?.addEventListener("abort", onAbort, { once: true });
  const deadline = plan.expiresAt ? Date.parse(plan.expiresAt) : Infinity;
  const worker = async () => {
    for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
      const start = partSize * (n - 1);
      const body = blob.slice(start, start + sizeOf(n));
      const digest = hashing ? await sha256Base64(body, { signal: stop.signal }) : undefined;
      await putPart(context.transport, n, body, digest, { urls, progress, deadline, signal: stop.signal });
    }
  };
  const workers = Array.from({ length: Math.min(positiveInteger(concurrency, "concurrency"), queue.length) }, () =>
    worker().catch((error) => {
      // The first failure stops the other parts; theirs are only echoes of it.
      // Stryker disable next-line ConditionalExpression: aborting an aborted signal changes nothing (mutants-equivalent.md)
      if (!stop.signal.aborted) stop.abort(error);
      throw error;
    }),
  );
  await Promise.allSettled(workers);
  signal?.removeEventListener("abort", onAbort);
  if (signal?.aborted) {
    // Not under the aborted signal: this request must go out.
    await context.deleteFile().catch(() => {});
    throw signal.reason;
  }
  // A part that failed for good aborted `stop` with its error (every other part's is an echo of
  // it), so this is the one failure there is to report.
  if (stop.signal.aborted) throw stop.signal.reason;
}

/**
 * @param {import("./transfer.js").Transport} transport
 * @param {number} n @param {Blob} body @param {string | undefined} digest
 * @param {{ urls: PartUrls, progress: PartProgress, deadline: number, signal: AbortSignal }} options
 */
async function putPart(transport, n, body, digest, { urls, progress, deadline, signal }) {
  for (let attempt = 0; ; attempt++) {
    signal.throwIfAborted();
    const part = await urls.get(n, digest, signal);
    progress.sending(n, 0);
    const answer = await transport.xhr("PUT", part.url, {
      headers: settable(part.headers),
      body,
      onProgress: ({ loaded }) => progress.sending(n, loaded),
      signal,
    });
    if (answer.status >= 200 && answer.status < 300) {
      progress.stored(n, body.size);
      return;
    }
    progress.sending(n, 0);
    // A URL that expired on the way (a slow part, a sleeping laptop), or whose signing session
    // did, is signed again; an expired session took every URL signed with it.
    if (urlExpired(answer) && attempt < transport.retry.retries) {
      if (storageCodeOf(answer) === "ExpiredToken") urls.forgetAll();
      else urls.forget(n);
      continue;
    }
    const retryable = answer.status === 0 || RETRYABLE_STORAGE.has(answer.status);
    const delay = transport.delay(attempt);
    if (retryable && attempt < transport.retry.retries && Date.now() + delay < deadline) {
      await transport.sleep(delay, signal);
      continue;
    }
    throw storageError(answer);
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
      // Stryker disable next-line ConditionalExpression: a second flush in the same turn finds nothing asked (mutants-equivalent.md)
      if (this.#asked.size === 0) queueMicrotask(() => this.#flush(signal));
      this.#asked.set(n, { digest, settle: { resolve, reject } });
    });
    // A batch that fails fails this part for good, and with it the upload: nothing asks again.
    this.#known.set(n, promise);
    return promise;
  }

  /** @param {number} n */
  forget(n) {
    this.#known.delete(n);
  }

  /** Every URL known is dropped: each part asks for a new one when it next needs one. */
  forgetAll() {
    this.#known.clear();
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
        // Never awaited if the upload stops first: not an unhandled rejection.
        promise.catch(() => {});
        this.#known.set(n, promise);
      }
      this.#sign(parts, signal).then(
        // signParts answers exactly the parts asked for.
        (signed) => signed.forEach((part) => waiting.get(part.partNumber).resolve(part)),
        (error) => waiting.forEach(({ reject }) => reject(error)),
      );
    }
  }
}

/**
 * One progress figure across parts: bytes stored plus bytes in flight, never going back. The
 * parts' sizes add up to the file's, so the last part stored reports it whole.
 */
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

/** @param {unknown} value @param {string} name @returns {number} */
export function positiveInteger(value, name) {
  if (!Number.isInteger(value) || /** @type {number} */ (value) < 1) {
    throw new TypeError(`PresignGate: ${name} must be a positive integer`);
  }
  return /** @type {number} */ (value);
}
