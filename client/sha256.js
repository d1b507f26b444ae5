// SHA-256 of a Blob, as the base64 the API's `sha256` field takes.
//
// WebCrypto's `crypto.subtle.digest` is fast but has no incremental form: it needs the whole input
// in one buffer. Up to `wholeBufferLimit` bytes we read the blob into memory and let WebCrypto
// digest it; above that (and where WebCrypto is missing: pages outside a secure context) the blob
// is streamed through the small incremental implementation below, so memory stays at one chunk.

/** Above this size a blob is hashed as a stream instead of read into one buffer. */
export const WHOLE_BUFFER_LIMIT = 64 * 1024 * 1024;

const ROUND_CONSTANTS = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const INITIAL_STATE = [
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/** Incremental SHA-256 (FIPS 180-4): `update` with chunks of any size, then `digest` once. */
export class Sha256 {
  #state = Uint32Array.from(INITIAL_STATE);
  #block = new Uint8Array(64);
  #blockLength = 0;
  #bytesHashed = 0;
  #schedule = new Uint32Array(64);
  #finished = false;

  /** @param {Uint8Array} bytes */
  update(bytes) {
    if (this.#finished) throw new Error("Sha256: update after digest");
    let offset = 0;
    this.#bytesHashed += bytes.length;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: an empty block takes a whole one and compresses it, the same (mutants-equivalent.md)
    if (this.#blockLength > 0) {
      const take = Math.min(64 - this.#blockLength, bytes.length);
      this.#block.set(bytes.subarray(0, take), this.#blockLength);
      this.#blockLength += take;
      offset = take;
      if (this.#blockLength < 64) return this;
      this.#compress(this.#block, 0);
      this.#blockLength = 0;
    }
    for (; offset + 64 <= bytes.length; offset += 64) this.#compress(bytes, offset);
    // Stryker disable next-line ConditionalExpression,EqualityOperator: keeping no bytes leaves the block empty, the same (mutants-equivalent.md)
    if (offset < bytes.length) {
      this.#block.set(bytes.subarray(offset), 0);
      this.#blockLength = bytes.length - offset;
    }
    return this;
  }

  /** @returns {Uint8Array} the 32-byte digest */
  digest() {
    if (this.#finished) throw new Error("Sha256: digest called twice");
    const padding = new Uint8Array(this.#blockLength < 56 ? 64 - this.#blockLength : 128 - this.#blockLength);
    padding[0] = 0x80;
    // The message length in bits as a 64-bit big-endian number.
    new DataView(padding.buffer).setBigUint64(padding.length - 8, BigInt(this.#bytesHashed) * 8n);
    this.update(padding);
    this.#finished = true;
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    this.#state.forEach((word, i) => outView.setUint32(i * 4, word));
    return out;
  }

  #compress(bytes, offset) {
    const w = this.#schedule;
    // Stryker disable next-line EqualityOperator: w[16] is computed again below (mutants-equivalent.md)
    for (let i = 0; i < 16; i++) {
      const j = offset + i * 4;
      w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
    }
    // Stryker disable next-line EqualityOperator: w[64] is past the schedule's end, and dropped (mutants-equivalent.md)
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15];
      const b = w[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    const s = this.#state;
    let [a, b, c, d, e, f, g, h] = s;
    for (let i = 0; i < 64; i++) {
      const sum1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const choice = (e & f) ^ (~e & g);
      const t1 = (h + sum1 + choice + ROUND_CONSTANTS[i] + w[i]) | 0;
      const sum0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const majority = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (sum0 + majority) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    s[0] += a;
    s[1] += b;
    s[2] += c;
    s[3] += d;
    s[4] += e;
    s[5] += f;
    s[6] += g;
    s[7] += h;
  }
}

/** @param {Uint8Array} bytes */
export function toBase64(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/**
 * The SHA-256 of `blob` as standard base64.
 * @param {Blob} blob
 * @param {{ signal?: AbortSignal, wholeBufferLimit?: number }} [options]
 * @returns {Promise<string>}
 */
export async function sha256Base64(blob, { signal, wholeBufferLimit = WHOLE_BUFFER_LIMIT } = {}) {
  signal?.throwIfAborted();
  const subtle = globalThis.crypto?.subtle;
  if (subtle && blob.size <= wholeBufferLimit) {
    const digest = await subtle.digest("SHA-256", await blob.arrayBuffer());
    signal?.throwIfAborted();
    return toBase64(new Uint8Array(digest));
  }
  const hash = new Sha256();
  const reader = blob.stream().getReader();
  try {
    for (;;) {
      signal?.throwIfAborted();
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  }
  return toBase64(hash.digest());
}
