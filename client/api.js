// Presign Gate's browser client: one call to the API, with the caller's headers, retried where
// retrying can help.

import { PresignGateError, apiError, readJson } from "./errors.js";

/**
 * API statuses worth another attempt: 503 is the API's `unavailable`, 429 API Gateway's
 * throttling. The API's own 500 is a fault that retrying will not fix, so it is not retried.
 */
const RETRYABLE_API = new Set([429, 503]);

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
   * One API call, retried on 503, 429 and network failures; the parsed body, or null for a 204.
   * @param {string} method
   * @param {string} path
   * @param {{ body?: unknown, query?: Record<string, unknown>, signal?: AbortSignal }} [request]
   * @returns {Promise<any>}
   */
  async call(method, path, { body, query, signal } = {}) {
    const url = new URL(this.#apiUrl + path);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    const transport = this.#transport;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      const headers = { ...(await this.#callerHeaders()) };
      if (body !== undefined) headers["content-type"] = "application/json";
      let response;
      try {
        response = await this.#fetch(url.href, {
          method,
          headers,
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
      if (RETRYABLE_API.has(response.status) && attempt < transport.retry.retries) {
        await response.body?.cancel().catch(() => {});
        await transport.sleep(transport.delay(attempt, retryAfter), signal);
        continue;
      }
      throw await apiError(response);
    }
  }

  async #callerHeaders() {
    return typeof this.#headers === "function" ? await this.#headers() : this.#headers;
  }
}
