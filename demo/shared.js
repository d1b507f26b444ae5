// What both demo pages share: the connection form, sizes and errors in words.

const DEFAULT_API_URL = "http://127.0.0.1:9000";
const STORAGE_KEY = "presign-gate-demo";

/**
 * Fills the connection form (query `?api=&user=` first, then what was used last on this
 * browser) the first time, and returns a client for what it says. The token is never stored.
 * The client learns the server's MULTIPART_THRESHOLD_BYTES from the API; `?multipartThreshold=
 * <bytes>` overrides it (the tests use it to make small files multipart).
 * @param {HTMLFormElement} form
 * @param {typeof import("../client/presign-gate.js").PresignGate} PresignGate
 */
export function connectionFromPage(form, PresignGate) {
  const fields = form.elements;
  if (!form.dataset.filled) {
    const query = new URLSearchParams(location.search);
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "{}");
    fields.apiUrl.value = query.get("api") ?? saved.apiUrl ?? DEFAULT_API_URL;
    fields.devUser.value = query.get("user") ?? saved.devUser ?? "alice";
    form.dataset.filled = "true";
  }
  const apiUrl = fields.apiUrl.value.trim();
  const devUser = fields.devUser.value.trim();
  const token = fields.token.value.trim();
  localStorage.setItem(STORAGE_KEY, JSON.stringify({ apiUrl, devUser }));
  const threshold = Number(new URLSearchParams(location.search).get("multipartThreshold"));
  return new PresignGate({
    apiUrl,
    ...(threshold > 0 ? { multipartThreshold: threshold } : {}),
    // A deployed stack knows callers by their JWT only; `make local` takes the dev header instead.
    headers: () => (token ? { authorization: `Bearer ${token}` } : { "x-dev-user": devUser }),
  });
}

/** @param {number} bytes */
export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/**
 * A sentence for the person at the page; the API's own message follows where it says more.
 * @param {unknown} error
 * @param {{ filename?: string, contentType?: string }} [context]
 */
export function describeError(error, { filename, contentType } = {}) {
  const name = filename ? `“${filename}”` : "The file";
  const detail = error?.message ? ` (${error.message})` : "";
  switch (error?.code) {
    case "content_type_not_allowed":
      return `${name} was not uploaded: files of type ${contentType || "unknown"} are not allowed here.`;
    case "too_large":
      return `${name} was not uploaded: it is larger than this service accepts.`;
    case "invalid_request":
      return `${name} could not be uploaded: the request was refused as invalid${detail}.`;
    case "unauthenticated":
      return "You are not signed in: enter your name (locally) or a valid token (deployed).";
    case "not_found":
      return `${name} no longer exists, or is not yours.`;
    case "not_ready":
      return `${name} is not ready yet: its upload has not been confirmed.`;
    case "upload_rejected":
      return `${name} was discarded: what arrived did not match what was declared.`;
    case "upload_missing":
      return `${name} never reached storage${detail}.`;
    case "resume_mismatch":
      return `${name} is not the file this upload was started with: choose the same file again.`;
    case "not_pending":
      return `${name} has no upload in progress to continue.`;
    case "unavailable":
    case "throttled":
      return "The service is busy or unreachable right now; try again in a moment.";
    case "network_error":
      return `${error.message} Check the API URL and your connection.`;
    default:
      return error?.message ? String(error.message) : "Something went wrong.";
  }
}
