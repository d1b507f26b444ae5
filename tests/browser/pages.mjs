// What the Chromium tests do with the demo's pages: open one as a user, slow its uploads, make
// large files that a reloaded page can make again, read back what was stored.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";

export const MIB = 1024 * 1024;

/** A page of the demo for `user`, its uncaught page errors in `page.pageErrors`. */
export async function demoPage(browser, stack, user, path = "/") {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error));
  const url = new URL(path, stack.demoUrl);
  url.searchParams.set("api", stack.apiUrl);
  url.searchParams.set("user", user);
  // No ?multipartThreshold=: the client learns the stack's MULTIPART_THRESHOLD_BYTES from
  // GET /usage, so a multipart test fails if it does not (issue 20, 2.9).
  await page.goto(url.href);
  await page.waitForFunction(() => window.presignGateDemo?.gate || window.presignGateUppy?.gate);
  page.pageErrors = errors;
  return page;
}

export const NETWORK_UNTHROTTLED = { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 };

/** Chromium's network emulation on `page`: uploads at `bytesPerSecond`. Returns the CDP session. */
export async function throttleUploads(browser, page, bytesPerSecond) {
  const cdp = await browser.context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", { ...NETWORK_UNTHROTTLED, uploadThroughput: bytesPerSecond });
  return cdp;
}

/**
 * The EICAR anti-virus test file (eicar.org): 68 characters every scanner, GuardDuty's and the
 * stand-in's included, reports as a threat. Put together here, so no file of the repository is
 * itself one.
 */
export const eicar = () => ["X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-ANTIVIRUS", "-TEST-FILE!$H+H*"].join("");

export const sha256Hex = (bytes) => createHash("sha256").update(bytes).digest("hex");

/**
 * `size` pseudo-random bytes from `seed` (xorshift32), the same in Node and in the page (which
 * gets this function's source), so a reloaded page can build the very same file again without
 * tens of MiB crossing the test protocol.
 */
export function patternBytes(size, seed) {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    if (i % 4 === 0) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
    }
    out[i] = (x >>> (8 * (i % 4))) & 255;
  }
  return out;
}

/**
 * Runs `start` (a click, a navigation) and checks the download it makes `page` save: the name
 * Chromium gives it (the URL's Content-Disposition) and exactly `bytes`.
 */
export async function expectSaved(page, start, { filename, bytes }) {
  const downloading = page.waitForEvent("download");
  await start();
  const download = await downloading;
  assert.equal(download.suggestedFilename(), filename);
  assert.equal(sha256Hex(await readFile(await download.path())), sha256Hex(bytes));
  await download.delete();
}

/** The SHA-256 (hex) of what a download URL returns, fetched in the page as an app would. */
export async function downloadedSha256(page, id) {
  return page.evaluate(async (fileId) => {
    const { url } = await (window.presignGateDemo ?? window.presignGateUppy).gate.downloadUrl(fileId);
    const response = await fetch(url);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await response.arrayBuffer()));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  }, id);
}

/** Every path under the local S3's data directory that names `fileId`. */
export async function storedPathsOf(stack, fileId) {
  const entries = await readdir(stack.dataDir, { recursive: true });
  return entries.filter((entry) => entry.includes(fileId)).map((entry) => join(stack.dataDir, entry));
}

/**
 * Records, in the page's `barStates`, each state the demo's upload lines go through: the file's
 * name, its progress bar's value and max, its status text. A state is read when the page changes
 * it (a MutationObserver), so every state the page shows between two tasks is seen.
 */
export async function recordUploadLines(page) {
  await page.evaluate(() => {
    window.barStates = [];
    const record = () => {
      for (const item of document.querySelectorAll("[data-testid=upload]")) {
        const bar = item.querySelector("progress");
        const state = {
          name: item.querySelector("strong").textContent,
          value: bar.value,
          max: bar.max,
          status: item.querySelector("[data-testid=upload-status]").textContent,
        };
        const last = window.barStates.findLast((seen) => seen.name === state.name);
        if (JSON.stringify(last) !== JSON.stringify(state)) window.barStates.push(state);
      }
    };
    new MutationObserver(record).observe(document.querySelector("#uploads"), {
      subtree: true, childList: true, attributes: true, characterData: true,
    });
  });
}
