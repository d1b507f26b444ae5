// Presign Gate's browser client: its error type, and the words for the API's and S3's refusals.
// Never includes a URL: presigned URLs are credentials.

/** An API or storage refusal: `code` is the API's error code, or one of the client's own. */
export class PresignGateError extends Error {
  /**
   * @param {string} message
   * @param {{ status: number, code: string, storageCode?: string, fileStatus?: string,
   *   rejectedFor?: string, cause?: unknown }} details
   */
  constructor(message, { status, code, storageCode, fileStatus, rejectedFor, cause }) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "PresignGateError";
    /** HTTP status; 0 when no response arrived (network failure, CORS refusal). */
    this.status = status;
    this.code = code;
    /** S3's error code when storage refused the bytes (`BadDigest`, `AccessDenied`, ...). */
    this.storageCode = storageCode;
    /**
     * The file's status when it is not available (`not_ready`: `pending`, `scanning` or
     * `rejected`; `upload_rejected` from `waitUntilAvailable`: `rejected`).
     */
    this.fileStatus = fileStatus;
    /** Why the file was rejected (`malware`, `unscannable`, `mismatch`, `over_quota`), when known. */
    this.rejectedFor = rejectedFor;
  }
}

/** @param {Response} response */
export async function readJson(response) {
  try {
    return await response.json();
  } catch (error) {
    throw new PresignGateError("The API answered with something other than JSON.", {
      status: response.status,
      code: "invalid_response",
      cause: error,
    });
  }
}

/**
 * The API's `{"error": {"code", "message"}}`, or words for a reply from something in front of it.
 * @param {Response} response
 */
export async function apiError(response) {
  // Stryker disable next-line ArrowFunction,StringLiteral: any text that is not JSON reads the same (mutants-equivalent.md)
  return apiErrorOf(response.status, await response.text().catch(() => ""));
}

/**
 * The API's own error code in a body, or null: a body without one is from something in front of
 * the API (API Gateway's refusals are `{"message": ...}`, proxies send HTML).
 * @param {string} text
 * @returns {{ code: string, message?: unknown } | null}
 */
export function apiErrorBody(text) {
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  }
  // Stryker disable next-line BlockStatement: with parsed left null the answer is null below too (mutants-equivalent.md)
  catch {
    return null;
  }
  const error = parsed?.error;
  return error && typeof error.code === "string" ? error : null;
}

/** @param {number} status @param {string} text */
export function apiErrorOf(status, text) {
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not the API's JSON: API Gateway's own refusals are `{"message": ...}`, proxies send HTML.
  }
  const error = apiErrorBody(text);
  if (error) {
    // A file not ready names its status (`not_ready`), so that a caller can wait for its scan;
    // a rejected upload names why (`upload_rejected`).
    return new PresignGateError(String(error.message ?? error.code), {
      status,
      code: error.code,
      fileStatus: error.status,
      rejectedFor: error.rejectedFor,
    });
  }
  const gatewayMessage = typeof parsed?.message === "string" ? parsed.message : null;
  const code =
    status === 401 ? "unauthenticated"
    : status === 403 ? "forbidden"
    : status === 429 ? "throttled"
    : status >= 500 ? "unavailable"
    : "http_error";
  return new PresignGateError(gatewayMessage ?? `The API answered ${status}.`, { status, code });
}

/** Words for S3's refusals of a presigned PUT; S3 answers with an XML `<Error>`. */
const STORAGE_REFUSALS = {
  AccessDenied: "Storage refused the upload URL: it has expired or was altered.",
  ExpiredToken: "Storage refused the URL: the credentials it was signed with have expired.",
  SignatureDoesNotMatch: "Storage refused the upload: the request does not match what was signed.",
  BadDigest: "The bytes sent do not match the file's declared SHA-256.",
  PreconditionFailed: "A file is already stored for this upload; it cannot be overwritten.",
  IncompleteBody: "The upload ended before all the bytes were sent.",
  SlowDown: "Storage is busy; try again shortly.",
  ConditionalRequestConflict: "Another upload of this file was still in progress; try again shortly.",
  NoSuchUpload: "The multipart upload no longer exists (it was cancelled or has lapsed).",
};

/**
 * S3's error code from the XML `<Error>` body of its answer (readable by the page when the
 * bucket's CORS rules allow the request), or undefined.
 * @param {{ body?: string }} answer
 */
export function storageCodeOf(answer) {
  // Stryker disable next-line StringLiteral: any text without a <Code> reads the same (mutants-equivalent.md)
  return /<Code>([^<]*)<\/Code>/.exec(answer.body ?? "")?.[1];
}

/** @param {{ status: number, body?: string }} answer */
export function storageError(answer) {
  if (answer.status === 0) {
    return new PresignGateError(
      "The file could not be sent to storage (network failure, or the bucket's CORS rules refused this page).",
      { status: 0, code: "network_error" },
    );
  }
  const storageCode = storageCodeOf(answer);
  const message =
    STORAGE_REFUSALS[storageCode] ??
    `Storage refused the upload (${storageCode ?? `HTTP ${answer.status}`}).`;
  return new PresignGateError(message, { status: answer.status, code: "upload_failed", storageCode });
}

/**
 * Whether S3 refused a presigned URL only because it is no longer valid, so that a fresh URL for
 * the same request will do: `AccessDenied` "Request has expired" (past `X-Amz-Expires`), or
 * `ExpiredToken`, the session token it was signed with has expired before `X-Amz-Expires` (AWS
 * Knowledge Center, "Why does my presigned URL expire before the expiration time?"). Any other
 * refusal (a 403 for another reason, an answer whose body the page cannot read) is not.
 * @param {{ status: number, body?: string }} answer
 */
export function urlExpired(answer) {
  if (answer.status !== 403 && answer.status !== 400) return false;
  const code = storageCodeOf(answer);
  if (code === "ExpiredToken") return true;
  // Stryker disable next-line StringLiteral: no other default starts "Request has expired" (mutants-equivalent.md)
  const message = /<Message>([^<]*)<\/Message>/.exec(answer.body ?? "")?.[1] ?? "";
  return answer.status === 403 && code === "AccessDenied" && /^Request has expired/i.test(message);
}
