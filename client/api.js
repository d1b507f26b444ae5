// Presign Gate's browser client: one call to the API, with the caller's headers, retried where
// retrying can help.

import { PresignGateError, apiError, apiErrorBody, apiErrorOf, readJson } from "./errors.js";

export class Api {
  #apiUrl;
  #headers;
  #fetch;
  #transport;

  /**
   * @param {{ apiUrl: string | URL, headers?: import("./presign-gate.js").PresignGateOptions["headers"],
   *   fetch?: typeof fetch }} options
   * @param {import("./transfer.js").Transport} transport
   */
  constructor({ apiUrl, headers, fetch }, transport) {
    this.#apiUrl = String(apiUrl).replace(/\/+$/, "");
    this.#headers = headers ?? {};
    this.#fetch = fetch ?? ((url, init) => globalThis.fetch(url, init));
    this.#transport = transport;
  }

  /**
   * One API call, retried on 503, API Gateway's 429 and network failures; the parsed body, or
   * null for a 204. `headers` are sent with the caller's, on every attempt.
   * @param {string} method
   * @param {string} path
   * @param {{ body?: unknown, query?: Record<string, unknown>, headers?: Record<string, string>, signal?: AbortSignal }} [request]
   * @returns {Promise<any>}
   */
  async call(method, path, { body, query, headers: extra, signal } = {}) {
    const url = new URL(this.#apiUrl + path);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    const transport = this.#transport;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      const headers = { ...(await this.#callerHeaders()), ...extra };
      if (body !== undefined) headers["content-type"] = "application/json";
      let response;
      try {
        response = await this.#fetch(url.href, {
          method,
          headers,
          // Stryker disable next-line ConditionalExpression: JSON.stringify(undefined) is undefined too (mutants-equivalent.md)
          body: body === undefined ? undefined : JSON.stringify(body),
          signal,
          cache: "no-store",
          credentials: "omit",
        });
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (attempt < transport.retry.retries) {
          await transport.sleep(transport.delay(attempt, null), signal);
          continue;
        }
        throw new PresignGateError(
          "The API could not be reached (network failure, or the API's CORS rules refused this page).",
          { status: 0, code: "network_error", cause: error },
        );
      }
      if (response.ok) return response.status === 204 ? null : readJson(response);
      const retryAfter = response.headers.get("retry-after");
      if (response.status === 429) {
        // Two 429s: API Gateway's throttling (`{"message":"Too Many Requests"}`), which passes,
        // and the API's own `quota_exceeded` (`{"error":{"code":...}}`), which will not change
        // by asking again. Only the first is retried.
        // Stryker disable next-line ArrowFunction,StringLiteral: any text that is not JSON reads the same (mutants-equivalent.md)
        const text = await response.text().catch(() => "");
        if (apiErrorBody(text) === null && attempt < transport.retry.retries) {
          await transport.sleep(transport.delay(attempt, retryAfter), signal);
          continue;
        }
        throw apiErrorOf(response.status, text);
      }
      // 503: the API's `unavailable`. The API's own 500 is a fault that retrying will not fix.
      if (response.status === 503 && attempt < transport.retry.retries) {
        await response.body?.cancel().catch(() => {});
        await transport.sleep(transport.delay(attempt, retryAfter), signal);
        continue;
      }
      throw await apiError(response);
    }
  }

  /**
   * A GET of a presigned URL, with none of the caller's headers: S3 must never see the token.
   * @param {string} url @param {{ signal?: AbortSignal }} options
   * @returns {Promise<Response>}
   */
  async fetchStorage(url, { signal }) {
    try {
      return await this.#fetch(url, { method: "GET", signal, cache: "no-store", credentials: "omit" });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new PresignGateError(
        "The file could not be fetched from storage (network failure, or the bucket's CORS rules refused this page).",
        { status: 0, code: "network_error", cause: error },
      );
    }
  }

  async #callerHeaders() {
    return typeof this.#headers === "function" ? await this.#headers() : this.#headers;
  }
}

/**
 * A random key for the `Idempotency-Key` header: `crypto.randomUUID()` where the page has it (a
 * secure context), else a version 4 UUID from `crypto.getRandomValues`, which every page has.
 */
export function randomKey() {
  const { crypto } = globalThis;
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
