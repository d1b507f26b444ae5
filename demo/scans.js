// The demo's view of malware scanning (README, "Malware scanning"): a file's status in words, and
// one wait per scanning file, shared by its upload line and its row in "Your files", which both
// update themselves when the verdict comes.

/** Words for the API's `rejectedFor`. */
const REJECTED_FOR = {
  malware: "malware",
  unscannable: "could not be scanned",
  mismatch: "not the file reserved",
  over_quota: "over quota",
};

/** A rejection's reason in words (the API's `rejectedFor`). @param {string} reason */
export function rejectedForText(reason) {
  return REJECTED_FOR[reason] ?? reason;
}

/**
 * A file's status as "Your files" shows it: `scanning…`, or `rejected: <why>`.
 * @param {{ status: string, rejectedFor?: string }} file
 */
export function statusText(file) {
  if (file.status === "scanning") return "scanning…";
  if (file.status === "rejected" && file.rejectedFor) {
    return `rejected: ${rejectedForText(file.rejectedFor)}`;
  }
  return file.status;
}

/**
 * Waits for scans through `gate`, once per file however many parts of the page ask: `watch(file)`
 * resolves with the file as its scan left it, available or rejected (with `rejectedFor`);
 * `stop(id)` ends the wait for a file deleted meanwhile (an `AbortError`).
 * @param {import("../client/presign-gate.js").PresignGate} gate
 */
export function scanWatcher(gate) {
  /** @type {Map<string, { settled: Promise<any>, controller: AbortController }>} */
  const watching = new Map();
  const watch = (file) => {
    if (!watching.has(file.id)) {
      const controller = new AbortController();
      const settled = gate.waitUntilAvailable(file.id, { signal: controller.signal }).catch((error) => {
        if (error.code === "upload_rejected") return { ...file, status: error.fileStatus, rejectedFor: error.rejectedFor };
        // Asked again next time: a timeout or a lost connection is no verdict.
        watching.delete(file.id);
        throw error;
      });
      watching.set(file.id, { settled, controller });
    }
    return watching.get(file.id).settled;
  };
  const stop = (id) => watching.get(id)?.controller.abort(new DOMException("The file was deleted.", "AbortError"));
  return { watch, stop };
}
