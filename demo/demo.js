// The demo page: upload with progress, list, download, share and delete the caller's files, and
// download what others shared, through the browser client; locally, the file events published.
// Served at its own origin, so both the API's and the bucket's CORS apply.
import { PresignGate, PresignGateError } from "/client/presign-gate.js";
import { eventsOwner, eventsPanel } from "./events.js";
import { scanWatcher, statusText } from "./scans.js";
import { button, connectionFromPage, describeError, formatSize, saveFrom } from "./shared.js";
import { shareButton, sharedList } from "./sharing.js";

const form = document.querySelector("#connection");
const uploads = document.querySelector("#uploads");
const filesBody = document.querySelector("#files");
const filesError = document.querySelector("#files-error");
const moreButton = document.querySelector("#more");
const input = document.querySelector("input[type=file]");
const dropZone = document.querySelector(".drop-zone");
const shared = sharedList({
  body: document.querySelector("#shared"),
  error: document.querySelector("#shared-error"),
  more: document.querySelector("#shared-more"),
});
const events = eventsPanel({ section: document.querySelector("#events-panel"), list: document.querySelector("#events") });

let gate = null;
let nextToken = null;
/** Waits for files' malware scans, once per file: `scanWatcher` of the current `gate`. */
let scans = null;

function connect() {
  gate = connectionFromPage(form, PresignGate);
  scans = scanWatcher(gate);
  events.follow(eventsOwner(form));
  refresh();
  refreshShared();
}

function refreshShared(options) {
  if (gate) shared.refresh(gate, options);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  connect();
});
document.querySelector("#refresh").addEventListener("click", () => refresh());
moreButton.addEventListener("click", () => refresh({ more: true }));
document.querySelector("#shared-refresh").addEventListener("click", () => refreshShared());
document.querySelector("#shared-more").addEventListener("click", () => refreshShared({ more: true }));

input.addEventListener("change", () => {
  for (const file of input.files) upload(file);
  input.value = "";
});
dropZone.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropZone.classList.add("over");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("over");
  for (const file of event.dataTransfer.files) upload(file);
});

/**
 * A line in the uploads list with a progress bar and a Cancel button, for `send`; once the file
 * is stored, it waits for the file's malware scan where the API scans uploads.
 */
async function track(file, send) {
  const item = document.createElement("li");
  item.dataset.testid = "upload";
  const name = document.createElement("strong");
  name.textContent = `${file.name} (${formatSize(file.size)})`;
  const status = document.createElement("span");
  status.dataset.testid = "upload-status";
  status.textContent = "Preparing…";
  const progress = document.createElement("progress");
  progress.max = file.size || 1;
  progress.value = 0;
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "small secondary";
  cancel.textContent = "Cancel";
  const controller = new AbortController();
  cancel.addEventListener("click", () => controller.abort());
  item.append(name, status, progress, cancel);
  uploads.prepend(item);

  let parts = "";
  try {
    const record = await send({
      signal: controller.signal,
      onReserved: (_record, upload) => {
        // A multipart upload survives a reload: its row in "Your files" offers to resume it.
        if (upload.method === "MULTIPART") {
          parts = ` in ${upload.partCount} parts of ${formatSize(upload.partSize)}`;
          refresh();
        }
      },
      onProgress: ({ loaded, total }) => {
        progress.max = total || 1;
        progress.value = loaded;
        status.textContent = `Sending${parts}… ${Math.floor((100 * loaded) / (total || 1))}%`;
      },
      onStored: () => {
        status.textContent = "Confirming…";
      },
    });
    progress.value = progress.max;
    cancel.remove();
    refresh();
    events.refresh();
    // Where uploads are scanned, the file is `scanning` until GuardDuty's verdict: its row in
    // "Your files" waits for it as well, through the same watch.
    let settled = record;
    if (record.status !== "available") {
      status.textContent = "Scanning for malware…";
      settled = await scans.watch(record);
    }
    if (settled.status === "rejected") {
      const words = statusText(settled);
      status.textContent = words[0].toUpperCase() + words.slice(1);
      status.className = "error";
      status.setAttribute("role", "alert");
      return;
    }
    status.textContent = "Uploaded";
    status.className = "ok";
  } catch (error) {
    // An abort is this line's Cancel, or (while scanning) the file deleted from "Your files".
    const aborted = controller.signal.aborted ? "Cancelled." : "Deleted.";
    status.textContent =
      error.name === "AbortError" ? aborted : describeError(error, { filename: file.name, contentType: file.type });
    status.className = "error";
    status.setAttribute("role", "alert");
  } finally {
    cancel.remove();
    // The upload's last event (available, rejected, or deleted on Cancel).
    events.refresh();
  }
}

function upload(file) {
  return track(file, (options) => gate.upload(file, options));
}

/** Continues a pending multipart upload with the same file, chosen again after a reload. */
function resume(record) {
  const picker = document.createElement("input");
  picker.type = "file";
  picker.addEventListener("change", () => {
    const [file] = picker.files;
    if (file) track(file, (options) => gate.resume(record.id, file, options));
  });
  picker.click();
}

async function refresh({ more = false } = {}) {
  if (!gate) return;
  filesError.hidden = true;
  try {
    const page = await gate.list({ limit: 50, nextToken: more ? nextToken ?? undefined : undefined });
    if (!more) filesBody.replaceChildren();
    for (const file of page.files) filesBody.append(fileRow(file));
    nextToken = page.nextToken;
    moreButton.hidden = !nextToken;
  } catch (error) {
    showFilesError(error);
  }
}

function fileRow(file) {
  const row = document.createElement("tr");
  row.dataset.testid = "file-row";
  row.dataset.fileId = file.id;
  const cells = [file.filename, file.contentType, formatSize(file.size), statusText(file)].map((text) => {
    const cell = document.createElement("td");
    cell.textContent = text;
    return cell;
  });
  cells[2].title = `${file.size} bytes`;
  cells[3].dataset.testid = "file-status";
  const actions = document.createElement("td");
  if (file.status === "available") {
    actions.append(button("Download", () => download(file)), shareButton(gate, file, row));
  }
  // The row updates itself once the scan ends; downloads are offered only then, if clean.
  if (file.status === "scanning") {
    scans.watch(file).then(replaceRow, (error) => {
      if (error.name !== "AbortError") showFilesError(error, file);
    });
  }
  if (file.status === "pending") {
    const resumeButton = button("Resume…", () => resume(file));
    resumeButton.title = "Continue this upload: choose the same file again";
    resumeButton.dataset.testid = "resume";
    actions.append(resumeButton);
  }
  actions.append(button("Delete", () => remove(file), "secondary"));
  row.append(...cells, actions);
  return row;
}

/** Shows `file` in place of its row (when the list still has it). */
function replaceRow(file) {
  for (const each of filesBody.querySelectorAll("tr")) {
    if (each.dataset.fileId === file.id) each.replaceWith(fileRow(file));
  }
}

async function download(file) {
  try {
    saveFrom((await gate.downloadUrl(file.id, { disposition: "attachment" })).url);
  } catch (error) {
    showFilesError(error, file);
  }
}

async function remove(file) {
  try {
    await gate.delete(file.id);
    scans.stop(file.id);
    events.refresh();
    // The file's row, and its share panel when open.
    for (const each of filesBody.querySelectorAll("tr")) {
      if (each.dataset.fileId === file.id) each.remove();
    }
  } catch (error) {
    showFilesError(error, file);
  }
}

function showFilesError(error, file) {
  filesError.textContent = describeError(error, file ? { filename: file.filename } : {});
  filesError.hidden = false;
}

// Exposed for the browser tests and for trying things from the console.
window.presignGateDemo = { get gate() { return gate; }, refresh, refreshShared, PresignGateError };

connect();
