// Types of presign-gate.js (the module itself is plain JavaScript: no build step).

/**
 * `pending`: reserved, not confirmed; `scanning`: confirmed, waiting for the malware scan's
 * verdict (where the API scans uploads); `available`: downloads allowed; `rejected`: refused, its
 * object deleted (`rejectedFor` says why).
 */
export type FileStatus = "pending" | "scanning" | "available" | "rejected";

/**
 * Why a file was rejected: the malware scan found a threat (`malware`) or could not scan it
 * (`unscannable`), the stored object differed from the reservation (`mismatch`), or it no longer
 * fit the quota (`over_quota`).
 */
export type RejectReason = "malware" | "unscannable" | "mismatch" | "over_quota";

/** A file record as the API returns it. */
export interface FileRecord {
  id: string;
  filename: string;
  contentType: string;
  size: number;
  status: FileStatus;
  createdAt: string;
  etag?: string;
  uploadedAt?: string;
  /** Why a rejected file was refused (absent for rejections recorded before reasons were). */
  rejectedFor?: RejectReason;
}

export type HeaderMap = Record<string, string>;

export interface RetryOptions {
  /** Attempts after the first (default 4). */
  retries?: number;
  /** Full-jitter exponential backoff: a delay in [0, min(maxDelayMs, baseDelayMs * 2^n)). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** An API `Retry-After` longer than this is cut to it (default 30 s). */
  maxRetryAfterMs?: number;
}

export interface PresignGateOptions {
  /** The API's base URL, stage path included (`https://abc.execute-api.eu-west-1.amazonaws.com`). */
  apiUrl: string | URL;
  /** Headers for every API call, e.g. `async () => ({ authorization: \`Bearer ${token}\` })`. */
  headers?: HeaderMap | (() => HeaderMap | Promise<HeaderMap>);
  /** Defaults to the global `fetch`. */
  fetch?: typeof globalThis.fetch;
  /** Defaults to the global `XMLHttpRequest` (uploads use it: fetch reports no upload progress). */
  XMLHttpRequest?: typeof globalThis.XMLHttpRequest;
  retry?: RetryOptions;
  /** For tests: the jitter source (default `Math.random`). */
  random?: () => number;
  /** For tests: how to wait between attempts (default: a timer that rejects on abort). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /**
   * Files above this many bytes are reserved as multipart uploads (`"multipart": true`) and
   * hashed part by part rather than whole (S3 verifies no whole-file SHA-256 of a multipart
   * upload). Default: the server's `MULTIPART_THRESHOLD_BYTES`, as `GET /usage` reports it (asked
   * once), so the client decides as the server will. Set it only below the server's.
   */
  multipartThreshold?: number;
  /** Parts of one multipart upload in flight at once (default 4). */
  partConcurrency?: number;
}

export interface Progress {
  loaded: number;
  total: number;
}

export interface ReserveOptions {
  /** Defaults to the `File`'s name. */
  filename?: string;
  /** Defaults to the blob's type. */
  contentType?: string;
  /**
   * `true` (default): compute the SHA-256 so S3 refuses other bytes of the same length;
   * `false`: none; a string: that base64 digest, computed elsewhere.
   */
  sha256?: boolean | string;
  /** Lifetime of the upload URL in seconds (the API's default otherwise). */
  expiresIn?: number;
  /** Ask for a multipart upload whatever the size; default: above `resolveMultipartThreshold()`. */
  multipart?: boolean;
  /**
   * Sent as the `Idempotency-Key` header of `POST /uploads`, the same on each retry of this
   * reservation, so a repeat answers with the same file rather than a second reservation.
   * Default: a random UUID per call.
   */
  idempotencyKey?: string;
  /** Aborts hashing, the reservation, the transfer or the confirmation, whichever is under way. */
  signal?: AbortSignal;
}

/** How to send a single-PUT upload: the presigned URL and the headers it was signed with. */
export interface PutUpload {
  method: "PUT";
  url: string;
  headers: HeaderMap;
  expiresAt: string;
}

/** What `POST /uploads` answers: the pending record and how to send the bytes. */
export interface Reservation {
  file: FileRecord;
  upload:
    | PutUpload
    | { method: "MULTIPART"; partSize: number; partCount: number; partSha256: boolean; expiresAt: string };
}

export interface PartOptions {
  /**
   * Single PUT: bytes sent so far, from 0 again when a failed attempt is retried. Multipart:
   * bytes of stored parts plus bytes of parts in flight, never going back.
   */
  onProgress?: (progress: Progress) => void;
  /** Called (and awaited) once S3 holds the bytes, before the client confirms the upload. */
  onStored?: (file: FileRecord) => void | Promise<void>;
  /** Multipart: parts in flight at once (default: the client's `partConcurrency`). */
  concurrency?: number;
  /**
   * Multipart: `false` sends no per-part SHA-256; otherwise each part's digest is signed into
   * its URL, so S3 refuses other bytes for that part.
   */
  sha256?: boolean | string;
  /**
   * Multipart: aborting stops the parts in flight, then deletes the file so the server aborts
   * the S3 upload. (A single PUT's abort leaves the pending reservation, which lapses.)
   */
  signal?: AbortSignal;
}

export interface UploadOptions extends ReserveOptions, PartOptions {
  /** Called (and awaited) once the reservation is made: keep `file.id` to `resume` after a reload. */
  onReserved?: (file: FileRecord, upload: Reservation["upload"]) => void | Promise<void>;
}

export type ResumeOptions = PartOptions;

/** What `GET /files/{id}/parts` answers: the plan and what S3 holds. */
export interface StoredParts {
  partSize: number;
  partCount: number;
  /** Whether every part carries its SHA-256, as chosen at reservation. */
  partSha256: boolean;
  parts: { partNumber: number; size: number; etag: string }[];
}

/** One presigned part URL (`POST /files/{id}/parts`). */
export interface PartUrl {
  partNumber: number;
  method: "PUT";
  url: string;
  headers: HeaderMap;
  expiresAt: string;
}

export interface DownloadOptions {
  disposition?: "attachment" | "inline";
  expiresIn?: number;
  signal?: AbortSignal;
}

/** How `waitUntilAvailable` waits (defaults: `DEFAULT_SCAN_WAIT`). */
export interface ScanWaitOptions {
  /** The first wait between two looks at the file (default 1 s); each later one doubles. */
  intervalMs?: number;
  /** The longest wait between two looks (default 10 s). */
  maxIntervalMs?: number;
  /** Gives up with `not_ready` after this long (default 15 minutes). */
  timeoutMs?: number;
  /** Stops waiting: rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface ListOptions {
  limit?: number;
  nextToken?: string;
  signal?: AbortSignal;
}

export interface DownloadUrl {
  url: string;
  expiresAt: string;
}

/** A grant on one of the caller's files (`POST`/`GET /files/{id}/grants`). */
export interface Grant {
  /** The sub of the caller the file is shared with. */
  grantee: string;
  grantedAt: string;
  /** Null: until revoked. */
  expiresAt: string | null;
}

/** A file another caller shared with this one (`GET /shared`). */
export interface SharedFile {
  /** The sub of the file's owner: pass it to `sharedDownloadUrl` / `downloadShared`. */
  owner: string;
  id: string;
  filename: string;
  contentType: string;
  size: number;
  grantedAt: string;
  expiresAt: string | null;
}

/** A share link as `GET /files/{id}/links` lists it: never its secret or URL. */
export interface ShareLink {
  id: string;
  createdAt: string;
  expiresAt: string;
  /** Null: any number of downloads until it expires. */
  maxDownloads: number | null;
  downloads: number;
}

/** A share link as `POST /files/{id}/links` creates it: `url` (with the secret) appears only here. */
export interface CreatedLink extends Omit<ShareLink, "downloads"> {
  /** `<API base>/links/<id>?secret=…`: anyone holding it can download the file, no identity needed. */
  url: string;
}

export interface LinkOptions {
  /** Seconds the link lives (default and maximum: the API's `LINK_MAX_SECONDS`, 7 days). */
  expiresIn?: number;
  /** Downloads allowed (absent: any number until it expires). */
  maxDownloads?: number;
  signal?: AbortSignal;
}

export declare class PresignGateError extends Error {
  readonly name: "PresignGateError";
  /** HTTP status; 0 when no response arrived (network failure, CORS refusal). */
  readonly status: number;
  /**
   * The API's error code (`invalid_request`, `content_type_not_allowed`, `not_found`, `not_ready`,
   * `upload_missing`, `upload_rejected` (also `waitUntilAvailable`'s, for a file rejected after
   * its scan: see `rejectedFor`), `too_large`, `conflict`, `quota_exceeded`,
   * `unauthenticated`, `unavailable`, ...), or the
   * client's own: `network_error`, `upload_failed` (S3 refused the bytes; see `storageCode`),
   * `download_failed` (S3 refused a download URL `download` fetched),
   * `unsupported_upload`, `resume_mismatch` (the blob is not the reserved file),
   * `invalid_response`, `forbidden`, `throttled`, `http_error`.
   */
  readonly code: string;
  /** S3's error code when storage refused the bytes (`BadDigest`, `AccessDenied`, ...). */
  readonly storageCode?: string;
  /**
   * The file's status when it is not available: `not_ready` (a download URL refused, or
   * `waitUntilAvailable` out of time) says `pending`, `scanning` or `rejected`; `upload_rejected`
   * from `waitUntilAvailable` or `resume` says `rejected`.
   */
  readonly fileStatus?: FileStatus;
  /** Why the file was rejected, when the API said (`upload_rejected` from `waitUntilAvailable`, `resume`). */
  readonly rejectedFor?: RejectReason;
}

export declare const DEFAULT_RETRY: Readonly<Required<RetryOptions>>;
/** 100 MiB, the server's default `MULTIPART_THRESHOLD_BYTES`. */
export declare const DEFAULT_MULTIPART_THRESHOLD: number;
export declare const DEFAULT_PART_CONCURRENCY: number;
/** How `waitUntilAvailable` waits unless told: 1 s, doubling to 10 s, for at most 15 minutes. */
export declare const DEFAULT_SCAN_WAIT: Readonly<Required<Omit<ScanWaitOptions, "signal">>>;
/** The most part URLs one `POST /files/{id}/parts` signs (100). */
export declare const PART_URL_BATCH: number;

export declare class PresignGate {
  constructor(options: PresignGateOptions);
  /** The constructor's `multipartThreshold`, else the API's once known (100 MiB until then). */
  readonly multipartThreshold: number;
  /**
   * The size above which uploads are multipart: the constructor's `multipartThreshold`, else the
   * API's (`GET /usage`, `uploads.multipartThresholdBytes`), asked once; 100 MiB for an API too
   * old to say.
   */
  resolveMultipartThreshold(options?: { signal?: AbortSignal }): Promise<number>;
  /**
   * Resolves with the confirmed file record: `available`, or `scanning` where the API scans
   * uploads (then `waitUntilAvailable`); aborts reject with the signal's reason. A `MULTIPART`
   * reservation is sent in parts, in parallel, each retried on its own.
   */
  upload(blob: Blob, options?: UploadOptions): Promise<FileRecord>;
  /**
   * Continues a multipart upload after a reload or a failure: sends only the parts S3 lacks,
   * then confirms. `blob` must be the reserved file (same size, same bytes). A file already
   * confirmed (`available`, `scanning`) is returned as it is; a rejected one is `upload_rejected`.
   */
  resume(id: string, blob: Blob, options?: ResumeOptions): Promise<FileRecord>;
  /** The plan of a pending multipart upload and the parts S3 holds. */
  parts(id: string, options?: { signal?: AbortSignal }): Promise<StoredParts>;
  /** URLs for up to 100 parts, each signed for its planned length (and SHA-256, when given). */
  signParts(
    id: string,
    parts: { partNumber: number; sha256?: string }[],
    options?: { signal?: AbortSignal },
  ): Promise<PartUrl[]>;
  /** Hashes (unless `sha256: false`) and reserves: the first step of `upload` alone. */
  reserve(blob: Blob, options?: ReserveOptions): Promise<Reservation>;
  /**
   * Confirms an upload (the server checks the stored object); idempotent. The record is
   * `available`, or `scanning` where the API scans uploads.
   */
  complete(id: string, options?: { signal?: AbortSignal }): Promise<FileRecord>;
  /**
   * A fresh URL for the single PUT of a pending reservation (`POST /files/{id}/upload-url`), for
   * when S3 refused the first as expired or signed with an expired session token (`ExpiredToken`);
   * `upload` asks for one by itself.
   */
  uploadUrl(id: string, options?: { expiresIn?: number; signal?: AbortSignal }): Promise<PutUpload>;
  /** Refused `not_ready` (409) while the file is not available; `fileStatus` says what it is. */
  downloadUrl(id: string, options?: DownloadOptions): Promise<DownloadUrl>;
  /**
   * Fetches an available file through a fresh download URL (no caller header goes to S3); a URL S3
   * refuses as expired (`AccessDenied` "Request has expired", or `ExpiredToken`) is replaced.
   * Resolves with S3's response; rejects with `download_failed` on any other refusal, and with
   * `not_ready` (`fileStatus`) for a file not available.
   */
  download(id: string, options?: DownloadOptions): Promise<Response>;
  downloadUrls(
    ids: string[],
    options?: DownloadOptions,
  ): Promise<{ urls: Record<string, DownloadUrl & { method: "GET" }>; errors: Record<string, { code: string }> }>;
  get(id: string, options?: { signal?: AbortSignal }): Promise<FileRecord>;
  /**
   * Waits for the file's malware scan, looking at it (`GET /files/{id}`) with growing waits.
   * Resolves with the record once `available` (at once if it is); rejects with `upload_rejected`
   * (`fileStatus: "rejected"`, `rejectedFor`) if it is rejected, with `not_ready` (`fileStatus`)
   * after `timeoutMs`, and with the signal's reason on abort.
   */
  waitUntilAvailable(id: string, options?: ScanWaitOptions): Promise<FileRecord>;
  list(options?: ListOptions): Promise<{ files: FileRecord[]; nextToken: string | null }>;
  /** Every file of the caller, fetching page after page. */
  files(options?: Omit<ListOptions, "nextToken">): AsyncGenerator<FileRecord>;
  delete(id: string, options?: { signal?: AbortSignal }): Promise<void>;

  /**
   * Shares an available file with another caller (its sub) until `expiresAt` (absent: until
   * revoked); a second grant to the same grantee renews it.
   */
  grant(id: string, grantee: string, options?: { expiresAt?: Date | string; signal?: AbortSignal }): Promise<Grant>;
  /** The file's grants, in grantee order. */
  grants(id: string, options?: { signal?: AbortSignal }): Promise<Grant[]>;
  /** Revokes at once: the grantee's next download URL request is a 404. */
  revokeGrant(id: string, grantee: string, options?: { signal?: AbortSignal }): Promise<void>;
  /** One page of the files shared with the caller, newest grant first (live grants only). */
  shared(options?: ListOptions): Promise<{ files: SharedFile[]; nextToken: string | null }>;
  /** A download URL for a file `owner` shared with the caller, ending no later than the grant. */
  sharedDownloadUrl(owner: string, id: string, options?: DownloadOptions): Promise<DownloadUrl>;
  /** Fetches a file `owner` shared with the caller, as `download` fetches the caller's own. */
  downloadShared(owner: string, id: string, options?: DownloadOptions): Promise<Response>;
  /** A share link to an available file; its `url` holds the secret and is never shown again. */
  createLink(id: string, options?: LinkOptions): Promise<CreatedLink>;
  /** The file's share links, oldest first, with their download counts. */
  links(id: string, options?: { signal?: AbortSignal }): Promise<ShareLink[]>;
  /** Revokes at once: the next redemption of the link is a 404. */
  revokeLink(id: string, linkId: string, options?: { signal?: AbortSignal }): Promise<void>;
}

/** Whether a page may set this request header (content-length, host and the like it may not). */
export declare function browserMaySet(name: string): boolean;
/** `Retry-After` (seconds or an HTTP date) in milliseconds, or null. */
export declare function parseRetryAfter(value: string | null | undefined): number | null;
