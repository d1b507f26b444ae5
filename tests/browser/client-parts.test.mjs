// A multipart upload's parts, rule by rule: the plan a blob must fit, which stored parts count,
// how part URLs are batched and renewed, the progress figure, and hashing that stops on an abort.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import {
  FILE_ID, atTime, fakeXhr, forbidLogging, gate, json, multipartApi, nodeSha256, partOf,
} from "./fakes.mjs";

forbidLogging();

test("a blob that does not fit the reservation's plan is refused before any part is sent", async () => {
  const blob = new Blob([randomBytes(3)]);
  for (const [partSize, partCount] of [[1, 2], [-5, 1], [0, 1]]) {
    const api = multipartApi(blob, { partSize: 1 });
    const storage = fakeXhr([]);
    const { client } = gate(async (url, init) => {
      if (new URL(url).pathname.endsWith("/parts") && init.method === "GET") return json(200, { partSize, partCount, parts: [] });
      return api.fetch(url, init);
    }, storage.XMLHttpRequest);
    await assert.rejects(client.resume(FILE_ID, blob), {
      code: "resume_mismatch",
      message: `This file (3 bytes) does not fit the upload's plan of ${partCount} parts of ${partSize} bytes.`,
    });
    assert.equal(storage.requests.length, 0, `${partCount} parts of ${partSize}`);
  }
});

test("resume counts a stored last part of the plan's short length as stored", async () => {
  const blob = new Blob([randomBytes(25)]);
  const api = multipartApi(blob, { partSize: 10, stored: [{ partNumber: 3, size: 5, etag: '"c"' }] });
  const storage = fakeXhr((xhr) => xhr.answer(200));
  const progress = [];
  await gate(api.fetch, storage.XMLHttpRequest).client.resume(FILE_ID, blob, { sha256: false, onProgress: (p) => progress.push(p.loaded) });
  assert.deepEqual(storage.requests.map(partOf).sort(), [1, 2]);
  assert.equal(progress[0], 5);
});

test("a server that does not say whether parts carry a SHA-256 leaves it to the caller: hashed unless sha256: false", async () => {
  const content = randomBytes(15);
  for (const [sha256, expected] of [[undefined, [nodeSha256(content.subarray(0, 10)), nodeSha256(content.subarray(10))]], [false, [undefined, undefined]]]) {
    const api = multipartApi(new Blob([content]), { partSize: 10, reportsPartSha256: false });
    const storage = fakeXhr((xhr) => xhr.answer(200));
    await gate(api.fetch, storage.XMLHttpRequest).client.upload(new Blob([content]), { filename: "x", multipart: true, sha256 });
    const digests = api.log.signed.flat().sort((a, b) => a.partNumber - b.partNumber).map((p) => p.sha256);
    assert.deepEqual(digests, expected, `sha256: ${sha256}`);
  }
});

test("200 parts asked for in the same turn are signed in two requests of 100", async () => {
  const blob = new Blob([randomBytes(200)]);
  const api = multipartApi(blob, { partSize: 1 });
  const storage = fakeXhr((xhr) => xhr.answer(200));
  await gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { filename: "x", multipart: true, sha256: false, concurrency: 200 });
  assert.deepEqual(api.log.signed.map((batch) => batch.length), [100, 100]);
  assert.equal(api.log.calls.filter((call) => call === `POST /files/${FILE_ID}/parts`).length, 2, "no other request");
  assert.equal(storage.requests.length, 200);
});

test("a part URL S3 calls expired is signed again, however long it was meant to live", async () => {
  const blob = new Blob([randomBytes(20)]);
  const api = multipartApi(blob, { partSize: 10, urlLifetimeMs: 3_600_000 });
  let refused = false;
  const storage = fakeXhr((xhr) => {
    if (!refused) {
      refused = true;
      return xhr.answer(403, { body: "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>" });
    }
    xhr.answer(200);
  });
  await gate(api.fetch, storage.XMLHttpRequest, { partConcurrency: 1 }).client.upload(blob, { filename: "x", multipart: true, sha256: false });
  assert.deepEqual(api.log.signed.map((batch) => batch.map((p) => p.partNumber)), [[1, 2], [1]]);
  assert.deepEqual(storage.requests.map((xhr) => xhr.method), ["PUT", "PUT", "PUT"]);
});

test("a part URL with 30 s or less left is signed again before it is used; one with more is used", async () => {
  const blob = new Blob([randomBytes(20)]);
  const now = Date.now();
  await atTime(now, async () => {
    for (const [lifetime, batches] of [[30_000, [[1, 2], [2]]], [30_001, [[1, 2]]]]) {
      const api = multipartApi(blob, { partSize: 10, urlExpiresAt: () => new Date(now + lifetime).toISOString() });
      const storage = fakeXhr((xhr) => xhr.answer(200));
      await gate(api.fetch, storage.XMLHttpRequest, { partConcurrency: 1 }).client.upload(blob, { filename: "x", multipart: true, sha256: false });
      assert.deepEqual(api.log.signed.map((batch) => batch.map((p) => p.partNumber)), batches, `URLs living ${lifetime} ms`);
    }
  });
});

test("part URLs the API refuses to sign fail the upload with its refusal", { timeout: 5_000 }, async () => {
  const blob = new Blob([randomBytes(20)]);
  const api = multipartApi(blob, { partSize: 10 });
  const { client } = gate(async (url, init) => {
    if (init.method === "POST" && new URL(url).pathname.endsWith("/parts")) {
      return json(409, { error: { code: "reservation_lapsed", message: "lapsed" } });
    }
    return api.fetch(url, init);
  }, fakeXhr([]).XMLHttpRequest);
  await assert.rejects(client.upload(blob, { filename: "x", multipart: true, sha256: false, concurrency: 2 }), { code: "reservation_lapsed" });
});

test("progress counts the bytes stored and in flight, once each, from 0 to the file's size", async () => {
  const blob = new Blob([randomBytes(25)]);
  for (const [progressed, expected] of [[true, [0, 4, 10, 14, 20, 24, 25]], [false, [0, 4, 10, 14, 20, 24, 25]]]) {
    const api = multipartApi(blob, { partSize: 10 });
    const storage = fakeXhr((xhr) => {
      xhr.progress(4);
      xhr.answer(200, { progressed });
    });
    const progress = [];
    await gate(api.fetch, storage.XMLHttpRequest, { partConcurrency: 1 }).client.upload(blob, {
      filename: "x",
      multipart: true,
      sha256: false,
      onProgress: (p) => progress.push(p.total === 25 ? p.loaded : NaN),
    });
    assert.deepEqual(progress, expected, `the browser ${progressed ? "reported" : "did not report"} each part whole`);
  }
});

/**
 * A Blob read as a stream of `chunk`-byte pieces, its slices too, each read counted in `tally`
 * and `tally.onRead` called.
 */
class CountedBlob extends Blob {
  constructor(parts, tally, chunk = 64 * 1024) {
    super(parts);
    Object.assign(this, { tally, chunk });
  }

  slice(start, end) {
    return new CountedBlob([super.slice(start, end)], this.tally, this.chunk);
  }

  stream() {
    let offset = 0;
    const { tally, chunk } = this;
    return new ReadableStream({
      pull: async (controller) => {
        tally.reads++;
        tally.onRead?.();
        if (offset >= this.size) return controller.close();
        controller.enqueue(new Uint8Array(await super.slice(offset, offset + chunk).arrayBuffer()));
        offset += chunk;
      },
    }, { highWaterMark: 0 });
  }
}

/** Runs `fn` as a page without WebCrypto's digest, so every hash is streamed. */
async function streamedHashes(fn) {
  Object.defineProperty(globalThis.crypto, "subtle", { value: undefined, configurable: true });
  try {
    return await fn();
  } finally {
    delete globalThis.crypto.subtle;
  }
}

test("an abort stops the hashing at once: of the whole file before its reservation, of a part before its URL", async () => {
  await streamedHashes(async () => {
    const reason = new Error("the user left");
    const whole = new AbortController();
    const tally = { reads: 0, onRead: () => whole.abort(reason) };
    const api = multipartApi(new Blob([new Uint8Array(1)]), { partSize: 1 });
    const { client } = gate(api.fetch, fakeXhr([]).XMLHttpRequest);
    const file = new CountedBlob([randomBytes(1 << 20)], tally);
    await assert.rejects(client.upload(file, { filename: "x", multipart: false, signal: whole.signal }), (e) => e === reason);
    assert.ok(tally.reads <= 2, `${tally.reads} reads after the abort`);
    assert.deepEqual(api.log.calls, []);

    const parts = new AbortController();
    const partTally = { reads: 0, onRead: () => partTally.reads === 1 && parts.abort(reason) };
    const big = new CountedBlob([randomBytes(2 << 20)], partTally);
    const multipart = multipartApi(big, { partSize: 1 << 20 });
    const storage = fakeXhr([]);
    await assert.rejects(
      gate(multipart.fetch, storage.XMLHttpRequest).client.upload(big, { filename: "x", multipart: true, concurrency: 1, signal: parts.signal }),
      (e) => e === reason,
    );
    assert.ok(partTally.reads <= 2, `${partTally.reads} reads after the abort`);
    assert.deepEqual(multipart.log.signed, []);
    assert.equal(storage.requests.length, 0);
    assert.equal(multipart.log.deletes, 1);
  });
});
