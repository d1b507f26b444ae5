// What the demo's modules share: the connection form, buttons, downloads, sizes, times and errors
// in words.

const DEFAULT_API_URL = "http://127.0.0.1:9000";
const STORAGE_KEY = "presign-gate-demo";

/**
 * The API URL a link may choose (`?api=`): one on this machine's loopback only. The page sends the
 * token typed into it to that URL, so a link naming any other host could collect it; such a
 * parameter is ignored. @param {string | null} value
 */
export function loopbackApiUrl(value) {
  if (!value) return null;
  let url;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
  return loopback && (url.protocol === "http:" || url.protocol === "https:") && !url.username && !url.password
    ? value
    : null;
}

/**
 * Fills the connection form the first time (`?api=` when it names a loopback API, `?user=`, then
 * the name used last on this browser) and returns a client for what it says. Only the name is
 * stored: neither the token nor the API URL, so no link can choose where a later visit sends a
 * token.
 * The client learns the server's MULTIPART_THRESHOLD_BYTES from the API; `?multipartThreshold=
 * <bytes>` overrides it (the tests use it to make small files multipart).
 * @param {HTMLFormElement} form
 * @param {typeof import("../client/presign-gate.js").PresignGate} PresignGate
 */
export function connectionFromPage(form, PresignGate) {
  const fields = form.elements;
  if (!form.dataset.filled) {
    const query = new URLSearchParams(location.search);
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "{}") ?? {};
    } catch {
      // Something else's value: start afresh.
    }
    fields.apiUrl.value = loopbackApiUrl(query.get("api")) ?? DEFAULT_API_URL;
    fields.devUser.value = query.get("user") ?? saved.devUser ?? "alice";
    form.dataset.filled = "true";
  }
  const apiUrl = fields.apiUrl.value.trim();
  const devUser = fields.devUser.value.trim();
  const token = fields.token.value.trim();
  // An earlier version saved the API URL too: that is dropped with this write.
  localStorage.setItem(STORAGE_KEY, JSON.stringify({ devUser }));
  const threshold = Number(new URLSearchParams(location.search).get("multipartThreshold"));
  return new PresignGate({
    apiUrl,
    ...(threshold > 0 ? { multipartThreshold: threshold } : {}),
    // A deployed stack knows callers by their JWT only; `make local` takes the dev header instead.
    headers: () => (token ? { authorization: `Bearer ${token}` } : { "x-dev-user": devUser }),
  });
}

/**
 * A small button that runs `onClick`. @param {string} text @param {() => unknown} onClick
 * @param {string} [extraClass]
 */
export function button(text, onClick, extraClass = "") {
  const element = document.createElement("button");
  element.type = "button";
  element.className = `small ${extraClass}`.trim();
  element.textContent = text;
  element.addEventListener("click", onClick);
  return element;
}

/**
 * Saves what a download URL answers. The API signs it with `Content-Disposition: attachment`, so
 * following it is a download, not a navigation away. @param {string} url
 */
export function saveFrom(url) {
  const link = document.createElement("a");
  link.href = url;
  link.rel = "noopener noreferrer";
  link.click();
}

/** An API timestamp in the reader's words. @param {string} iso */
export function formatTime(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
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
      if (error.fileStatus === "scanning") return `${name} is still being scanned for malware: try again in a moment.`;
      if (error.fileStatus === "rejected") return `${name} was rejected: it cannot be downloaded.`;
      return `${name} is not ready yet: its upload has not been confirmed.`;
    case "upload_rejected":
      if (error.rejectedFor === "malware") return `${name} was deleted: the malware scan found a threat in it.`;
      if (error.rejectedFor === "unscannable") return `${name} was deleted: it could not be scanned for malware.`;
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
