// The demo page's multipart uploads in headless Chromium against the local stack, driven through
// its own buttons: Cancel during the transfer (nothing may stay stored, nor recorded), Resume after
// a reload (only the missing parts are sent), Download (the very bytes come back).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { apiAs, eventually, stackAndChromium } from "./harness.mjs";
import {
  MIB, NETWORK_UNTHROTTLED, demoPage, expectSaved, patternBytes, recordUploadLines, storedPathsOf, throttleUploads,
} from "./pages.mjs";

// Lowered from 100 MiB so a multipart upload takes tens of MiB, not hundreds.
const suite = stackAndChromium({ MULTIPART_THRESHOLD_BYTES: String(8 * MIB) });

test("the demo's Cancel during a multipart upload: the client deletes the file, so no record is left and S3 holds neither object nor upload", async () => {
  const page = await demoPage(suite.browser, suite.stack, "nora");
  // Slowed so that Cancel lands while the parts are on their way.
  const cdp = await throttleUploads(suite.browser, page, 2 * MIB);
  const size = 20 * MIB;
  await page.setInputFiles("[data-testid=file-input]", { name: "cancelled.pdf", mimeType: "application/pdf", buffer: Buffer.from(patternBytes(size, 7)) });
  const line = page.locator("[data-testid=upload]", { hasText: "cancelled.pdf" });
  await eventually(() => line.locator("progress").evaluate((bar) => bar.value > 0), "the first bytes sent");

  // Under way: the pending record, and S3's multipart upload for its key.
  const asNora = apiAs(suite.stack.apiUrl, "nora");
  const record = (await asNora("GET", "/files")).body.files.find((file) => file.filename === "cancelled.pdf");
  assert.equal(record?.status, "pending");
  const key = `users/nora/${record.id}`;
  assert.deepEqual((await suite.stack.s3.listMultipartUploads(key)).map((upload) => upload.key), [key]);

  await line.getByRole("button", { name: "Cancel" }).click();
  await line.locator("[data-testid=upload-status].error", { hasText: "Cancelled." }).waitFor();
  await cdp.detach();
  assert.equal(await line.getByRole("button", { name: "Cancel" }).count(), 0);
  const gone = await asNora("GET", `/files/${record.id}`);
  assert.deepEqual([gone.status, gone.body.error.code], [404, "not_found"]);
  assert.ok(!(await asNora("GET", "/files")).body.files.some((file) => file.id === record.id), "not listed");
  assert.deepEqual(await suite.stack.s3.listMultipartUploads(key), [], "no multipart upload left");
  assert.deepEqual(await storedPathsOf(suite.stack, record.id), [], "no object");
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});

test("a file above the multipart threshold goes in 5 MiB parts; the page reloads halfway; its Resume button sends only what S3 lacks, and its Download button gives the bytes back identical", async () => {
  const size = 30 * MIB;
  const seed = 1313;
  const page = await demoPage(suite.browser, suite.stack, "judy");
  // Slow the page's uploads so the reload lands while parts are still to be sent.
  const cdp = await throttleUploads(suite.browser, page, 16 * MIB);
  let reservation = null;
  await page.exposeFunction("recordReservation", (value) => {
    reservation = value;
  });
  const reloaded = page.waitForEvent("load");
  await page.evaluate(
    ({ source, size, seed }) => {
      const pattern = new Function(`return (${source})`)();
      const blob = new Blob([pattern(size, seed)], { type: "application/pdf" });
      let reloading = false;
      // Not awaited: the page goes away half way through.
      window.presignGateDemo.gate
        .upload(blob, {
          filename: "movie.pdf",
          concurrency: 1,
          onReserved: (file, upload) => window.recordReservation({ id: file.id, upload }),
          onProgress: ({ loaded, total }) => {
            if (!reloading && loaded >= total / 2) {
              reloading = true;
              location.reload();
            }
          },
        })
        .catch(() => {});
    },
    { source: patternBytes.toString(), size, seed },
  );
  await reloaded;
  await cdp.send("Network.emulateNetworkConditions", NETWORK_UNTHROTTLED);
  await cdp.detach();

  assert.ok(reservation, "the reservation was made before the reload");
  assert.equal(reservation.upload.method, "MULTIPART");
  assert.equal(reservation.upload.partSize, 5 * MIB);
  assert.equal(reservation.upload.partCount, 6);
  const asJudy = apiAs(suite.stack.apiUrl, "judy");
  const before = await asJudy("GET", `/files/${reservation.id}/parts`);
  assert.equal(before.status, 200);
  const storedBefore = before.body.parts.map((part) => part.partNumber).sort((a, b) => a - b);
  assert.ok(storedBefore.length > 0 && storedBefore.length < 6, `parts stored before the reload: ${storedBefore}`);
  assert.equal((await asJudy("GET", `/files/${reservation.id}`)).body.file.status, "pending");

  // After the reload: the pending file is listed with its Resume button; the same file, chosen
  // again, is sent through it.
  await page.waitForFunction(() => window.presignGateDemo?.gate);
  await recordUploadLines(page);
  const row = page.locator("[data-testid=file-row]", { hasText: "movie.pdf" });
  const sentParts = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (request.method() === "PUT" && url.searchParams.has("partNumber")) sentParts.push(Number(url.searchParams.get("partNumber")));
  });
  const bytes = Buffer.from(patternBytes(size, seed));
  const picked = join(await mkdtemp(join(tmpdir(), "presign-gate-resume-")), "movie.pdf");
  await writeFile(picked, bytes);
  const chooser = page.waitForEvent("filechooser");
  await row.locator("[data-testid=resume]").click();
  await (await chooser).setFiles(picked);
  const line = page.locator("[data-testid=upload]", { hasText: "movie.pdf" });
  await line.locator("[data-testid=upload-status].ok").waitFor({ timeout: 60_000 });
  await rm(dirname(picked), { recursive: true, force: true });

  assert.equal((await asJudy("GET", `/files/${reservation.id}`)).body.file.status, "available");
  assert.deepEqual(
    sentParts.sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6].filter((n) => !storedBefore.includes(n)),
    "resume sent only the parts S3 lacked",
  );
  const states = (await page.evaluate(() => window.barStates)).filter((state) => state.name.startsWith("movie.pdf"));
  const sending = states.filter((state) => state.status.startsWith("Sending"));
  assert.equal(sending[0].value, storedBefore.length * 5 * MIB, "progress starts from what S3 holds");
  assert.equal(states.find(({ status }) => status === "Confirming…")?.value, size);

  // The row, refreshed, offers the download: Chromium saves exactly the bytes picked, under the
  // file's name (the URL's Content-Disposition: attachment).
  await expectSaved(page, () => row.getByRole("button", { name: "Download" }).click(), { filename: "movie.pdf", bytes });
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});
