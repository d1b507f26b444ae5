// The demo's sharing in headless Chromium against the local stack, driven through its own
// controls: a share link made in alice's page and opened in a fresh browser that has no identity
// (the very bytes come back; once alice revokes it, a 404), and a grant to bob, whose "Shared with
// me" lists the file and downloads it, until alice revokes it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { apiAs, artifactPath, launchChromium, stackAndChromium } from "./harness.mjs";
import { demoPage, expectSaved } from "./pages.mjs";

const suite = stackAndChromium();

/** Uploads `file` through the demo's file input and waits for the page to call it uploaded. */
async function uploadInDemo(page, file) {
  await page.setInputFiles("[data-testid=file-input]", file);
  await page.locator("[data-testid=upload]", { hasText: file.name }).locator("[data-testid=upload-status].ok").waitFor();
  const row = page.locator("[data-testid=file-row]", { hasText: file.name });
  await row.getByRole("button", { name: "Share…" }).waitFor();
  return row;
}

/** Opens the share panel of the file in `row`. */
async function openSharePanel(page, row) {
  const toggle = row.getByRole("button", { name: "Share…" });
  await toggle.click();
  assert.equal(await toggle.getAttribute("aria-expanded"), "true");
  const panel = page.locator(`#${await toggle.getAttribute("aria-controls")}`);
  assert.equal(await panel.getByRole("group").getAttribute("aria-label"), `Sharing “${await row.locator("td").first().textContent()}”`);
  return panel;
}

test("a share link made in the demo: a fresh browser with no identity downloads the very bytes; revoked in the demo, the link is a 404", async () => {
  const page = await demoPage(suite.browser, suite.stack, "alice");
  const bytes = randomBytes(200 * 1024);
  const row = await uploadInDemo(page, { name: "report.pdf", mimeType: "application/pdf", buffer: bytes });
  const fileId = await row.getAttribute("data-file-id");
  const panel = await openSharePanel(page, row);
  await panel.getByLabel("Downloads").fill("3");
  await panel.getByRole("button", { name: "Create share link" }).click();
  const field = panel.getByRole("textbox", { name: /^Share link/ });
  await field.waitFor();
  assert.equal(await field.getAttribute("readonly"), "", "the link's URL is read-only");
  const linkUrl = await field.inputValue();

  // The API's own address (README, "POST /files/{id}/links"): the local front keeps the Host the
  // page called and forwards the scheme, as API Gateway does.
  const link = new URL(linkUrl);
  assert.equal(`${link.origin}/`, new URL("/", suite.stack.apiUrl).href);
  assert.match(link.pathname, /^\/links\/[^/]+$/);
  // Checked with assert.ok, so that a failure prints no secret.
  assert.ok(/^[A-Za-z0-9_-]{43}$/.test(link.searchParams.get("secret") ?? ""), "the secret: 256 random bits, base64url");
  const linkId = link.pathname.split("/").pop();
  const listed = panel.locator(`[data-testid=link][data-link-id="${linkId}"]`);
  await listed.waitFor();
  assert.match(await listed.textContent(), new RegExp(`^Share link ${linkId.slice(0, 8)}, made .+: 0 of 3 downloads, until `));
  assert.doesNotMatch(await panel.locator("[data-testid=links]").textContent(), /secret|https?:/, "the list never shows a URL");

  // Copy puts exactly the link on the clipboard.
  await suite.browser.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: suite.stack.demoUrl.origin });
  await panel.getByRole("button", { name: "Copy" }).click();
  await panel.getByRole("status").filter({ hasText: "Copied." }).waitFor();
  assert.ok((await page.evaluate(() => navigator.clipboard.readText())) === linkUrl, "the clipboard holds the link's URL");

  // A fresh browser: its own empty profile, no page of the demo, no x-dev-user, no token.
  const stranger = await launchChromium();
  try {
    const tab = await stranger.context.newPage();
    const sentHeaders = [];
    tab.on("request", (request) => sentHeaders.push(...Object.keys(request.headers())));
    // The link answers 302 to a download URL served as an attachment: the navigation becomes a
    // download, which Playwright reports by failing the goto.
    await expectSaved(tab, async () => {
      const navigation = await tab.goto(linkUrl).then(() => "navigated", (error) => error.message);
      assert.match(navigation, /Download is starting|net::ERR_ABORTED/);
    }, { filename: "report.pdf", bytes });
    assert.ok(!sentHeaders.includes("x-dev-user") && !sentHeaders.includes("authorization"), `sent: ${sentHeaders}`);
    const asAlice = apiAs(suite.stack.apiUrl, "alice");
    const counted = (await asAlice("GET", `/files/${fileId}/links`)).body.links.find(({ id }) => id === linkId);
    assert.deepEqual([counted.downloads, counted.maxDownloads], [1, 3]);

    // Alice revokes it in her page: the list and the URL shown go; the stranger gets the 404.
    await listed.getByRole("button", { name: `Revoke link ${linkId.slice(0, 8)}` }).click();
    await listed.waitFor({ state: "detached" });
    assert.equal(await panel.locator("[data-testid=new-link]").isHidden(), true, "no URL of a revoked link on show");
    assert.deepEqual((await asAlice("GET", `/files/${fileId}/links`)).body.links, []);
    tab.expectConsole(/status of 404 \(Not Found\)/, "the revoked link is refused 404 on purpose; Chromium logs every failed load");
    const refused = await tab.goto(linkUrl);
    assert.equal(refused.status(), 404);
    assert.equal(JSON.parse(await refused.text()).error.code, "not_found");
    assert.deepEqual(stranger.console.take(), [], "console messages no test expected in the fresh browser");
  } finally {
    await stranger.close();
  }

  // Closed and opened again, the panel lists the links but shows no URL: the secret is gone.
  const toggle = row.getByRole("button", { name: "Share…" });
  await toggle.click();
  assert.equal(await page.locator("[data-testid=share-panel]").count(), 0);
  assert.deepEqual([await toggle.getAttribute("aria-expanded"), await toggle.getAttribute("aria-controls")], ["false", null]);
  const reopened = await openSharePanel(page, row);
  assert.equal(await reopened.locator("[data-testid=new-link]").isHidden(), true);
  assert.equal(await reopened.locator("[data-testid=link-url]").inputValue(), "");
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});

test("a grant made in the demo: bob's \"Shared with me\" lists the file and its Download button saves the very bytes; revoked in the demo, it is gone", async () => {
  const alice = await demoPage(suite.browser, suite.stack, "alice");
  const bytes = randomBytes(150 * 1024);
  const row = await uploadInDemo(alice, { name: "for-bob.png", mimeType: "image/png", buffer: bytes });
  const panel = await openSharePanel(alice, row);
  await panel.getByLabel(/^Share with/).fill("bob");
  await panel.getByRole("button", { name: "Grant access" }).click();
  const grant = panel.locator('[data-testid=grant][data-grantee="bob"]');
  await grant.waitFor();
  assert.match(await grant.textContent(), /^bob, until revoked/);
  assert.equal(await panel.getByLabel(/^Share with/).inputValue(), "", "the field is cleared for the next grant");

  // A grant to oneself is the API's 409, said in the panel.
  await panel.getByLabel(/^Share with/).fill("alice");
  await panel.getByRole("button", { name: "Grant access" }).click();
  await panel.locator("[data-testid=share-error]").filter({ hasText: /grant/ }).waitFor();
  alice.expectConsole(/status of 409 \(Conflict\)/, "the grant to oneself is refused 409 on purpose; Chromium logs every failed load");
  await alice.screenshot({ path: await artifactPath("demo-share-panel.png"), fullPage: true });

  const bob = await demoPage(suite.browser, suite.stack, "bob");
  const shared = bob.locator("[data-testid=shared-row]", { hasText: "for-bob.png" });
  await shared.waitFor();
  const cells = await shared.locator("td").allTextContents();
  assert.deepEqual(cells.slice(0, 4), ["for-bob.png", "alice", "150 KiB", "no expiry"]);
  await expectSaved(bob, () => shared.getByRole("button", { name: "Download" }).click(), { filename: "for-bob.png", bytes });
  await bob.screenshot({ path: await artifactPath("demo-shared-with-me.png"), fullPage: true });

  // Alice revokes; bob's row, still on his page, now downloads nothing, and says why.
  await grant.getByRole("button", { name: "Revoke bob's access" }).click();
  await grant.waitFor({ state: "detached" });
  await shared.getByRole("button", { name: "Download" }).click();
  const error = bob.locator("[data-testid=shared-error]");
  await error.filter({ hasText: "“for-bob.png” is no longer shared with you." }).waitFor();
  bob.expectConsole(/status of 404 \(Not Found\)/, "the download URL of a revoked grant is refused 404 on purpose; Chromium logs every failed load");
  await bob.getByRole("button", { name: "Refresh shared with me" }).click();
  await shared.waitFor({ state: "detached" });
  assert.equal(await bob.locator("[data-testid=shared]").textContent(), "Nothing is shared with you yet.");
  assert.deepEqual([...alice.pageErrors, ...bob.pageErrors], []);
  await alice.close();
  await bob.close();
});
