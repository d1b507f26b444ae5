import type { PresignGate } from "./presign-gate.js";

/** The part of Uppy's `Uppy` class the adapter uses (Uppy 6). */
export interface UppyLike {
  use(plugin: unknown, options: object): unknown;
  getPlugin(id: string): unknown;
  removePlugin(plugin: unknown): void;
  getFile(id: string): { id: string; name: string; type: string; size: number; data: Blob; error?: unknown } | undefined;
  addPreProcessor(fn: (fileIds: string[], uploadId: string) => Promise<void>): void;
  removePreProcessor(fn: (fileIds: string[], uploadId: string) => Promise<void>): boolean;
  addPostProcessor(fn: (fileIds: string[], uploadId: string) => Promise<void>): void;
  removePostProcessor(fn: (fileIds: string[], uploadId: string) => Promise<void>): boolean;
  emit(event: string, ...args: unknown[]): void;
}

export interface PresignGateUppyOptions {
  /**
   * `true` (default): a single-PUT file is hashed whole and a multipart file part by part, so S3
   * refuses other bytes; `false`: no digests.
   */
  sha256?: boolean;
  /** Lifetime of each single-PUT upload URL in seconds. */
  expiresIn?: number;
  /** Files uploading at once (@uppy/aws-s3's `limit`). */
  limit?: number;
}

/**
 * Installs @uppy/aws-s3 (6.3 or later) on `uppy` so every file is reserved through Presign Gate.
 * Files up to `gate.multipartThreshold` go as one presigned PUT with the server's key and headers;
 * larger ones use Uppy's multipart mode with the server's part plan and part URLs. Each file is
 * confirmed; `presign-gate:available` (uppyFile, record) is emitted per confirmed file. Returns an
 * uninstaller.
 */
export declare function usePresignGate(
  uppy: UppyLike,
  AwsS3: unknown,
  gate: PresignGate,
  options?: PresignGateUppyOptions,
): () => void;

/** A `data:` URL carrying the XML S3 would answer `root` with (for Uppy's own S3 requests). */
export declare function s3Answer(
  root: string,
  fields: Record<string, unknown>,
  parts?: Record<string, unknown>[],
): { url: string };

/** The object key (`users/<owner>/<id>`) a presigned URL addresses. */
export declare function objectKeyOf(url: string): string;
