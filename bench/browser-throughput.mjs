// Throughput of one large upload through the browser client on loopback: the same file sent as one
// presigned PUT and as a multipart upload (4 parts in flight), each with and without its SHA-256,
// in headless Chromium against `make local`'s stack (scripts/local.sh, started on free ports).
// A figure, not a test: `make bench-throughput` (THROUGHPUT_MIB=1024 by default) prints a table.
//
// Everything is on one machine: Chromium, the local S3 (local-aws over s3s-fs, a debug build, as
// `make local` runs it) and the functions share its cores, and the local S3 writes to disk, so
// the figures compare the two ways of sending through the same stack; they are not S3's speed.
//
// The file is on disk and picked through a file input, as a user's would be: a page-made Blob of
// 512 MiB or more fails to be read (Chromium cannot hold it), which a user's file never meets.
import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";

import { launchChromium, startLocalStack } from "../tests/browser/harness.mjs";

const MIB = 1024 * 1024;
const sizeMib = Number(process.env.THROUGHPUT_MIB ?? 1024);
assert.ok(Number.isInteger(sizeMib) && sizeMib >= 16, "THROUGHPUT_MIB: a whole number of MiB, at least 16");
const size = sizeMib * MIB;

const stack = await startLocalStack({
  MAX_UPLOAD_BYTES: String(size),
  QUOTA_MAX_BYTES: String(Math.max(size, 10 * 1024 * MIB)),
  // A single PUT takes up to 5 GiB: the threshold sits above the file, and the multipart runs
  // ask for it with `multipart: true`.
  MULTIPART_THRESHOLD_BYTES: String(size),
});
const dir = await mkdtemp(join(tmpdir(), "presign-gate-throughput-"));
const path = join(dir, "throughput.pdf");
const out = createWriteStream(path);
for (let offset = 0; offset < size; offset += MIB) {
  if (!out.write(randomFillSync(Buffer.alloc(MIB)))) await new Promise((go) => out.once("drain", go));
}
out.end();
await finished(out);

const browser = await launchChromium();
try {
  const page = await browser.context.newPage();
  const url = new URL("/", stack.demoUrl);
  url.searchParams.set("api", stack.apiUrl);
  url.searchParams.set("user", "bench");
  url.searchParams.set("multipartThreshold", String(size));
  await page.goto(url.href);
  await page.waitForFunction(() => window.presignGateDemo?.gate);
  await page.evaluate(() => {
    const input = document.createElement("input");
    input.type = "file";
    input.id = "throughput-file";
    document.body.append(input);
  });
  await page.setInputFiles("#throughput-file", path);

  const runs = [
    { name: "single PUT", multipart: false, sha256: false },
    { name: "single PUT, whole-file SHA-256", multipart: false, sha256: true },
    { name: "multipart, 4 parts in flight", multipart: true, sha256: false },
    { name: "multipart, 4 in flight, per-part SHA-256", multipart: true, sha256: true },
  ];
  const results = await page.evaluate(
    async ({ size, runs }) => {
      const input = /** @type {HTMLInputElement} */ (document.getElementById("throughput-file"));
      const blob = input.files?.[0];
      if (blob?.size !== size) throw new Error(`the picked file has ${blob?.size} bytes, not ${size}`);
      const gate = window.presignGateDemo.gate;
      const out = [];
      for (const run of runs) {
        const started = performance.now();
        let reservation = null;
        const file = await gate.upload(blob, {
          filename: "throughput.pdf",
          multipart: run.multipart,
          sha256: run.sha256,
          onReserved: (_file, upload) => (reservation = upload),
        });
        const seconds = (performance.now() - started) / 1000;
        out.push({ ...run, seconds, method: reservation.method, parts: reservation.partCount ?? 1, status: file.status });
        // The local S3 keeps every object on disk: one at a time.
        await gate.delete(file.id);
      }
      return out;
    },
    { size, runs },
  );

  console.log(`\n${sizeMib} MiB through the browser client on loopback (reserve, hash if asked, send, complete):\n`);
  console.log("| run | method | parts | seconds | MiB/s |");
  console.log("| --- | --- | ---: | ---: | ---: |");
  for (const r of results) {
    assert.equal(r.status, "available", r.name);
    console.log(`| ${r.name} | ${r.method} | ${r.parts} | ${r.seconds.toFixed(1)} | ${(sizeMib / r.seconds).toFixed(0)} |`);
  }
} finally {
  await browser.close();
  await stack.stop();
  await rm(dir, { recursive: true, force: true });
}
