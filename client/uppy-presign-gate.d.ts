import type { PresignGate } from "./presign-gate.js";

/** The part of Uppy's `Uppy` class the adapter uses (Uppy 6). */
export interface UppyLike {
  use(plugin: unknown, options: object): unknown;
  getPlugin(id: string): unknown;
  removePlugin(plugin: unknown): void;
  getFile(id: string): { id: string; name: string; type: string; data: Blob; error?: unknown } | undefined;
  addPostProcessor(fn: (fileIds: string[], uploadId: string) => Promise<void>): void;
  removePostProcessor(fn: (fileIds: string[], uploadId: string) => Promise<void>): boolean;
  emit(event: string, ...args: unknown[]): void;
}

export interface PresignGateUppyOptions {
  /** As `gate.upload`'s: `true` (default) hashes each file so S3 refuses other bytes. */
  sha256?: boolean;
  /** Lifetime of each upload URL in seconds. */
  expiresIn?: number;
  /** Files uploading at once (@uppy/aws-s3's `limit`). */
  limit?: number;
}

/**
 * Installs @uppy/aws-s3 (6.3 or later) on `uppy` so every file is reserved through Presign Gate,
 * sent as one presigned PUT with the server's key and headers, then confirmed. Emits
 * `presign-gate:available` (uppyFile, record) per confirmed file. Returns an uninstaller.
 */
export declare function usePresignGate(
  uppy: UppyLike,
  AwsS3: unknown,
  gate: PresignGate,
  options?: PresignGateUppyOptions,
): () => void;

/** The object key (`users/<owner>/<id>`) a presigned URL addresses. */
export declare function objectKeyOf(url: string): string;

