// The Uppy adapter with Uppy's own @uppy/core and @uppy/aws-s3 (pinned in package.json) in Node,
// against a fake gate and a fake XMLHttpRequest: which requests Uppy makes for a file above the
// multipart threshold, that it follows the server's part plan exactly, and that a retry after a
// failed part resumes from the parts listed. tests/browser/chromium.test.mjs runs the adapter in
// Chromium against the real local stack.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";

import Uppy from "@uppy/core";
import AwsS3 from "@uppy/aws-s3";

import { usePresignGate, s3Answer } from "../../client/uppy-presign-gate.js";
import { PresignGateError, browserMaySet } from "../../client/presign-gate.js";
import { READABLE_STORAGE_HEADERS } from "./fakes.mjs";

const MIB = 1024 * 1024;
const PART_SIZE = 5 * MIB;
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("base64");

/**
 * A stand-in for PresignGate: records calls, plans parts of PART_SIZE above 8 MiB. As the client
 * and server do, a multipart reservation says `partSha256` unless reserved with `sha256: false`
 * (`partSha256` overrides what the server answers), and a part signed against it is refused 400.
 */
function fakeGate({ partSha256 } = {}) {
  const calls = [];
  const files = new Map();
  let next = 0;
  const gate = {
    // The API's threshold as the client learns it (GET /usage): the adapter plans by it.
    async resolveMultipartThreshold() {
      return 8 * MIB;
    },
    calls,
    async reserve(blob, options) {
      calls.push(["reserve", options.filename, options.multipart]);
      const id = `file-${++next}`;
      const multipart = options.multipart === true;
      const hashed = partSha256 ?? (multipart && options.sha256 !== false);
      files.set(id, { size: blob.size, stored: new Map(), partSha256: hashed });
      return {
        file: { id, filename: options.filename, size: blob.size, status: "pending" },
        upload: multipart
          ? { method: "MULTIPART", partSize: PART_SIZE, partCount: Math.ceil(blob.size / PART_SIZE), partSha256: hashed, expiresAt: later(86_400) }
          : { method: "PUT", url: `https://bucket.test/files/users/u/${id}?X-Amz-Signature=x`, headers: { "content-length": String(blob.size), "if-none-match": "*" }, expiresAt: later(300) },
      };
    },
    async signParts(id, parts) {
      calls.push(["signParts", id, parts.map((p) => [p.partNumber, p.sha256])]);
      // POST /files/{id}/parts (README, "API"): a `sha256` missing on a partSha256 upload, or
      // given on one without, is a 400 invalid_request.
      const wrong = parts.find((p) => Boolean(p.sha256) !== files.get(id).partSha256);
      if (wrong) {
        throw new PresignGateError(`partNumber ${wrong.partNumber}: sha256 differs from partSha256`, {
          status: 400,
          code: "invalid_request",
        });
      }
      return parts.map(({ partNumber, sha256: digest }) => ({
        partNumber,
        method: "PUT",
        url: `https://bucket.test/files/users/u/${id}?partNumber=${partNumber}&uploadId=s3-secret&X-Amz-Signature=x`,
        headers: { "content-length": "0", ...(digest ? { "x-amz-checksum-sha256": digest } : {}) },
        expiresAt: later(300),
      }));
    },
    async parts(id) {
      calls.push(["parts", id]);
      const { size, stored } = files.get(id);
      return {
        partSha256: files.get(id).partSha256,
        partSize: PART_SIZE,
        partCount: Math.ceil(size / PART_SIZE),
        parts: [...stored].map(([partNumber, part]) => ({ partNumber, ...part })),
      };
    },
    async complete(id) {
      calls.push(["complete", id]);
      return { id, status: "available", etag: '"whole-3"', size: files.get(id).size };
    },
    async delete(id) {
      calls.push(["delete", id]);
    },
    /** What the fake bucket holds of `id`: partNumber -> { size, etag }. */
    stored: (id) => files.get(id).stored,
  };
  return gate;
}

const later = (seconds) => new Date(Date.now() + seconds * 1000).toISOString();

/** Uppy's requests: data: URLs are answered with their body, bucket URLs by `storage`. */
function installXhr(storage) {
  const requests = [];
  const refused = [];
  class FakeXMLHttpRequest {
    upload = {};
    status = 0;
    statusText = "";
    responseText = "";
    #headers = {};
    #responseHeaders = {};
    open(method, url) {
      Object.assign(this, { method, url });
    }
    setRequestHeader(name, value) {
      // As a browser: a header a page may not set is dropped (Chromium logs "Refused to set
      // unsafe header").
      if (!browserMaySet(name)) return void refused.push(name.toLowerCase());
      this.#headers[name.toLowerCase()] = value;
    }
    get requestHeaders() {
      return this.#headers;
    }
    getResponseHeader(name) {
      // Only what the bucket's CORS rule exposes (and the safelisted ones) is readable; data: URLs
      // are the page's own.
      if (!this.url.startsWith("data:") && !READABLE_STORAGE_HEADERS.has(name.toLowerCase())) return null;
      return this.#responseHeaders[name.toLowerCase()] ?? null;
    }
    abort() {}
    send(body) {
      this.body = body;
      requests.push(this);
      setTimeout(async () => {
        if (this.url.startsWith("data:")) {
          this.status = 200;
          this.responseText = decodeURIComponent(this.url.slice(this.url.indexOf(",") + 1));
          this.#responseHeaders = { "content-type": "application/xml" };
        } else {
          const { status, headers = {}, text = "" } = await storage(this);
          this.status = status;
          this.#responseHeaders = headers;
          this.responseText = text;
          this.upload.onprogress?.({ lengthComputable: true, loaded: body?.size ?? 0, total: body?.size ?? 0 });
        }
        this.onload?.();
      }, 0);
    }
  }
  const original = globalThis.XMLHttpRequest;
  globalThis.XMLHttpRequest = FakeXMLHttpRequest;
  return { requests, refused, restore: () => (globalThis.XMLHttpRequest = original) };
}

let xhr;
afterEach(() => xhr?.restore());

function uppyWith(gate, options) {
  // infoTimeout 0: an error's info message is hidden at once, so no 5 s timer holds the process
  // (make mutants-js runs this file once per mutant).
  const uppy = new Uppy({ autoProceed: false, infoTimeout: 0 });
  usePresignGate(uppy, AwsS3, gate, options);
  const available = [];
  uppy.on("presign-gate:available", (file, record) => available.push([file.name, record.id]));
  const errors = [];
  uppy.on("upload-error", (file, error) => errors.push([file?.name, error.message]));
  return { uppy, available, errors };
}

/** The bucket stores every part PUT, keyed by the part number in its URL. */
const bucket = (gate, { failOnce } = {}) => {
  let failed = false;
  return async (request) => {
    const url = new URL(request.url);
    const id = url.pathname.split("/").at(-1);
    const partNumber = Number(url.searchParams.get("partNumber"));
    if (!partNumber) return { status: 200, headers: { etag: '"single"' } };
    if (partNumber === failOnce && !failed) {
      failed = true;
      return { status: 400, headers: { "content-type": "application/xml" }, text: "<Error><Code>BadDigest</Code></Error>" };
    }
    const bytes = Buffer.from(await request.body.arrayBuffer());
    const etag = `"md5-of-${partNumber}"`;
    gate.stored(id).set(partNumber, { size: bytes.length, etag });
    return { status: 200, headers: { etag } };
  };
};

test("a file above the threshold goes through Uppy's multipart mode with the server's plan; a small one as one PUT", async () => {
  const gate = fakeGate();
  xhr = installXhr(bucket(gate));
  const { uppy, available, errors } = uppyWith(gate);
  const big = randomBytes(11 * MIB);
  uppy.addFile({ name: "big.bin", type: "application/octet-stream", data: new Blob([big]) });
  uppy.addFile({ name: "small.txt", type: "text/plain", data: new Blob(["small"]) });
  await uppy.upload();
  assert.deepEqual(errors, []);
  assert.deepEqual(available.map(([name]) => name).sort(), ["big.bin", "small.txt"]);

  const reserved = gate.calls.filter(([call]) => call === "reserve").map(([, name, multipart]) => [name, multipart]).sort();
  assert.deepEqual(reserved, [["big.bin", true], ["small.txt", false]]);
  // Uppy cut the file exactly as the server planned, and each part's digest was signed.
  const parts = xhr.requests.filter((r) => r.url.includes("partNumber="));
  assert.deepEqual(parts.map((r) => r.body.size), [PART_SIZE, PART_SIZE, MIB]);
  const signed = gate.calls.filter(([call]) => call === "signParts").flatMap(([, , list]) => list);
  assert.deepEqual(signed, [
    [1, sha256(big.subarray(0, PART_SIZE))],
    [2, sha256(big.subarray(PART_SIZE, 2 * PART_SIZE))],
    [3, sha256(big.subarray(2 * PART_SIZE))],
  ]);
  assert.ok(parts.every((r) => r.requestHeaders["x-amz-checksum-sha256"]), "the signed digest is sent");
  // The gate's part URLs list content-length (a browser sets it itself and refuses a page's).
  assert.deepEqual(xhr.refused, [], "no header a page may not set reached the XMLHttpRequest");
  // Uppy's own S3 requests for the server's steps went to data: URLs, never to the bucket.
  const own = xhr.requests.filter((r) => r.url.startsWith("data:")).map((r) => r.method);
  assert.deepEqual(own, ["POST", "POST"], "CreateMultipartUpload and CompleteMultipartUpload");
  assert.ok(xhr.requests.every((r) => r.url.startsWith("data:") || r.url.startsWith("https://bucket.test/files/users/u/")));
  // Confirmed once each: the multipart one by its completion.
  assert.equal(gate.calls.filter(([call]) => call === "complete").length, 2);
});

test("without digests part URLs come in one batch; a retry after a failed part resumes from ListParts", async () => {
  const gate = fakeGate();
  xhr = installXhr(bucket(gate, { failOnce: 2 }));
  const { uppy, available, errors } = uppyWith(gate, { sha256: false });
  const fileId = uppy.addFile({ name: "big.bin", type: "application/octet-stream", data: new Blob([randomBytes(11 * MIB)]) });
  await uppy.upload();
  assert.equal(errors.length, 1, "part 2 was refused");
  assert.deepEqual(available, []);
  const batches = gate.calls.filter(([call]) => call === "signParts").map(([, , list]) => list.map(([n]) => n));
  assert.deepEqual(batches[0], [1, 2, 3]);

  await uppy.retryUpload(fileId);
  assert.deepEqual(available.map(([name]) => name), ["big.bin"]);
  assert.ok(gate.calls.some(([call]) => call === "parts"), "Uppy listed the stored parts");
  const sentAgain = xhr.requests.filter((r) => r.url.includes("partNumber=")).map((r) => new URL(r.url).searchParams.get("partNumber"));
  assert.deepEqual(sentAgain, ["1", "2", "2", "3"], "only the refused part and the unsent one after the retry");
  assert.deepEqual([...gate.stored(available[0][1]).keys()].sort(), [1, 2, 3]);
});

test("the reservation decides whether parts are hashed, whatever the adapter's sha256 option", async () => {
  for (const [partSha256, option] of [[false, undefined], [true, false]]) {
    const gate = fakeGate({ partSha256 });
    xhr = installXhr(bucket(gate));
    const { uppy, available, errors } = uppyWith(gate, option === undefined ? undefined : { sha256: option });
    uppy.addFile({ name: "big.bin", type: "application/octet-stream", data: new Blob([randomBytes(11 * MIB)]) });
    await uppy.upload();
    assert.deepEqual(errors, [], `partSha256 ${partSha256}: the gate refused no part`);
    assert.deepEqual(available.map(([name]) => name), ["big.bin"]);
    const signed = gate.calls.filter(([call]) => call === "signParts").flatMap(([, , list]) => list);
    assert.equal(signed.length >= 3, true);
    assert.ok(signed.every(([, digest]) => Boolean(digest) === partSha256), `partSha256 ${partSha256}`);
    xhr.restore();
    uppy.destroy();
  }
});

test("removing a file during its multipart upload deletes it through the API", async () => {
  const gate = fakeGate();
  let uppy;
  let fileId;
  xhr = installXhr(async (request) => {
    if (request.url.includes("partNumber=1")) uppy.removeFile(fileId);
    return { status: 200, headers: { etag: '"e"' } };
  });
  ({ uppy } = uppyWith(gate, { sha256: false }));
  fileId = uppy.addFile({ name: "big.bin", type: "application/octet-stream", data: new Blob([randomBytes(11 * MIB)]) });
  await uppy.upload().catch(() => {});
  await new Promise((done) => setTimeout(done, 20));
  const deleted = gate.calls.filter(([call]) => call === "delete");
  assert.equal(deleted.length, 1);
  assert.equal(gate.calls.filter(([call]) => call === "complete").length, 0);
});

test("s3Answer escapes what it carries", () => {
  const { url } = s3Answer("ListPartsResult", {}, [{ PartNumber: 1, ETag: '"a<b>"' }]);
  const xml = decodeURIComponent(url.slice(url.indexOf(",") + 1));
  assert.match(url, /^data:application\/xml;charset=utf-8,/);
  assert.equal(xml, '<?xml version="1.0" encoding="UTF-8"?><ListPartsResult><Part><PartNumber>1</PartNumber><ETag>&quot;a&lt;b&gt;&quot;</ETag></Part></ListPartsResult>');
});
