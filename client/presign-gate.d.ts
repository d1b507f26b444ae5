// Types of presign-gate.js (the module itself is plain JavaScript: no build step).

export type FileStatus = "pending" | "available" | "rejected";

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
}

export type HeaderMap = Record<string, string>;

export interface RetryOptions {
  /** Attempts after the first (default 4). */
  retries?: number;
  /** Full-jitter exponential backoff: a delay in [0, min(maxDelayMs, baseDelayMs * 2^n)). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A `Retry-After` longer than this is cut to it (default 30 s). */
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
  /** Aborts hashing, the reservation, the transfer or the confirmation, whichever is under way. */
  signal?: AbortSignal;
}

/** What `POST /uploads` answers: the pending record and how to send the bytes. */
export interface Reservation {
  file: FileRecord;
  upload:
    | { method: "PUT"; url: string; headers: HeaderMap; expiresAt: string }
    | { method: "MULTIPART"; partSize: number; partCount: number; expiresAt: string };
}

export interface UploadOptions extends ReserveOptions {
  /** Bytes sent so far; starts again from 0 when a failed attempt is retried. */
  onProgress?: (progress: Progress) => void;
  /** Called (and awaited) once S3 holds the bytes, before the client confirms the upload. */
  onStored?: (file: FileRecord) => void | Promise<void>;
}

export interface DownloadOptions {
  disposition?: "attachment" | "inline";
  expiresIn?: number;
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

export declare class PresignGateError extends Error {
  readonly name: "PresignGateError";
  /** HTTP status; 0 when no response arrived (network failure, CORS refusal). */
  readonly status: number;
  /**
   * The API's error code (`invalid_request`, `content_type_not_allowed`, `not_found`, `not_ready`,
   * `upload_missing`, `upload_rejected`, `too_large`, `unauthenticated`, `unavailable`, ...), or the
   * client's own: `network_error`, `upload_failed` (S3 refused the bytes; see `storageCode`),
   * `unsupported_upload`, `invalid_response`, `forbidden`, `throttled`, `http_error`.
   */
  readonly code: string;
  /** S3's error code when storage refused the bytes (`BadDigest`, `AccessDenied`, ...). */
  readonly storageCode?: string;
}

export declare const DEFAULT_RETRY: Readonly<Required<RetryOptions>>;

export declare class PresignGate {
  constructor(options: PresignGateOptions);
  /** Resolves with the file record once it is available; aborts reject with the signal's reason. */
  upload(blob: Blob, options?: UploadOptions): Promise<FileRecord>;
  /** Hashes (unless `sha256: false`) and reserves: the first step of `upload` alone. */
  reserve(blob: Blob, options?: ReserveOptions): Promise<Reservation>;
  /** Confirms an upload (the server checks the stored object); idempotent. */
  complete(id: string, options?: { signal?: AbortSignal }): Promise<FileRecord>;
  downloadUrl(id: string, options?: DownloadOptions): Promise<DownloadUrl>;
  downloadUrls(
    ids: string[],
    options?: DownloadOptions,
  ): Promise<{ urls: Record<string, DownloadUrl & { method: "GET" }>; errors: Record<string, { code: string }> }>;
  get(id: string, options?: { signal?: AbortSignal }): Promise<FileRecord>;
  list(options?: ListOptions): Promise<{ files: FileRecord[]; nextToken: string | null }>;
  /** Every file of the caller, fetching page after page. */
  files(options?: Omit<ListOptions, "nextToken">): AsyncGenerator<FileRecord>;
  delete(id: string, options?: { signal?: AbortSignal }): Promise<void>;
}

/** Whether a page may set this request header (content-length, host and the like it may not). */
export declare function browserMaySet(name: string): boolean;
/** `Retry-After` (seconds or an HTTP date) in milliseconds, or null. */
export declare function parseRetryAfter(value: string | null | undefined): number | null;
