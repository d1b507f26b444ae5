// Presign Gate's browser client: waiting for a file's malware scan. Where the API scans uploads
// (SCAN_UPLOADS), a confirmed file is `scanning` until GuardDuty's verdict makes it `available`,
// or `rejected` (with `rejectedFor`) and its object deleted; until then no download URL is handed
// out (409 `not_ready`).

import { PresignGateError } from "./errors.js";

export const DEFAULT_SCAN_WAIT = Object.freeze({
  /** The first wait between two looks at the file; each later one is twice the last. */
  intervalMs: 1000,
  /** The longest wait between two looks. */
  maxIntervalMs: 10_000,
  /**
   * How long to wait in all before giving up with `not_ready`. GuardDuty scans most objects in
   * seconds, large archives in minutes; the API reports a scan overdue after an hour.
   */
  timeoutMs: 15 * 60 * 1000,
});

/**
 * The error for a file the API rejected: `upload_rejected`, as the API's own refusal at
 * confirmation, with the file's `rejectedFor` when it says.
 * @param {{ rejectedFor?: string }} file
 */
export function rejectedError(file) {
  const reason = file.rejectedFor ? ` (${file.rejectedFor})` : "";
  return new PresignGateError(`The upload was rejected${reason}; its bytes were deleted.`, {
    status: 200,
    code: "upload_rejected",
    fileStatus: "rejected",
    rejectedFor: file.rejectedFor,
  });
}

/**
 * Looks at a file (`look`) until it is `available`, waiting longer each time (`sleep`). Resolves
 * with the available record; rejects with `upload_rejected` once it is rejected, or with
 * `not_ready` (the last status seen in `fileStatus`) when `timeoutMs` has passed. A `pending`
 * file is waited for too: S3's event may still confirm it.
 * @param {(signal?: AbortSignal) => Promise<any>} look
 * @param {(ms: number, signal?: AbortSignal) => Promise<void>} sleep
 * @param {import("./presign-gate.js").ScanWaitOptions} [options]
 */
export async function waitForScan(look, sleep, { signal, ...options }) {
  const { intervalMs, maxIntervalMs, timeoutMs } = { ...DEFAULT_SCAN_WAIT, ...options };
  const deadline = Date.now() + timeoutMs;
  for (let interval = intervalMs; ; interval = Math.min(interval * 2, maxIntervalMs)) {
    const file = await look(signal);
    if (file.status === "available") return file;
    if (file.status === "rejected") throw rejectedError(file);
    const wait = Math.min(interval, deadline - Date.now());
    if (wait <= 0) {
      throw new PresignGateError(`The file is still ${file.status}: its malware scan has not finished.`, {
        status: 200,
        code: "not_ready",
        fileStatus: file.status,
      });
    }
    await sleep(wait, signal);
  }
}
