// Presign Gate's browser client: reserve an upload through the API, send the bytes straight to S3
// with the presigned URL, confirm; list, download and delete the caller's files; share them with
// other callers (grants) or with anyone holding a link (share links).
//
// Dependency-free ES modules: `<script type="module">` can import this one as it is. The code is
// split by concern: api.js (calls to the API), transfer.js (sending bytes, retry rules),
// multipart.js (parts), scanning.js (waiting for a malware scan), errors.js. It never logs
// anything: presigned URLs are credentials, and error messages never include one.

import { Api, randomKey } from "./api.js";
import { PresignGateError, storageCodeOf, urlExpired } from "./errors.js";
import { DEFAULT_PART_CONCURRENCY, positiveInteger, sendParts } from "./multipart.js";
import { rejectedError, waitForScan } from "./scanning.js";
import { sha256Base64 } from "./sha256.js";
import { Transport, putWithRetries } from "./transfer.js";

export { PresignGateError } from "./errors.js";
export { DEFAULT_PART_CONCURRENCY, PART_URL_BATCH } from "./multipart.js";
export { DEFAULT_SCAN_WAIT } from "./scanning.js";
export { DEFAULT_RETRY, browserMaySet, parseRetryAfter } from "./transfer.js";

/** The server's default `MULTIPART_THRESHOLD_BYTES` (100 MiB, Uppy's own threshold). */
export const DEFAULT_MULTIPART_THRESHOLD = 100 * 1024 * 1024;

export class PresignGate {
  #api;
  #transport;
  /** The caller's `multipartThreshold`, else what the API reported; undefined until known. */
  #multipartThreshold;
  /** The pending `GET /usage` that learns the API's threshold, shared by concurrent uploads. */
  #learning = null;
  #partConcurrency;

  /** @param {Partial<import("./presign-gate.js").PresignGateOptions>} options `apiUrl` is required */
  constructor({
    apiUrl, headers, fetch, XMLHttpRequest, retry, random, sleep,
    multipartThreshold, partConcurrency = DEFAULT_PART_CONCURRENCY,
  } = {}) {
    if (!apiUrl) throw new TypeError("PresignGate: apiUrl is required");
    this.#transport = new Transport({ XMLHttpRequest, retry, random, sleep });
    this.#api = new Api({ apiUrl, headers, fetch }, this.#transport);
    this.#multipartThreshold = multipartThreshold;
    this.#partConcurrency = positiveInteger(partConcurrency, "partConcurrency");
  }

  /**
   * Files above this size are reserved as multipart uploads and hashed part by part: the
   * constructor's `multipartThreshold`, else the API's, once `resolveMultipartThreshold` (or an
   * upload) has asked it; until then the API's default.
   */
  get multipartThreshold() {
    return this.#multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD;
  }

  /**
   * The size above which the API plans a multipart upload: the constructor's `multipartThreshold`
   * when given, else what `GET /usage` reports (`uploads.multipartThresholdBytes`), asked once.
   * An API too old to say is taken to have its default, 100 MiB.
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<number>}
   */
  async resolveMultipartThreshold({ signal } = {}) {
    if (this.#multipartThreshold !== undefined) return this.#multipartThreshold;
    // Not under one caller's signal: concurrent uploads share this request.
    this.#learning ??= this.#api.call("GET", "/usage").then(
      (usage) => {
        const reported = usage?.uploads?.multipartThresholdBytes;
        this.#multipartThreshold = Number.isSafeInteger(reported) && reported >= 0 ? reported : DEFAULT_MULTIPART_THRESHOLD;
        return this.#multipartThreshold;
      },
      (error) => {
        // Asked again next time: one caller's abort or a passing failure is not the answer.
        this.#learning = null;
        throw error;
      },
    );
    return abortable(this.#learning, signal);
  }

  /**
   * Hashes (optional), reserves, sends the bytes to S3 and confirms. Resolves with the confirmed
   * file record: `available`, or `scanning` where the API scans uploads for malware
   * (`waitUntilAvailable` waits for the verdict).
   * @param {Blob} blob
   * @param {import("./presign-gate.js").UploadOptions} [options]
   */
  async upload(blob, options = {}) {
    const { signal, onProgress, onStored, onReserved } = options;
    const { file, upload } = await this.reserve(blob, options);
    await onReserved?.(file, upload);
    if (upload.method === "MULTIPART") {
      // Stryker disable next-line ArrayDeclaration: a stored part must have the size of its number (mutants-equivalent.md)
      await this.#sendParts(file.id, blob, upload, { ...options, have: [] });
    } else {
      await this.#transfer(file, blob, upload, { onProgress, signal, expiresIn: options.expiresIn });
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
   * then confirms. Resolves with the confirmed file record (`available` or `scanning`), at once
   * if it already is; rejects with `upload_rejected` if the file was rejected.
   * @param {string} id
   * @param {Blob} blob
   * @param {import("./presign-gate.js").ResumeOptions} [options]
   */
  async resume(id, blob, options = {}) {
    const { signal, onStored } = options;
    const record = await this.get(id, { signal });
    if (record.status === "available" || record.status === "scanning") return record;
    if (record.status === "rejected") throw rejectedError(record);
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
    const { partSize, partCount, partSha256, parts } = await this.#api.call("GET", `/files/${encodeURIComponent(id)}/parts`, { signal });
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
    const answer = await this.#api.call("POST", `/files/${encodeURIComponent(id)}/parts`, {
      body: { parts: parts.map(({ partNumber, sha256 }) => ({ partNumber, sha256 })) },
      signal,
    });
    // Stryker disable next-line ArrayDeclaration: a string is no signed part either (mutants-equivalent.md)
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
    // Decided as the server will decide: above its threshold (a whole-file SHA-256 is refused on
    // a multipart upload, so a disagreement would fail the upload).
    const multipart = options.multipart ?? blob.size > (await this.resolveMultipartThreshold({ signal }));
    signal?.throwIfAborted();
    const sha256 =
      typeof options.sha256 === "string" ? options.sha256
      : options.sha256 === false || multipart ? undefined
      : await sha256Base64(blob, { signal });
    // S3 fixes at the upload's creation whether its parts carry checksums, and refuses a part
    // that differs: a multipart upload is hashed part by part only if reserved so.
    const partSha256 = multipart && options.sha256 !== false ? true : undefined;
    // One key per reservation, the same on each of its retries: a retry after a lost answer (a
    // network failure, a 503) gets the same file back instead of a second reservation.
    const idempotencyKey = options.idempotencyKey ?? randomKey();
    return this.#api.call("POST", "/uploads", {
      body: { filename, contentType, size: blob.size, sha256, expiresIn, multipart: multipart || undefined, partSha256 },
      headers: { "idempotency-key": idempotencyKey },
      signal,
    });
  }

  /**
   * Confirms an upload: the server checks the stored object against the reservation. Idempotent.
   * @param {string} id
   * @param {{ signal?: AbortSignal }} [options]
   */
  async complete(id, { signal } = {}) {
    const { file } = await this.#api.call("POST", `/files/${encodeURIComponent(id)}/complete`, { signal });
    return file;
  }

  /**
   * A short-lived GET URL for one of the caller's available files. A file not available is
   * refused `not_ready` (409), its status in the error's `fileStatus` (`scanning`: wait with
   * `waitUntilAvailable`).
   * @param {string} id
   * @param {import("./presign-gate.js").DownloadOptions} [options]
   */
  async downloadUrl(id, options = {}) {
    return this.#downloadUrlAt(`/files/${encodeURIComponent(id)}/download-url`, options);
  }

  /**
   * A fresh URL for the single PUT of a pending reservation (`POST /files/{id}/upload-url`): the
   * same headers as the reservation's, signed anew, for when S3 refused the first as expired or
   * signed with a session token that has expired. `upload` asks for one by itself.
   * @param {string} id
   * @param {{ expiresIn?: number, signal?: AbortSignal }} [options]
   * @returns {Promise<import("./presign-gate.js").PutUpload>}
   */
  async uploadUrl(id, { expiresIn, signal } = {}) {
    const { upload } = await this.#api.call("POST", `/files/${encodeURIComponent(id)}/upload-url`, {
      body: { expiresIn },
      signal,
    });
    return upload;
  }

  /**
   * Fetches one of the caller's available files through a fresh download URL; a URL S3 refuses as
   * expired (or signed with a session token that has expired) is replaced, once per attempt the
   * retry policy allows. Resolves with S3's `Response` (its body is the file's bytes).
   * @param {string} id
   * @param {import("./presign-gate.js").DownloadOptions} [options]
   */
  async download(id, options = {}) {
    return this.#fetchFresh(() => this.downloadUrl(id, options), options.signal);
  }

  /**
   * Download URLs for up to 100 files in one request; per-id refusals come back in `errors`.
   * @param {string[]} ids
   * @param {import("./presign-gate.js").DownloadOptions} [options]
   */
  async downloadUrls(ids, { disposition, expiresIn, signal } = {}) {
    const { urls, errors } = await this.#api.call("POST", "/files/download-urls", {
      body: { ids, disposition, expiresIn },
      signal,
    });
    return { urls, errors };
  }

  /**
   * Waits for a file's malware scan: looks at the file (`GET /files/{id}`) after `intervalMs`,
   * then twice as long each time up to `maxIntervalMs`. Resolves with the record once it is
   * `available` (at once if it is); rejects with `upload_rejected` (`fileStatus`, `rejectedFor`)
   * if it was rejected, or `not_ready` if it is still not available after `timeoutMs`.
   * @param {string} id
   * @param {import("./presign-gate.js").ScanWaitOptions} [options]
   * @returns {Promise<import("./presign-gate.js").FileRecord>}
   */
  async waitUntilAvailable(id, options = {}) {
    return waitForScan((signal) => this.get(id, { signal }), (ms, signal) => this.#transport.sleep(ms, signal), options);
  }

  /** @param {string} id @param {{ signal?: AbortSignal }} [options] */
  async get(id, { signal } = {}) {
    const { file } = await this.#api.call("GET", `/files/${encodeURIComponent(id)}`, { signal });
    return file;
  }

  /** One page of the caller's files. @param {import("./presign-gate.js").ListOptions} [options] */
  async list(options = {}) {
    return this.#page("/files", options);
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
    await this.#api.call("DELETE", `/files/${encodeURIComponent(id)}`, { signal });
  }

  /**
   * Lets `grantee` (another caller's sub) download one of the caller's available files, until
   * `expiresAt` (absent: until revoked); a second grant to the same grantee renews it.
   * @param {string} id
   * @param {string} grantee
   * @param {{ expiresAt?: Date | string, signal?: AbortSignal }} [options]
   * @returns {Promise<import("./presign-gate.js").Grant>}
   */
  async grant(id, grantee, { expiresAt, signal } = {}) {
    const { grant } = await this.#api.call("POST", `/files/${encodeURIComponent(id)}/grants`, {
      // A Date is sent as its toJSON(): RFC 3339 in UTC, as the API takes it.
      body: { grantee, expiresAt },
      signal,
    });
    return grant;
  }

  /**
   * The grants on one of the caller's files, expired ones included until a later change drops them.
   * @param {string} id @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<import("./presign-gate.js").Grant[]>}
   */
  async grants(id, { signal } = {}) {
    const { grants } = await this.#api.call("GET", `/files/${encodeURIComponent(id)}/grants`, { signal });
    return grants;
  }

  /** Revokes a grant at once. @param {string} id @param {string} grantee @param {{ signal?: AbortSignal }} [options] */
  async revokeGrant(id, grantee, { signal } = {}) {
    await this.#api.call("DELETE", `/files/${encodeURIComponent(id)}/grants/${encodeURIComponent(grantee)}`, { signal });
  }

  /**
   * One page of the files others shared with the caller, newest grant first.
   * @param {import("./presign-gate.js").ListOptions} [options]
   * @returns {Promise<{ files: import("./presign-gate.js").SharedFile[], nextToken: string | null }>}
   */
  async shared(options = {}) {
    return this.#page("/shared", options);
  }

  /**
   * A short-lived GET URL for a file `owner` shared with the caller, ending no later than the grant.
   * @param {string} owner
   * @param {string} id
   * @param {import("./presign-gate.js").DownloadOptions} [options]
   */
  async sharedDownloadUrl(owner, id, options = {}) {
    return this.#downloadUrlAt(`/shared/${encodeURIComponent(owner)}/${encodeURIComponent(id)}/download-url`, options);
  }

  /**
   * Fetches a file `owner` shared with the caller, as `download` fetches the caller's own.
   * @param {string} owner
   * @param {string} id
   * @param {import("./presign-gate.js").DownloadOptions} [options]
   */
  async downloadShared(owner, id, options = {}) {
    return this.#fetchFresh(() => this.sharedDownloadUrl(owner, id, options), options.signal);
  }

  /**
   * A share link to one of the caller's available files: anyone holding its `url` downloads the
   * file, at most `maxDownloads` times (absent: any number) for `expiresIn` seconds (absent: the
   * API's maximum). The `url` carries the link's secret and is never shown again.
   * @param {string} id
   * @param {{ expiresIn?: number, maxDownloads?: number, signal?: AbortSignal }} [options]
   * @returns {Promise<import("./presign-gate.js").CreatedLink>}
   */
  async createLink(id, { expiresIn, maxDownloads, signal } = {}) {
    const { link } = await this.#api.call("POST", `/files/${encodeURIComponent(id)}/links`, {
      body: { expiresIn, maxDownloads },
      signal,
    });
    return link;
  }

  /**
   * The share links of one of the caller's files, oldest first, with their download counts (never
   * a secret or a URL).
   * @param {string} id @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<import("./presign-gate.js").ShareLink[]>}
   */
  async links(id, { signal } = {}) {
    const { links } = await this.#api.call("GET", `/files/${encodeURIComponent(id)}/links`, { signal });
    return links;
  }

  /** Revokes a share link at once. @param {string} id @param {string} linkId @param {{ signal?: AbortSignal }} [options] */
  async revokeLink(id, linkId, { signal } = {}) {
    await this.#api.call("DELETE", `/files/${encodeURIComponent(id)}/links/${encodeURIComponent(linkId)}`, { signal });
  }

  /**
   * One page of a listing (`GET /files`, `GET /shared`): `nextToken` null once the walk is over.
   * @param {string} path @param {import("./presign-gate.js").ListOptions} options
   */
  async #page(path, { limit, nextToken, signal }) {
    const { files, nextToken: next } = await this.#api.call("GET", path, { query: { limit, nextToken }, signal });
    return { files, nextToken: next ?? null };
  }

  /**
   * A download URL from `path` (`GET /files/{id}/download-url` or the shared one).
   * @param {string} path @param {import("./presign-gate.js").DownloadOptions} options
   * @returns {Promise<import("./presign-gate.js").DownloadUrl>}
   */
  async #downloadUrlAt(path, { disposition, expiresIn, signal }) {
    const { url, expiresAt } = await this.#api.call("GET", path, { query: { disposition, expiresIn }, signal });
    return { url, expiresAt };
  }

  /**
   * GETs the URL `sign` hands out, asking `sign` again for each URL S3 refuses as expired (as
   * many times as the retry policy allows); S3's `Response` once it answers 2xx.
   * @param {() => Promise<{ url: string }>} sign @param {AbortSignal} [signal]
   * @returns {Promise<Response>}
   */
  async #fetchFresh(sign, signal) {
    for (let attempt = 0; ; attempt++) {
      const { url } = await sign();
      const response = await this.#api.fetchStorage(url, { signal });
      if (response.ok) return response;
      // Stryker disable next-line ArrowFunction,StringLiteral: any body without an S3 <Error> reads the same (mutants-equivalent.md)
      const answer = { status: response.status, body: await response.text().catch(() => "") };
      if (urlExpired(answer) && attempt < this.#transport.retry.retries) continue;
      const storageCode = storageCodeOf(answer);
      throw new PresignGateError(`Storage refused the download (${storageCode ?? `HTTP ${answer.status}`}).`, {
        status: answer.status,
        code: "download_failed",
        storageCode,
      });
    }
  }

  /** Sends the bytes of a single-request reservation. */
  async #transfer(file, blob, upload, { onProgress, signal, expiresIn }) {
    if (upload.method !== "PUT") {
      throw new PresignGateError(`This client cannot send a ${upload.method} upload yet.`, {
        status: 0,
        code: "unsupported_upload",
      });
    }
    const renew = async () => {
      const fresh = await this.uploadUrl(file.id, { expiresIn, signal });
      if (fresh.method !== "PUT" || !fresh.url) {
        throw new PresignGateError("The API signed no upload URL.", { status: 200, code: "invalid_response" });
      }
      return fresh;
    };
    await putWithRetries(this.#transport, blob, upload, { onProgress, signal, renew });
  }

  /** @param {string} id @param {Blob} blob @param {any} plan @param {any} options */
  #sendParts(id, blob, plan, { concurrency = this.#partConcurrency, ...options }) {
    const context = {
      transport: this.#transport,
      signParts: (parts, signal) => this.signParts(id, parts, { signal }),
      deleteFile: () => this.delete(id),
    };
    return sendParts(context, blob, plan, { ...options, concurrency });
  }
}

/**
 * `promise`, or the signal's reason as soon as it aborts.
 * @template T @param {Promise<T>} promise @param {AbortSignal} [signal] @returns {Promise<T>}
 */
function abortable(promise, signal) {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    // Stryker disable next-line ObjectLiteral,BooleanLiteral: removed once the promise settles (mutants-equivalent.md)
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
