// The demo's Events panel (demo/events.js) in headless Chromium against the local stack: what the
// `publish` function put on the local EventBridge, read from its sink (`GET /__events` on the demo
// origin) by the page as it happens, and checked against the sink over plain HTTP.
//
// Scanning on, as the template deploys by default: only then does a file pass through every
// status (File Scanning included) and can a scan reject it. Each scan waits SCAN_DELAY_MS, here
// 1 s: the sink keeps every event, so the panel needs no longer look at a scanning file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { apiAs, eventually, stackAndChromium } from "./harness.mjs";
import { demoPage, eicar } from "./pages.mjs";

const suite = stackAndChromium({ SCAN_UPLOADS: "true", SCAN_DELAY_MS: "1000" });

const LIFECYCLE = ["File Reserved", "File Scanning", "File Available", "File Deleted"];

/**
 * Records, in the page's `panelStates`, each list of detail-types the Events panel shows per file
 * (oldest first), as the page changes it (a MutationObserver), so every state it showed is seen.
 */
async function recordPanel(page) {
  await page.evaluate(() => {
    window.panelStates = {};
    const record = () => {
      const shown = {};
      for (const item of document.querySelectorAll("#events [data-testid=event]")) {
        (shown[item.dataset.fileId] ??= []).unshift(item.dataset.detailType);
      }
      for (const [id, types] of Object.entries(shown)) {
        const states = (window.panelStates[id] ??= []);
        if (states.at(-1)?.join() !== types.join()) states.push(types);
      }
    };
    new MutationObserver(record).observe(document.querySelector("#events"), { childList: true, subtree: true });
  });
}

/** The panel's item of `id`'s `detailType` event. */
const panelItem = (page, id, detailType) =>
  page.locator(`#events [data-testid=event][data-file-id="${id}"][data-detail-type="${detailType}"]`);

/** The detail-types the panel shows now for file `id`, oldest first. */
const panelTypes = (page, id) =>
  page.locator(`#events [data-testid=event][data-file-id="${id}"]`).evaluateAll((items) => items.map((item) => item.dataset.detailType).reverse());

/** The sink over plain HTTP: `owner`'s events of file `id`, oldest first, each change once. */
async function sinkEventsOf(owner, id) {
  const response = await fetch(new URL(`/__events?owner=${encodeURIComponent(owner)}`, suite.stack.demoUrl));
  assert.equal(response.status, 200);
  const seen = new Set();
  return (await response.json()).events
    .filter(({ detail }) => detail.file.id === id && !seen.has(detail.eventId) && seen.add(detail.eventId))
    .reverse();
}

/** Uploads `file` through the demo's input; resolves with its row and id once the row shows `status`. */
async function uploadInDemo(page, file, status) {
  await page.setInputFiles("[data-testid=file-input]", file);
  const row = page.locator("[data-testid=file-row]", { hasText: file.name });
  await row.locator("[data-testid=file-status]", { hasText: status }).waitFor({ timeout: 30_000 });
  return { row, id: await row.getAttribute("data-file-id") };
}

test("an upload, its scan and its delete appear in the Events panel as they happen, in order, and in the sink", async () => {
  const page = await demoPage(suite.browser, suite.stack, "evalice");
  const panel = page.locator("[data-testid=events-panel]");
  await panel.getByText("No events yet.").waitFor();
  assert.match(await panel.locator("h2").textContent(), /local only/);
  await recordPanel(page);

  const { row, id } = await uploadInDemo(page, { name: "minutes.pdf", mimeType: "application/pdf", buffer: randomBytes(40 * 1024) }, "available");
  // Shown before anything was deleted: the panel follows the events, not only the end of them.
  await panelItem(page, id, "File Available").waitFor({ timeout: 20_000 });
  assert.deepEqual(await panelTypes(page, id), LIFECYCLE.slice(0, 3));
  assert.equal(await panelItem(page, id, "File Reserved").locator("[data-testid=event-status]").textContent(), "pending");
  const available = panelItem(page, id, "File Available");
  assert.equal(await available.locator("[data-testid=event-status]").textContent(), "scanning → available");
  assert.match(await available.textContent(), /minutes\.pdf/);

  await row.getByRole("button", { name: "Delete" }).click();
  await row.waitFor({ state: "detached" });
  await panelItem(page, id, "File Deleted").waitFor({ timeout: 20_000 });
  assert.deepEqual(await panelTypes(page, id), LIFECYCLE);
  assert.equal(await panelItem(page, id, "File Deleted").locator("[data-testid=event-status]").textContent(), "available → deleted");

  // Every state the panel showed was the sequence so far: nothing out of order, nothing twice.
  const states = await page.evaluate((fileId) => window.panelStates[fileId], id);
  for (const state of states) assert.deepEqual(state, LIFECYCLE.slice(0, state.length));
  assert.ok(states.length >= 2, `the panel showed ${JSON.stringify(states)}`);

  const events = await sinkEventsOf("evalice", id);
  assert.deepEqual(events.map((event) => event["detail-type"]), LIFECYCLE);
  assert.deepEqual(events.map(({ detail }) => detail.previousStatus), [null, "pending", "scanning", "available"]);
  assert.deepEqual(events.map(({ detail }) => detail.file.status), ["pending", "scanning", "available", "available"]);
  for (const event of events) {
    assert.equal(event.source, "presign-gate");
    assert.equal(event.detail.owner, "evalice");
    assert.equal(event.detail.file.filename, "minutes.pdf");
  }

  // Another caller's panel shows none of them.
  const other = await demoPage(suite.browser, suite.stack, "evbob");
  await other.locator("[data-testid=events-panel]").getByText("No events yet.").waitFor();
  assert.equal(await other.locator("#events [data-testid=event]").count(), 0);
  assert.deepEqual([page.pageErrors, other.pageErrors], [[], []]);
  await other.close();
  await page.close();
});

test("a file the scan rejects: the panel names File Rejected and why; deleted elsewhere, the panel shows it by itself", async () => {
  const page = await demoPage(suite.browser, suite.stack, "evcarol");
  const bytes = Buffer.from(`the test file every scanner flags\n${eicar()}\n`);
  const { id } = await uploadInDemo(page, { name: "eicar.txt", mimeType: "text/plain", buffer: bytes }, "rejected: malware");
  const rejected = panelItem(page, id, "File Rejected");
  await rejected.waitFor({ timeout: 20_000 });
  assert.equal(await rejected.locator("[data-testid=event-status]").textContent(), "scanning → rejected (malware)");
  assert.deepEqual(await panelTypes(page, id), ["File Reserved", "File Scanning", "File Rejected"]);
  const [last] = (await sinkEventsOf("evcarol", id)).slice(-1);
  assert.deepEqual([last["detail-type"], last.detail.file.rejectedFor], ["File Rejected", "malware"]);

  // Deleted by another client (plain HTTP, not this page): only the panel's own polling shows it.
  assert.equal((await apiAs(suite.stack.apiUrl, "evcarol")("DELETE", `/files/${id}`)).status, 204);
  const deleted = panelItem(page, id, "File Deleted");
  await deleted.waitFor({ timeout: 20_000 });
  assert.equal(await deleted.locator("[data-testid=event-status]").textContent(), "rejected → deleted (malware)");
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});

// A deployed demo is served by a static server: `/__events` is a 404, or the server's own page.
// Played here by answering the page's requests for it so (the stack's sink is there).
for (const [what, answer, logged] of [
  ["a 404", { status: 404, contentType: "text/plain", body: "Not Found" }, /status of 404/],
  ["an HTML page", { status: 200, contentType: "text/html", body: "<!doctype html><title>index</title>" }, null],
]) {
  test(`where /__events answers ${what}, the panel stays hidden, is not asked again, and the page works`, async () => {
    const { context } = suite.browser;
    const isSink = (url) => url.pathname === "/__events";
    let asked = 0;
    await context.route(isSink, (route) => {
      asked += 1;
      return route.fulfill(answer);
    });
    try {
      const page = await demoPage(suite.browser, suite.stack, "evdave");
      if (logged) page.expectConsole(logged, "Chromium logs every failed load: the 404 of a demo origin without a sink");
      await eventually(() => asked === 1, "the panel's first look at /__events");
      await uploadInDemo(page, { name: "plain.pdf", mimeType: "application/pdf", buffer: randomBytes(2048) }, "available");
      // Past the upload's end (which asks the panel to look again) and longer than its POLL_MS
      // (2 s): a panel still asking would have.
      await page.locator("[data-testid=upload]", { hasText: "plain.pdf" }).locator("[data-testid=upload-status].ok").waitFor();
      await page.waitForTimeout(2500);
      assert.equal(asked, 1);
      assert.equal(await page.locator("[data-testid=events-panel]").isHidden(), true);
      assert.equal(await page.locator("#events").evaluate((list) => list.childElementCount), 0);
      assert.deepEqual(page.pageErrors, []);
      await page.close();
    } finally {
      await context.unroute(isSink);
    }
  });
}
