// Malware scanning through the demo in headless Chromium, on a stack that scans uploads
// (SCAN_UPLOADS=true: the functions wait for GuardDuty's verdict, the bucket policy refuses
// presigned reads of objects not tagged clean, and local-aws plays GuardDuty Malware Protection
// for S3, local/src/guardduty/). Each scan waits SCAN_DELAY_MS, so the page is seen waiting.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { apiAs, stackAndChromium } from "./harness.mjs";
import { demoPage, eicar, expectSaved, recordUploadLines, storedPathsOf } from "./pages.mjs";

const suite = stackAndChromium({ SCAN_UPLOADS: "true", SCAN_DELAY_MS: "3000" });

/**
 * Records, in the page's `rowStates`, each status the rows of "Your files" show, per file id, as
 * the page changes them (a MutationObserver), so that a state shown between two looks is seen.
 */
async function recordRowStatuses(page) {
  await page.evaluate(() => {
    window.rowStates = {};
    const record = () => {
      for (const row of document.querySelectorAll("[data-testid=file-row]")) {
        const status = row.querySelector("[data-testid=file-status]").textContent;
        const states = (window.rowStates[row.dataset.fileId] ??= []);
        if (states.at(-1) !== status) states.push(status);
      }
    };
    new MutationObserver(record).observe(document.querySelector("#files"), {
      subtree: true, childList: true, characterData: true,
    });
  });
}

/** Uploads `file` through the demo's input; resolves with its row once the row shows it scanning. */
async function uploadInDemo(page, file) {
  await recordUploadLines(page);
  await recordRowStatuses(page);
  await page.setInputFiles("[data-testid=file-input]", file);
  const row = page.locator("[data-testid=file-row]", { hasText: file.name });
  await row.locator("[data-testid=file-status]", { hasText: "scanning…" }).waitFor();
  return { row, id: await row.getAttribute("data-file-id") };
}

/** The states the page showed: the upload line's statuses and the file's row's, in order. */
async function shownStates(page, name, id) {
  return page.evaluate(({ name, id }) => ({
    upload: window.barStates.filter((state) => state.name.startsWith(`${name} `)).map((state) => state.status)
      .filter((status, i, all) => status !== all[i - 1]),
    row: window.rowStates[id],
  }), { name, id });
}

/** What the page's client says to a download of file `id`: the error's fields, or "downloaded". */
function tryDownload(page, id) {
  page.expectConsole(/status of 409 \(Conflict\)/, "the API's 409 not_ready to a download asked for on purpose; Chromium logs every failed load");
  return page.evaluate(async (fileId) => {
    try {
      await window.presignGateDemo.gate.download(fileId);
      return "downloaded";
    } catch ({ name, status, code, fileStatus }) {
      return { name, status, code, fileStatus };
    }
  }, id);
}

const buttonsOf = async (row) => (await row.getByRole("button").allTextContents()).sort();

test("a clean upload shows scanning, becomes available by itself, and downloads the very bytes", async () => {
  const page = await demoPage(suite.browser, suite.stack, "scanclean");
  const bytes = randomBytes(150 * 1024);
  const { row, id } = await uploadInDemo(page, { name: "clean.pdf", mimeType: "application/pdf", buffer: bytes });

  // While it is scanning: nothing to download, and the API refuses a URL saying why.
  assert.deepEqual(await buttonsOf(row), ["Delete"]);
  assert.deepEqual(await tryDownload(page, id), { name: "PresignGateError", status: 409, code: "not_ready", fileStatus: "scanning" });

  // No reload, no click: the page looks again until the verdict.
  await row.locator("[data-testid=file-status]", { hasText: "available" }).waitFor({ timeout: 30_000 });
  await page.locator("[data-testid=upload]", { hasText: "clean.pdf" }).locator("[data-testid=upload-status].ok").waitFor();
  const shown = await shownStates(page, "clean.pdf", id);
  assert.deepEqual(shown.row, ["scanning…", "available"]);
  assert.deepEqual(shown.upload.slice(-2), ["Scanning for malware…", "Uploaded"]);
  assert.deepEqual(await buttonsOf(row), ["Delete", "Download", "Share…"]);

  // GuardDuty's stand-in tagged the object clean; the bucket now lets a presigned GET read it.
  assert.deepEqual(await suite.stack.s3.objectTags(`users/scanclean/${id}`), { GuardDutyMalwareScanStatus: "NO_THREATS_FOUND" });
  await expectSaved(page, () => row.getByRole("button", { name: "Download" }).click(), { filename: "clean.pdf", bytes });
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});

test("an upload holding the EICAR test file ends rejected as malware: no download, and its object is gone", async () => {
  const page = await demoPage(suite.browser, suite.stack, "scaneicar");
  const bytes = Buffer.from(`a harmless note, then the test file every scanner flags\n${eicar()}\n`);
  const { row, id } = await uploadInDemo(page, { name: "eicar.txt", mimeType: "text/plain", buffer: bytes });

  await row.locator("[data-testid=file-status]", { hasText: "rejected: malware" }).waitFor({ timeout: 30_000 });
  const line = page.locator("[data-testid=upload]", { hasText: "eicar.txt" }).locator("[data-testid=upload-status].error");
  await line.waitFor();
  assert.equal(await line.textContent(), "Rejected: malware");
  assert.equal(await line.getAttribute("role"), "alert");
  const shown = await shownStates(page, "eicar.txt", id);
  assert.deepEqual(shown.row, ["scanning…", "rejected: malware"]);
  assert.deepEqual(shown.upload.slice(-2), ["Scanning for malware…", "Rejected: malware"]);

  // Nothing to download or share; the API refuses a URL; the record says why.
  assert.deepEqual(await buttonsOf(row), ["Delete"]);
  assert.deepEqual(await tryDownload(page, id), { name: "PresignGateError", status: 409, code: "not_ready", fileStatus: "rejected" });
  const { status, body } = await apiAs(suite.stack.apiUrl, "scaneicar")("GET", `/files/${id}`);
  assert.equal(status, 200);
  assert.deepEqual([body.file.status, body.file.rejectedFor], ["rejected", "malware"]);

  // The object is gone from the bucket: S3 answers NoSuchKey, and no file on disk names it.
  const stored = await suite.stack.s3.getObject(`users/scaneicar/${id}`);
  assert.equal(stored.status, 404);
  assert.match(stored.text, /<Code>NoSuchKey<\/Code>/);
  assert.deepEqual(await storedPathsOf(suite.stack, id), []);
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});

test("a file GuardDuty cannot scan (UNSUPPORTED, through the stand-in's fault plan) shows rejected as unscannable", async () => {
  await suite.stack.faults.inject({ scans: [{ result: "UNSUPPORTED" }] });
  const page = await demoPage(suite.browser, suite.stack, "scanunsupported");
  const { row, id } = await uploadInDemo(page, { name: "locked.pdf", mimeType: "application/pdf", buffer: randomBytes(4096) });
  await row.locator("[data-testid=file-status]", { hasText: "rejected: could not be scanned" }).waitFor({ timeout: 30_000 });
  assert.deepEqual((await shownStates(page, "locked.pdf", id)).row, ["scanning…", "rejected: could not be scanned"]);
  assert.deepEqual(await buttonsOf(row), ["Delete"]);
  const report = await suite.stack.faults.report();
  assert.deepEqual([report.scans, report.served.scans], [[], 1]);
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});

test("a file deleted while it is scanning: the page stops waiting for it, and shows no error", async () => {
  const page = await demoPage(suite.browser, suite.stack, "scandeleted");
  const { row, id } = await uploadInDemo(page, { name: "gone.pdf", mimeType: "application/pdf", buffer: randomBytes(2048) });
  await row.getByRole("button", { name: "Delete" }).click();
  await row.waitFor({ state: "detached" });
  const line = page.locator("[data-testid=upload]", { hasText: "gone.pdf" }).locator("[data-testid=upload-status]");
  await line.filter({ hasText: "Deleted." }).waitFor();
  const { status } = await apiAs(suite.stack.apiUrl, "scandeleted")("GET", `/files/${id}`);
  assert.equal(status, 404);
  // The page's looks at the file (GET /files/{id}, 1 s, then 2 s, then 4 s apart) end with the
  // delete: none in the next 4.5 s, past the scan's verdict, so no 404 reaches the page either.
  const requestsForFile = () => page.evaluate((fileId) => performance.getEntriesByType("resource")
    .filter((entry) => new URL(entry.name).pathname.endsWith(`/files/${fileId}`)).length, id);
  const before = await requestsForFile();
  await new Promise((done) => setTimeout(done, 4500));
  assert.equal(await requestsForFile(), before);
  assert.equal(await page.locator("[data-testid=files-error]").isHidden(), true);
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});
