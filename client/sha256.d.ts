/** Above this size a blob is hashed as a stream instead of read into one buffer (64 MiB). */
export declare const WHOLE_BUFFER_LIMIT: number;

/** Incremental SHA-256: `update` with chunks of any size, then `digest` once. */
export declare class Sha256 {
  update(bytes: Uint8Array): this;
  digest(): Uint8Array;
}

export declare function toBase64(bytes: Uint8Array): string;

/** SHA-256 of a blob as standard base64: WebCrypto up to `wholeBufferLimit`, streamed above. */
export declare function sha256Base64(
  blob: Blob,
  options?: { signal?: AbortSignal; wholeBufferLimit?: number },
): Promise<string>;
