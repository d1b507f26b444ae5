// The client, the demo page and Uppy in headless Chromium (normal web security) against the whole
// local stack: the demo at its own origin, the API at another, the local S3 at a third, so every
// request crosses the API's or the bucket's CORS rules as it would deployed. The stack confirms
// uploads through S3 event notifications, as the deployed bucket does.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import {
  apiAs,
  artifactPath,
  eventually,
  launchChromium,
  startForeignOrigin,
  startLocalStack,
} from "./harness.mjs";
import { MIB, demoPage, downloadedSha256, patternBytes, recordUploadLines, sha256Hex, storedPathsOf, throttleUploads } from "./pages.mjs";

let stack;
let browser;
let foreign;

/** Lowered from 100 MiB so a multipart upload takes tens of MiB, not hundreds. */
const MULTIPART_THRESHOLD = 8 * MIB;

before(async () => {
  stack = await startLocalStack({ MULTIPART_THRESHOLD_BYTES: String(MULTIPART_THRESHOLD) });
  browser = await launchChromium();
  foreign = await startForeignOrigin();
});

// Every page of every test: no console warning or error, no "Refused to set unsafe header",
// but what a test expects with its reason (harness.mjs, collectConsole).
afterEach(() => {
  assert.deepEqual(browser?.console.take() ?? [], [], "console messages no test expected");
});

after(async () => {
  await foreign?.close();
  await browser?.close();
  await stack?.stop();
});

test("the client uploads from the demo origin; the S3 event confirms it before the client does; the bytes come back; a second caller sees nothing", async () => {
  const page = await demoPage(browser, stack, "alice");
  const bytes = randomBytes(300 * 1024);
  const result = await page.evaluate(async (base64) => {
    const content = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const gate = window.presignGateDemo.gate;
    const progress = [];
    let statusBeforeComplete = null;
    const file = await gate.upload(new Blob([content], { type: "image/png" }), {
      filename: "photo.png",
      onProgress: (p) => progress.push(p),
      // Called once S3 holds the bytes and before the client's own `complete`: wait here for the
      // record to turn available, which only the S3 event notification can do at this point.
      onStored: async ({ id }) => {
        const deadline = Date.now() + 20_000;
        for (;;) {
          const record = await gate.get(id);
          if (record.status !== "pending" || Date.now() > deadline) {
            statusBeforeComplete = record.status;
            return;
          }
          await new Promise((done) => setTimeout(done, 100));
        }
      },
    });
    const { url } = await gate.downloadUrl(file.id);
    const response = await fetch(url);
    const downloaded = new Uint8Array(await response.arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", downloaded));
    return {
      file,
      progress,
      statusBeforeComplete,
      downloadStatus: response.status,
      downloadType: response.headers.get("content-type"),
      downloadedSha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
    };
  }, bytes.toString("base64"));

  assert.equal(result.statusBeforeComplete, "available", "the S3 event confirmed the upload without `complete`");
  assert.equal(result.file.status, "available");
  assert.equal(result.file.size, bytes.length);
  assert.deepEqual(result.progress.at(-1), { loaded: bytes.length, total: bytes.length });
  assert.ok(result.progress.every((p) => p.total === bytes.length && p.loaded <= p.total));
  assert.equal(result.downloadStatus, 200);
  assert.equal(result.downloadedSha256, sha256Hex(bytes));

  // Someone else gets exactly what a file that does not exist would give them.
  const asBob = apiAs(stack.apiUrl, "bob");
  for (const path of [`/files/${result.file.id}`, `/files/${result.file.id}/download-url`]) {
    const answer = await asBob("GET", path);
    assert.equal(answer.status, 404, path);
    assert.equal(answer.body.error.code, "not_found", path);
  }

  // Delete from the page; the record and the object are gone.
  const afterDelete = await page.evaluate(async (id) => {
    const gate = window.presignGateDemo.gate;
    await gate.delete(id);
    return gate.get(id).then(() => "still there", (error) => error.code);
  }, result.file.id);
  assert.equal(afterDelete, "not_found");
  page.expectConsole(/status of 404 \(Not Found\)/, "the get after the delete is the API's 404 not_found on purpose; Chromium logs every failed load");
  assert.deepEqual(await storedPathsOf(stack, result.file.id), []);

  // Every request was authorized as its signer's role (local-aws's grants log: the template's
  // statements that allowed each request): the browser's PUT and GET as the API role that signed
  // the URLs, the S3 event's confirmation as the events function's role.
  const granted = new Set((await readFile(join(stack.dataDir, "grants.jsonl"), "utf8")).trim().split("\n").flatMap((line) => JSON.parse(line)));
  for (const sid of ["ApiFunctionRole/files/UserObjects", "ApiFunctionRole/files/OwnershipRecords", "EventsFunctionRole/files/UserObjects", "EventsFunctionRole/files/OwnershipRecords"]) {
    assert.ok(granted.has(sid), `${sid} allowed no request: ${[...granted]}`);
  }
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});

test("the demo page: a picked file's progress bar follows the client's progress to full before the page's own success step; the file is listed with its size; errors come in words", async () => {
  const page = await demoPage(browser, stack, "erin");
  // Slowed so that Chromium reports the upload's progress several times along the way.
  const cdp = await throttleUploads(browser, page, 512 * 1024);
  await recordUploadLines(page);
  const size = MIB;
  await page.setInputFiles("[data-testid=file-input]", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.alloc(size, "n") });
  const upload = page.locator("[data-testid=upload]", { hasText: "notes.txt" });
  await upload.locator("[data-testid=upload-status].ok").waitFor();
  await cdp.detach();
  const states = (await page.evaluate(() => window.barStates)).filter((state) => state.name.startsWith("notes.txt"));
  const sending = states.filter((state) => state.status.startsWith("Sending"));
  // Every state the bar showed while sending is the client's report, and says so in figures.
  for (const { value, max, status } of sending) assert.equal(status, `Sending… ${Math.floor((100 * value) / max)}%`);
  assert.ok(sending.filter(({ value }) => value > 0 && value < size).length >= 2, `the bar moved along the way: ${JSON.stringify(sending)}`);
  assert.ok(sending.every(({ value }, i) => i === 0 || value >= sending[i - 1].value), "never back");
  // Full while the client confirms: the client reported every byte, before the page's own
  // "Uploaded" step sets the bar full whatever was reported.
  const confirming = states.find(({ status }) => status === "Confirming…");
  assert.deepEqual(confirming && [confirming.value, confirming.max], [size, size]);
  assert.deepEqual(states.at(-1), { name: "notes.txt (1.0 MiB)", value: size, max: size, status: "Uploaded" });
  const row = page.locator("[data-testid=file-row]", { hasText: "notes.txt" });
  await row.waitFor();
  assert.match(await row.textContent(), /notes\.txt\s*text\/plain\s*1\.0 MiB\s*available/);

  // A type outside the allow-list: the API's 400 content_type_not_allowed, said in words.
  await page.setInputFiles("[data-testid=file-input]", {
    name: "drawing.svg",
    mimeType: "image/svg+xml",
    buffer: Buffer.from("<svg xmlns='http://www.w3.org/2000/svg'/>"),
  });
  const refusal = page.locator("[data-testid=upload]", { hasText: "drawing.svg" }).locator("[data-testid=upload-status].error");
  await refusal.waitFor();
  assert.equal(
    await refusal.textContent(),
    "“drawing.svg” was not uploaded: files of type image/svg+xml are not allowed here.",
  );
  page.expectConsole(/status of 400 \(Bad Request\)/, "the SVG's reservation is refused 400 on purpose; Chromium logs every failed load");

  await page.screenshot({ path: await artifactPath("demo-after-upload.png"), fullPage: true });
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});

test("an upload aborted through its AbortSignal leaves a pending reservation and no object", async () => {
  const page = await demoPage(browser, stack, "frank");
  // Slow the page's uploads so the abort lands while the bytes are on their way.
  const cdp = await throttleUploads(browser, page, 256 * 1024);
  const outcome = await page.evaluate(async () => {
    const controller = new AbortController();
    let sent = 0;
    try {
      await window.presignGateDemo.gate.upload(new Blob([new Uint8Array(4 << 20)], { type: "text/plain" }), {
        filename: "aborted.txt",
        signal: controller.signal,
        onProgress: ({ loaded, total }) => {
          if (loaded > 0 && loaded < total && !controller.signal.aborted) {
            sent = loaded;
            controller.abort();
          }
        },
      });
      return { error: null, sent };
    } catch (error) {
      return { error: error.name, sent };
    }
  });
  await cdp.detach();
  assert.equal(outcome.error, "AbortError");
  assert.ok(outcome.sent > 0, "the abort came after some bytes were sent");

  const asFrank = apiAs(stack.apiUrl, "frank");
  const { body } = await asFrank("GET", "/files");
  const pending = body.files.filter((file) => file.filename === "aborted.txt");
  assert.equal(pending.length, 1);
  assert.equal(pending[0].status, "pending");
  // The server finds no object behind the reservation, and the local S3 holds none.
  const completed = await asFrank("POST", `/files/${pending[0].id}/complete`);
  assert.equal(completed.status, 409);
  assert.equal(completed.body.error.code, "upload_missing");
  assert.deepEqual(await storedPathsOf(stack, pending[0].id), []);
  await page.close();
});

test("503s the stack injects, from the API (with Retry-After) and from S3, cross the real CORS rules and are retried", async () => {
  const page = await demoPage(browser, stack, "grace");
  // Faults the local stack serves (README, "The local AWS": `POST /__faults`), inside the API's
  // and the bucket's CORS layers: the preflights are the rules' own, the errors carry their
  // headers, and the API's CORS rule exposes Retry-After. The API answers 503 `unavailable` with
  // Retry-After when a backend is throttled (README, Common rules); S3 answers 503 SlowDown when
  // asked to slow down (Amazon S3 error responses).
  await stack.faults.clear();
  await stack.faults.inject({
    api: [{ status: 503, method: "POST", path: "/uploads", retryAfter: "1" }],
    s3: [{ status: 503, method: "PUT" }],
  });
  const began = Date.now();
  const file = await page.evaluate(() =>
    window.presignGateDemo.gate.upload(new Blob(["retried bytes"], { type: "text/plain" }), { filename: "retried.txt" }),
  );
  const elapsed = Date.now() - began;
  assert.equal(file.status, "available");
  const report = await stack.faults.report();
  assert.deepEqual(report.served, { s3: 1, api: 1, scans: 0, putEvents: 0 }, "the refused reservation and the refused PUT, each retried; no other fault");
  assert.deepEqual([report.s3, report.api], [[], []]);
  // The page read the API's Retry-After through CORS: a backoff alone would be under 0.3 s.
  assert.ok(elapsed >= 1000, `the client waited the API's Retry-After (${elapsed} ms)`);
  page.expectConsole(/the server responded with a status of 503/, "the two injected 503s: Chromium logs every failed resource load");
  await page.close();
});

test("the bucket's CORS rules: a page from an unlisted origin cannot PUT, and neither can a header the rules do not allow", async () => {
  const asHeidi = apiAs(stack.apiUrl, "heidi");
  const bytes = "cors bytes";
  const reserve = async () => {
    const { status, body } = await asHeidi("POST", "/uploads", {
      filename: "cors.txt",
      contentType: "text/plain",
      size: bytes.length,
    });
    assert.equal(status, 201);
    return body;
  };
  const put = (page, upload, extraHeaders = {}) =>
    page.evaluate(
      ({ url, headers, body }) =>
        new Promise((resolve) => {
          const xhr = new XMLHttpRequest();
          xhr.open("PUT", url);
          for (const [name, value] of Object.entries(headers)) {
            if (name !== "content-length") xhr.setRequestHeader(name, value);
          }
          xhr.onload = () => resolve({ status: xhr.status });
          xhr.onerror = () => resolve({ status: 0, networkError: true });
          xhr.send(body);
        }),
      { url: upload.url, headers: { ...upload.headers, ...extraHeaders }, body: bytes },
    );

  const foreignPage = await browser.context.newPage();
  // The refusals this test provokes: Chromium reports each blocked request and its failed load.
  const blocked = "the CORS refusals are what this test provokes; Chromium logs each one";
  foreignPage.expectConsole(/has been blocked by CORS policy/, blocked);
  foreignPage.expectConsole(/Failed to load resource: net::ERR_FAILED/, blocked);
  await foreignPage.goto(foreign.origin + "/");
  const fromForeign = await reserve();
  assert.deepEqual(await put(foreignPage, fromForeign.upload), { status: 0, networkError: true });
  // Nothing reached the bucket: the server still finds no object.
  assert.equal((await asHeidi("POST", `/files/${fromForeign.file.id}/complete`)).body.error.code, "upload_missing");
  // The API's CORS refuses that origin too.
  const apiFromForeign = await foreignPage.evaluate(
    (apiUrl) => fetch(apiUrl + "/files", { headers: { "x-dev-user": "heidi" } }).then(() => "answered", (e) => e.name),
    stack.apiUrl.replace(/\/+$/, ""),
  );
  assert.equal(apiFromForeign, "TypeError");

  const demo = await demoPage(browser, stack, "heidi");
  demo.expectConsole(/has been blocked by CORS policy/, blocked);
  demo.expectConsole(/Failed to load resource: net::ERR_FAILED/, blocked);
  const withExtraHeader = await reserve();
  assert.deepEqual(await put(demo, withExtraHeader.upload, { "x-amz-meta-note": "not in AllowedHeaders" }), {
    status: 0,
    networkError: true,
  });
  // The same URLs from the listed origin with exactly the listed headers go through.
  assert.deepEqual(await put(demo, withExtraHeader.upload), { status: 200 });
  assert.deepEqual(await put(demo, fromForeign.upload), { status: 200 });
  await foreignPage.close();
  await demo.close();
});

test("Uppy's Dashboard uploads two files through the adapter and both become available", async () => {
  const page = await demoPage(browser, stack, "ivan", "uppy.html");
  await page.setInputFiles(".uppy-Dashboard-input >> nth=0", [
    { name: "first.txt", mimeType: "text/plain", buffer: Buffer.from("first file\n") },
    { name: "second.png", mimeType: "image/png", buffer: randomBytes(64 * 1024) },
  ]);
  await page.click(".uppy-StatusBar-actionBtn--upload");
  const confirmed = page.locator("[data-testid=uppy-available]");
  await eventually(async () => (await confirmed.count()) === 2, "both Uppy files to be confirmed");
  const ids = await confirmed.evaluateAll((items) => items.map((item) => item.dataset.fileId));
  const asIvan = apiAs(stack.apiUrl, "ivan");
  const records = await Promise.all(ids.map(async (id) => (await asIvan("GET", `/files/${id}`)).body.file));
  assert.deepEqual(records.map((r) => [r.filename, r.status]).sort(), [
    ["first.txt", "available"],
    ["second.png", "available"],
  ]);
  assert.deepEqual(page.pageErrors, []);
  await page.screenshot({ path: await artifactPath("uppy-after-upload.png"), fullPage: true });
  await page.close();
});

test("Uppy's Dashboard uploads a file above the threshold in the server's parts", async () => {
  const size = 12 * MIB;
  const bytes = Buffer.from(patternBytes(size, 77));
  const page = await demoPage(browser, stack, "kim", "uppy.html");
  const partPuts = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (request.method() === "PUT" && url.searchParams.has("partNumber")) partPuts.push(Number(url.searchParams.get("partNumber")));
  });
  await page.setInputFiles(".uppy-Dashboard-input >> nth=0", [{ name: "large.pdf", mimeType: "application/pdf", buffer: bytes }]);
  await page.click(".uppy-StatusBar-actionBtn--upload");
  const confirmed = page.locator("[data-testid=uppy-available]");
  await eventually(async () => (await confirmed.count()) === 1, "the large file to be confirmed", 60_000);
  const id = await confirmed.evaluate((item) => item.dataset.fileId);
  // What the adapter's `complete` answered, then what the API says afterwards.
  assert.match(await confirmed.textContent(), /: available$/);
  const record = (await apiAs(stack.apiUrl, "kim")("GET", `/files/${id}`)).body.file;
  assert.equal(record.status, "available");
  assert.equal(record.size, size);
  assert.deepEqual(partPuts.sort(), [1, 2, 3], "three parts of the server's 5 MiB plan");
  assert.equal(await downloadedSha256(page, id), sha256Hex(bytes));
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});

// Issue 20, 2.11: the demo sends the token typed into it to the API URL of its form. A link's
// ?api= naming another host, or one saved from an earlier link, would send it there.
test("the demo takes ?api= only for a loopback API and stores no API URL, so no link chooses where a token goes", async () => {
  const page = await browser.context.newPage();
  page.expectConsole(
    /Failed to load resource: net::ERR_CONNECTION_REFUSED/,
    "the demo's default API (127.0.0.1:9000) does not run here: the page's first calls to it fail",
  );
  const hosts = [];
  page.on("request", (request) => hosts.push(new URL(request.url()).hostname));
  try {
    const link = new URL("/", stack.demoUrl);
    link.searchParams.set("api", "https://collector.example.test/");
    link.searchParams.set("user", "link-follower");
    await page.goto(link.href);
    await page.waitForFunction(() => window.presignGateDemo?.gate);
    assert.equal(await page.inputValue("[data-testid=api-url]"), "http://127.0.0.1:9000", "the foreign ?api= is ignored");
    await page.fill("[data-testid=token]", "pasted-token");
    await page.click("#connection button[type=submit]");
    await page.waitForTimeout(200);
    assert.ok(!hosts.includes("collector.example.test"), `requests went to ${hosts}`);
    const stored = await page.evaluate(() => localStorage.getItem("presign-gate-demo"));
    assert.doesNotMatch(stored ?? "", /collector|apiUrl|pasted-token/);

    // A loopback API from a link is used, and not stored either: the next visit starts from the default.
    const local = new URL("/", stack.demoUrl);
    local.searchParams.set("api", stack.apiUrl);
    await page.goto(local.href);
    await page.waitForFunction(() => window.presignGateDemo?.gate);
    assert.equal(await page.inputValue("[data-testid=api-url]"), stack.apiUrl);
    assert.doesNotMatch((await page.evaluate(() => localStorage.getItem("presign-gate-demo"))) ?? "", /apiUrl|127\.0\.0\.1/);
  } finally {
    await page.close();
  }
});

test("the console collector sees what it is for: a refused unsafe header fails a test even when expected", async () => {
  const page = await demoPage(browser, stack, "zoe");
  page.expectConsole(/Refused to set unsafe header/, "expecting it must not let it pass");
  await page.evaluate(() => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", "/nothing");
    xhr.setRequestHeader("content-length", "1");
  });
  const seen = [];
  await eventually(() => {
    seen.push(...browser.console.take());
    return seen.some((message) => /Refused to set unsafe header "content-length"/.test(message));
  }, "Chromium's refusal in the console");
  await page.close();
});
