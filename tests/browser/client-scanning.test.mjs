// The browser client where the API scans uploads for malware (README, "Malware scanning"): an
// upload resolves with the file `scanning`, `waitUntilAvailable` looks at it with growing waits
// until the verdict, a rejection carries its reason, and a download of a file not available says
// what the file is. Against the fakes of fakes.mjs; demo-scanning.test.mjs runs the same in
// Chromium against the local stack with GuardDuty's stand-in.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { DEFAULT_SCAN_WAIT, PresignGateError } from "../../client/presign-gate.js";
import { FILE_ID, fakeApi, fakeXhr, forbidLogging, gate, json, multipartApi, reservation } from "./fakes.mjs";

forbidLogging();

const file = (status, extra = {}) => ({ file: { id: FILE_ID, filename: "a.txt", size: 3, status, ...extra } });
const answering = (status, extra) => (method, url) => {
  assert.equal(method, "GET");
  assert.equal(url.pathname, `/prod/files/${FILE_ID}`);
  return json(200, file(status, extra));
};

/**
 * A client whose waits pass on a clock of their own: each `sleep(ms)` is recorded and moves
 * `Date.now()` on by `ms`, so a timeout is reached without waiting. Restores `Date.now` after `fn`.
 */
async function withClock(handlers, fn) {
  const realNow = Date.now;
  let now = 1_800_000_000_000;
  Date.now = () => now;
  const sleeps = [];
  const signals = [];
  const api = fakeApi(handlers);
  const { client } = gate(api.fetch, fakeXhr([]).XMLHttpRequest, {
    sleep: async (ms, signal) => {
      sleeps.push(ms);
      signals.push(signal);
      now += ms;
    },
  });
  try {
    return await fn({ client, sleeps, signals, api });
  } finally {
    Date.now = realNow;
  }
}

/** The fields of a client error a caller reads. */
const fieldsOf = ({ name, message, status, code, fileStatus, rejectedFor }) => ({ name, message, status, code, fileStatus, rejectedFor });

test("upload resolves with the file scanning, as the API confirmed it", async () => {
  const blob = new Blob(["abc"], { type: "text/plain" });
  const api = fakeApi([
    () => json(201, reservation(blob)),
    (method, url) => {
      assert.equal(`${method} ${url.pathname}`, `POST /prod/files/${FILE_ID}/complete`);
      return json(200, file("scanning"));
    },
  ]);
  const storage = fakeXhr([(xhr) => xhr.answer(200)]);
  const uploaded = await gate(api.fetch, storage.XMLHttpRequest).client.upload(blob, { sha256: false });
  assert.equal(uploaded.status, "scanning");
  assert.equal(api.handlers.length, 0, "no wait for the scan unless asked");
});

test("waitUntilAvailable looks at the file after 1 s, then twice as long each time up to 10 s, and resolves with it available", async () => {
  const looks = [...Array(6)].map(() => answering("scanning"));
  await withClock([answering("pending"), ...looks, answering("available", { etag: '"e"' })], async ({ client, sleeps, api }) => {
    const available = await client.waitUntilAvailable(FILE_ID);
    assert.deepEqual(available, file("available", { etag: '"e"' }).file);
    assert.deepEqual(sleeps, [1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
    assert.equal(api.handlers.length, 0);
  });
  assert.deepEqual(DEFAULT_SCAN_WAIT, { intervalMs: 1000, maxIntervalMs: 10_000, timeoutMs: 900_000 });
});

test("waitUntilAvailable takes its intervals, and resolves at once with a file already available", async () => {
  await withClock([answering("scanning"), answering("scanning"), answering("scanning"), answering("available")], async ({ client, sleeps }) => {
    await client.waitUntilAvailable(FILE_ID, { intervalMs: 300, maxIntervalMs: 500 });
    assert.deepEqual(sleeps, [300, 500, 500]);
  });
  await withClock([answering("available")], async ({ client, sleeps }) => {
    assert.equal((await client.waitUntilAvailable(FILE_ID)).status, "available");
    assert.deepEqual(sleeps, []);
  });
});

test("a file rejected after its scan is upload_rejected, with its status and reason", async () => {
  await withClock([answering("scanning"), answering("rejected", { rejectedFor: "malware" })], async ({ client, sleeps }) => {
    const error = await client.waitUntilAvailable(FILE_ID).catch((caught) => caught);
    assert.ok(error instanceof PresignGateError);
    assert.deepEqual(fieldsOf(error), {
      name: "PresignGateError",
      message: "The upload was rejected (malware); its bytes were deleted.",
      status: 200,
      code: "upload_rejected",
      fileStatus: "rejected",
      rejectedFor: "malware",
    });
    assert.deepEqual(sleeps, [1000]);
  });
  // A rejection recorded before reasons were: no reason to give.
  await withClock([answering("rejected")], async ({ client }) => {
    await assert.rejects(client.waitUntilAvailable(FILE_ID), {
      message: "The upload was rejected; its bytes were deleted.",
      code: "upload_rejected",
      fileStatus: "rejected",
      rejectedFor: undefined,
    });
  });
});

test("waitUntilAvailable gives up with not_ready once timeoutMs has passed, its last wait cut to the deadline", async () => {
  await withClock([answering("pending"), answering("scanning"), answering("scanning")], async ({ client, sleeps, api }) => {
    const error = await client.waitUntilAvailable(FILE_ID, { timeoutMs: 2500 }).catch((caught) => caught);
    assert.deepEqual(fieldsOf(error), {
      name: "PresignGateError",
      message: "The file is still scanning: its malware scan has not finished.",
      status: 200,
      code: "not_ready",
      fileStatus: "scanning",
      rejectedFor: undefined,
    });
    assert.deepEqual(sleeps, [1000, 1500]);
    assert.equal(api.handlers.length, 0, "a last look at the deadline");
  });
  // timeoutMs 0: one look.
  await withClock([answering("pending")], async ({ client, sleeps }) => {
    await assert.rejects(client.waitUntilAvailable(FILE_ID, { timeoutMs: 0 }), { code: "not_ready", fileStatus: "pending" });
    assert.deepEqual(sleeps, []);
  });
  // By default, after 15 minutes of waiting.
  const looks = [...Array(100)].map(() => answering("scanning"));
  await withClock(looks, async ({ client, sleeps }) => {
    await assert.rejects(client.waitUntilAvailable(FILE_ID), { code: "not_ready" });
    assert.equal(sleeps.reduce((sum, ms) => sum + ms, 0), 15 * 60 * 1000);
  });
});

test("waitUntilAvailable hands its signal to every look and wait, and an abort rejects with its reason", async () => {
  const controller = new AbortController();
  await withClock([answering("scanning"), answering("available")], async ({ client, signals, api }) => {
    await client.waitUntilAvailable(FILE_ID, { signal: controller.signal });
    assert.deepEqual(signals, [controller.signal]);
    assert.ok(api.calls.every(({ init }) => init.signal === controller.signal));
  });

  // The client's own timer: an abort during a wait ends it at once.
  const reason = new Error("left the page");
  const api = fakeApi([
    (method, url, init) => {
      setTimeout(() => controller.abort(reason), 0);
      return json(200, file("scanning"));
    },
  ]);
  const { client } = gate(api.fetch, fakeXhr([]).XMLHttpRequest, { sleep: undefined });
  await assert.rejects(client.waitUntilAvailable(FILE_ID, { signal: controller.signal, intervalMs: 600_000 }), reason);
});

test("a download of a file not available is not_ready with the file's status, and never reaches storage", async () => {
  const notReady = (status) => () =>
    json(409, { error: { code: "not_ready", message: `the file is not available for download: it is ${status}`, status } });
  const api = fakeApi([notReady("scanning"), notReady("rejected"), () => json(404, { error: { code: "not_found", message: "no such file" } })]);
  const { client } = gate(api.fetch, fakeXhr([]).XMLHttpRequest);
  const error = await client.download(FILE_ID).catch((caught) => caught);
  assert.deepEqual(fieldsOf(error), {
    name: "PresignGateError",
    message: "the file is not available for download: it is scanning",
    status: 409,
    code: "not_ready",
    fileStatus: "scanning",
    rejectedFor: undefined,
  });
  await assert.rejects(client.downloadUrl(FILE_ID), { status: 409, code: "not_ready", fileStatus: "rejected" });
  await assert.rejects(client.downloadUrl(FILE_ID), { status: 404, code: "not_found", fileStatus: undefined });
  assert.deepEqual(api.calls.map(({ path }) => path), Array(3).fill(`/prod/files/${FILE_ID}/download-url`));
});

test("resume returns a file already scanning as it is, and refuses a rejected one with its reason", async () => {
  const reserved = new Blob([randomBytes(35)]);
  const storage = fakeXhr([]);
  const scanning = multipartApi(reserved, { partSize: 10, status: "scanning" });
  const record = await gate(scanning.fetch, storage.XMLHttpRequest).client.resume(FILE_ID, reserved);
  assert.equal(record.status, "scanning");
  assert.deepEqual(scanning.log.calls, [`GET /files/${FILE_ID}`]);

  const rejected = fakeApi([answering("rejected", { rejectedFor: "unscannable" })]);
  await assert.rejects(gate(rejected.fetch, storage.XMLHttpRequest).client.resume(FILE_ID, reserved), {
    code: "upload_rejected",
    fileStatus: "rejected",
    rejectedFor: "unscannable",
  });
  assert.equal(rejected.handlers.length, 0);
  assert.equal(storage.requests.length, 0);
});

test("an upload the API rejected names why, as complete answers it when the verdict came first", async () => {
  const { apiErrorOf } = await import("../../client/errors.js");
  const body = { error: { code: "upload_rejected", message: "upload rejected: the malware scan found a threat in it", rejectedFor: "malware" } };
  const error = apiErrorOf(422, JSON.stringify(body));
  assert.ok(error instanceof PresignGateError);
  assert.equal(error.code, "upload_rejected");
  assert.equal(error.rejectedFor, "malware");
  assert.equal(error.fileStatus, undefined);
  assert.equal(apiErrorOf(422, JSON.stringify({ error: { code: "upload_rejected", message: "size" } })).rejectedFor, undefined);
});
