// The Uppy adapter's own rules, request by request: what `signRequest` refuses, how it caches and
// batches part URLs, and the XML it hands Uppy for the steps the server does. The adapter is
// installed on a stand-in for Uppy's host API that keeps the options it was given, so each rule is
// driven directly; tests/browser/uppy-adapter.test.mjs runs the same adapter inside Uppy itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";

import Uppy from "@uppy/core";
import AwsS3 from "@uppy/aws-s3";

import { objectKeyOf, s3Answer, usePresignGate } from "../../client/uppy-presign-gate.js";

const MIB = 1024 * 1024;
const THRESHOLD = 8 * MIB;
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("base64");
const TICKET = "presign-gate-ticket/";

/**
 * Uppy's host API as the adapter uses it: processors, `use` (keeping the plugin's options),
 * `getFile`, `emit` (recorded), plugins by id.
 */
function fakeUppy(files = new Map()) {
  const host = {
    files,
    events: [],
    pre: new Set(),
    post: new Set(),
    plugins: new Map(),
    options: null,
    addPreProcessor: (fn) => host.pre.add(fn),
    removePreProcessor: (fn) => host.pre.delete(fn),
    addPostProcessor: (fn) => host.post.add(fn),
    removePostProcessor: (fn) => host.post.delete(fn),
    use(Plugin, options) {
      host.options = options;
      host.plugins.set(options.id, { id: options.id, Plugin });
      return host;
    },
    getPlugin: (id) => host.plugins.get(id),
    removePlugin: (plugin) => host.plugins.delete(plugin.id),
    getFile: (id) => files.get(id),
    emit: (...event) => host.events.push(event),
    /** Runs the adapter's pre-processors, then its post-processors, over `ids`. */
    preprocess: (ids) => Promise.all([...host.pre].map((fn) => fn(ids))),
    postprocess: (ids) => Promise.all([...host.post].map((fn) => fn(ids))),
  };
  return host;
}

/**
 * A stand-in for PresignGate: plans `partSize` parts above THRESHOLD, signs part URLs that live
 * `urlLifetimeMs` (from `now()`), and records each call. `partSha256: null` answers as a server
 * too old to say.
 */
function fakeGate({ partSize = 5 * MIB, partSha256 = false, urlLifetimeMs = 300_000, now = () => Date.now(), complete, waitUntilAvailable } = {}) {
  const calls = [];
  return {
    calls,
    async waitUntilAvailable(id) {
      calls.push(["waitUntilAvailable", id]);
      if (!waitUntilAvailable) throw new Error(`no scan to wait for: ${id}`);
      return waitUntilAvailable(id);
    },
    signed: () => calls.filter(([name]) => name === "signParts").map(([, , parts]) => parts),
    async resolveMultipartThreshold() {
      return THRESHOLD;
    },
    async reserve(blob, options) {
      calls.push(["reserve", options.filename, options.multipart]);
      const id = `record-${calls.length}`;
      return {
        file: { id, size: blob.size, status: "pending" },
        upload: options.multipart
          ? { method: "MULTIPART", partSize, partCount: Math.ceil(blob.size / partSize), ...(partSha256 === null ? {} : { partSha256 }), expiresAt: new Date(now() + 86_400_000).toISOString() }
          : { method: "PUT", url: `https://bucket.test/b/users/u/${id}?X-Amz-Signature=x`, headers: { "content-length": String(blob.size), "if-none-match": "*" }, expiresAt: new Date(now() + 300_000).toISOString() },
      };
    },
    async signParts(id, parts) {
      calls.push(["signParts", id, parts.map(({ partNumber, sha256: digest }) => (digest ? [partNumber, digest] : partNumber))]);
      return parts.map(({ partNumber }) => ({
        partNumber,
        url: `https://bucket.test/b/users/u/${id}?partNumber=${partNumber}&X-Amz-Signature=s${calls.length}`,
        headers: { "content-length": "1" },
        expiresAt: new Date(now() + urlLifetimeMs).toISOString(),
      }));
    },
    async parts(id) {
      calls.push(["parts", id]);
      return { parts: [{ partNumber: 1, etag: '"e1"', size: partSize }] };
    },
    async complete(id) {
      calls.push(["complete", id]);
      if (complete) return complete(id);
      return { id, status: "available", etag: '"whole-2"' };
    },
    async delete(id) {
      calls.push(["delete", id]);
    },
  };
}

/** An Uppy file of `size` bytes (random content). */
const uppyFile = (id, size, extra = {}) => ({ id, name: `${id}.bin`, type: "application/octet-stream", size, data: new Blob([randomBytes(size)]), ...extra });

/** Installs the adapter on a fake host with `files`, reserves the large ones as Uppy would. */
async function installed(gate, files, options) {
  const host = fakeUppy(new Map(files.map((file) => [file.id, file])));
  const uninstall = usePresignGate(host, AwsS3, gate, options);
  await host.preprocess(files.map((file) => file.id));
  return { host, uninstall, sign: host.options.signRequest };
}

/** The XML a `data:` URL of `s3Answer` carries. */
const xmlOf = ({ url }) => decodeURIComponent(url.slice(url.indexOf(",") + 1));

test("signRequest refuses what the server did not reserve: a key of Uppy's own, a removed file, a method S3 has no use for", async () => {
  const gate = fakeGate();
  const { host, sign } = await installed(gate, [uppyFile("small", 10), uppyFile("big", 9 * MIB)]);
  await assert.rejects(sign({ method: "PUT", key: "uploads/small.bin" }), { message: "Presign Gate signs no PUT request of Uppy's own." });
  await assert.rejects(sign({ method: "GET", key: TICKET + "small" }), { message: "Presign Gate signs no GET request of Uppy's own." });
  await assert.rejects(sign({ method: "PUT", key: TICKET + "gone" }), { message: "The file was removed before its upload started." });
  // CreateMultipartUpload of a file not reserved yet, of a file reserved as one PUT, and a PUT of
  // a file reserved as multipart.
  await assert.rejects(sign({ method: "POST", key: TICKET + "small" }), { message: "Presign Gate reserved no multipart upload for this file." });
  await sign({ method: "PUT", key: TICKET + "small" });
  await assert.rejects(sign({ method: "POST", key: TICKET + "small" }), { message: "Presign Gate reserved no multipart upload for this file." });
  await assert.rejects(sign({ method: "PUT", key: TICKET + "big" }), { message: "This file was reserved as a multipart upload." });
  // A request naming an upload id the adapter did not reserve, or a method no step uses.
  await assert.rejects(sign({ method: "PUT", key: TICKET + "big", uploadId: "someone-else", partNumber: 1 }), {
    message: "Presign Gate signs parts only of the multipart uploads it reserved.",
  });
  await assert.rejects(sign({ method: "PUT", key: TICKET + "small", uploadId: "record-2", partNumber: 1 }), {
    message: "Presign Gate signs parts only of the multipart uploads it reserved.",
  }, "the single PUT's record");
  const uploadId = xmlOf(await sign({ method: "POST", key: TICKET + "big" })).match(/<UploadId>([^<]*)</)[1];
  await assert.rejects(sign({ method: "HEAD", key: TICKET + "big", uploadId }), { message: "Presign Gate signs no HEAD request of Uppy's own." });
  await assert.rejects(sign({ method: "PUT", key: TICKET + "big", uploadId }), { message: "Presign Gate signs no PUT request of Uppy's own." });
  assert.match(xmlOf(await sign({ method: "GET", key: TICKET + "big", uploadId, partNumber: 1 })), /<ListPartsResult>/, "a GET is ListParts");
  assert.ok(!gate.calls.some(([name]) => name === "delete"), "an unknown method deletes nothing");
  // Part numbers outside the server's plan of 2 parts.
  for (const partNumber of [0, 3, 1.5]) {
    await assert.rejects(sign({ method: "PUT", key: TICKET + "big", uploadId, partNumber }), {
      message: `Part ${partNumber} is outside the server's plan of 2 parts.`,
    });
  }
  // The file removed while its parts are hashed.
  const hashing = fakeGate({ partSha256: true });
  const withDigests = await installed(hashing, [uppyFile("big", 9 * MIB)]);
  const id = xmlOf(await withDigests.sign({ method: "POST", key: TICKET + "big" })).match(/<UploadId>([^<]*)</)[1];
  withDigests.host.files.delete("big");
  await assert.rejects(withDigests.sign({ method: "PUT", key: TICKET + "big", uploadId: id, partNumber: 1 }), {
    message: "The file was removed during its upload.",
  });
  assert.equal(host.options.generateObjectKey({ id: "small" }), TICKET + "small");
});

test("a single PUT is the reservation's URL with the headers a page may set, keyed as the server keyed it", async () => {
  const gate = fakeGate();
  const { sign } = await installed(gate, [uppyFile("small", 10)]);
  const signed = await sign({ method: "PUT", key: TICKET + "small" });
  assert.deepEqual(signed.headers, { "if-none-match": "*" }, "content-length is the browser's to set");
  assert.equal(signed.key, "users/u/record-1");
  assert.match(signed.url, /^https:\/\/bucket\.test\/b\/users\/u\/record-1\?/);
});

test("the steps S3 would answer are done through the API and answered as S3's XML", async () => {
  const gate = fakeGate();
  const { sign } = await installed(gate, [uppyFile("big", 9 * MIB)]);
  const created = xmlOf(await sign({ method: "POST", key: TICKET + "big" }));
  const uploadId = created.match(/<UploadId>([^<]*)</)[1];
  assert.equal(created, `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Key>${TICKET}big</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`);
  assert.equal(
    xmlOf(await sign({ method: "GET", key: TICKET + "big", uploadId })),
    `<?xml version="1.0" encoding="UTF-8"?><ListPartsResult><Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag><Size>${5 * MIB}</Size></Part></ListPartsResult>`,
  );
  assert.equal(
    xmlOf(await sign({ method: "POST", key: TICKET + "big", uploadId })),
    `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Location>presign-gate:files/${uploadId}</Location><Key>${TICKET}big</Key><ETag>&quot;whole-2&quot;</ETag></CompleteMultipartUploadResult>`,
  );
  assert.equal(
    xmlOf(await sign({ method: "DELETE", key: TICKET + "big", uploadId })),
    '<?xml version="1.0" encoding="UTF-8"?><AbortMultipartUploadResult></AbortMultipartUploadResult>',
  );
  assert.deepEqual(gate.calls.slice(1).map(([name]) => name), ["parts", "complete", "delete"]);
  // A record without an ETag: an empty one.
  const bare = fakeGate({ complete: (id) => ({ id, status: "available" }) });
  const other = await installed(bare, [uppyFile("big", 9 * MIB)]);
  const id = xmlOf(await other.sign({ method: "POST", key: TICKET + "big" })).match(/<UploadId>([^<]*)</)[1];
  assert.match(xmlOf(await other.sign({ method: "POST", key: TICKET + "big", uploadId: id })), /<ETag><\/ETag><\/CompleteMultipartUploadResult>$/);
  // Deleted: the upload id is no longer one of ours.
  await assert.rejects(sign({ method: "PUT", key: TICKET + "big", uploadId, partNumber: 1 }), {
    message: "Presign Gate signs parts only of the multipart uploads it reserved.",
  });
});

test("without digests part URLs are signed ahead in batches of 100 and each is used once; a URL near its expiry is signed again", async () => {
  const gate = fakeGate({ partSize: 3 * MIB });
  const { sign } = await installed(gate, [uppyFile("big", 9 * MIB)], { sha256: false });
  const uploadId = xmlOf(await sign({ method: "POST", key: TICKET + "big" })).match(/<UploadId>([^<]*)</)[1];
  const part = (partNumber) => sign({ method: "PUT", key: TICKET + "big", uploadId, partNumber });
  const first = await part(1);
  assert.deepEqual(gate.signed(), [[1, 2, 3]]);
  assert.deepEqual(first.headers, {}, "content-length dropped");
  const second = await part(2);
  assert.deepEqual(gate.signed(), [[1, 2, 3]], "part 2 came with part 1");
  assert.notEqual(second.url, first.url);
  // Part 2 again (a retry): its URL was used, so it is signed again, alone (part 3's is fresh).
  await part(2);
  assert.deepEqual(gate.signed(), [[1, 2, 3], [2]]);
  await part(3);
  assert.deepEqual(gate.signed(), [[1, 2, 3], [2]]);
});

test("a cached part URL with 30 s or less to live is signed again; one with more is used", async () => {
  const realNow = Date.now;
  const frozen = realNow();
  Date.now = () => frozen;
  try {
    for (const [lifetime, expected] of [[30_000, [[1, 2, 3], [2, 3], [3]]], [30_001, [[1, 2, 3]]]]) {
      const gate = fakeGate({ partSize: 3 * MIB, urlLifetimeMs: lifetime, now: () => frozen });
      const { sign } = await installed(gate, [uppyFile("big", 9 * MIB)], { sha256: false });
      const uploadId = xmlOf(await sign({ method: "POST", key: TICKET + "big" })).match(/<UploadId>([^<]*)</)[1];
      for (const partNumber of [1, 2, 3]) await sign({ method: "PUT", key: TICKET + "big", uploadId, partNumber });
      assert.deepEqual(gate.signed(), expected, `URLs living ${lifetime} ms`);
    }
  } finally {
    Date.now = realNow;
  }
});

test("a plan of 150 parts is signed 100 URLs to a request", async () => {
  const gate = fakeGate({ partSize: MIB });
  const { sign } = await installed(gate, [uppyFile("big", 150 * MIB)], { sha256: false });
  const uploadId = xmlOf(await sign({ method: "POST", key: TICKET + "big" })).match(/<UploadId>([^<]*)</)[1];
  await sign({ method: "PUT", key: TICKET + "big", uploadId, partNumber: 1 });
  await sign({ method: "PUT", key: TICKET + "big", uploadId, partNumber: 101 });
  assert.deepEqual(gate.signed().map((parts) => [parts[0], parts.length]), [[1, 100], [101, 50]]);
});

test("a server that does not say whether parts carry a SHA-256 leaves it to the adapter's sha256 option", async () => {
  for (const option of [true, false]) {
    const gate = fakeGate({ partSha256: null, partSize: 5 * MIB });
    const file = uppyFile("big", 9 * MIB);
    const { sign } = await installed(gate, [file], { sha256: option });
    const uploadId = xmlOf(await sign({ method: "POST", key: TICKET + "big" })).match(/<UploadId>([^<]*)</)[1];
    await sign({ method: "PUT", key: TICKET + "big", uploadId, partNumber: 2 });
    const bytes = Buffer.from(await file.data.arrayBuffer());
    assert.deepEqual(gate.signed(), [option ? [[2, sha256(bytes.subarray(5 * MIB))]] : [2]], `sha256: ${option}`);
  }
});

test("Uppy's part size is the reservation's, and only for the file it was just asked about", async () => {
  const gate = fakeGate();
  const { host } = await installed(gate, [uppyFile("big", 9 * MIB), uppyFile("small", 10)]);
  const { shouldUseMultipart, getChunkSize } = host.options;
  assert.equal(shouldUseMultipart(host.files.get("big")), true);
  assert.equal(getChunkSize({ size: 9 * MIB }), 5 * MIB);
  assert.throws(() => getChunkSize({ size: 10 }), { message: "Presign Gate has no part plan for this file." });
  assert.equal(shouldUseMultipart(host.files.get("small")), false);
  assert.throws(() => getChunkSize({ size: 9 * MIB }), { message: "Presign Gate has no part plan for this file." });
});

test("the pre-processor reserves each file above the threshold once, and says so to Uppy", async () => {
  const gate = fakeGate();
  const files = [uppyFile("big", THRESHOLD + 1), uppyFile("exact", THRESHOLD)];
  const { host } = await installed(gate, files);
  await host.preprocess(["big", "exact", "gone"]);
  assert.deepEqual(gate.calls.map(([name, file, multipart]) => [name, file, multipart]), [["reserve", "big.bin", true]]);
  assert.deepEqual(host.events, [
    ["preprocess-progress", host.files.get("big"), { mode: "indeterminate", message: "Reserving" }],
    ["preprocess-complete", host.files.get("big")],
  ]);
});

test("the post-processor confirms each file it reserved, says so to Uppy, and reports a refused confirmation as the file's error", async () => {
  const gate = fakeGate({ complete: (id) => (id === "record-2" ? Promise.reject(new Error("upload_missing")) : { id, status: "available" }) });
  const { host, sign } = await installed(gate, [uppyFile("a", 10), uppyFile("b", 10), uppyFile("c", 10)]);
  await sign({ method: "PUT", key: TICKET + "a" });
  await sign({ method: "PUT", key: TICKET + "b" });
  host.events.length = 0;
  // "c" was never reserved, "gone" is not Uppy's any more.
  await host.postprocess(["a", "b", "c", "gone"]);
  const [a, b, c] = [host.files.get("a"), host.files.get("b"), host.files.get("c")];
  assert.deepEqual(host.events.filter(([, file]) => file === c), [], "not reserved, not confirmed");
  assert.deepEqual(host.events.filter(([, file]) => file === a), [
    ["postprocess-progress", a, { mode: "indeterminate", message: "Confirming" }],
    ["postprocess-complete", a],
    ["presign-gate:available", a, { id: "record-1", status: "available" }],
  ]);
  const refused = host.events.filter(([, file]) => file === b);
  assert.deepEqual(refused.map(([name]) => name), ["postprocess-progress", "upload-error"]);
  assert.equal(refused[1][2].message, "upload_missing");
  assert.deepEqual(gate.calls.filter(([name]) => name === "complete").map(([, id]) => id).sort(), ["record-1", "record-2"]);
  // A file that failed its upload is not confirmed.
  const failed = await installed(fakeGate(), [uppyFile("d", 10)]);
  await failed.sign({ method: "PUT", key: TICKET + "d" });
  failed.host.files.get("d").error = "S3 refused it";
  await failed.host.postprocess(["d"]);
  assert.deepEqual(failed.host.events, []);
});

test("a file still scanning is available to Uppy only once its scan finds it clean; a rejection is its error", async () => {
  const rejected = Object.assign(new Error("upload rejected: malware"), { code: "upload_rejected", rejectedFor: "malware" });
  const gate = fakeGate({
    complete: (id) => ({ id, status: "scanning" }),
    waitUntilAvailable: (id) => (id === "record-2" ? Promise.reject(rejected) : { id, status: "available" }),
  });
  const { host, sign } = await installed(gate, [uppyFile("a", 10), uppyFile("b", 10)]);
  await sign({ method: "PUT", key: TICKET + "a" });
  await sign({ method: "PUT", key: TICKET + "b" });
  host.events.length = 0;
  await host.postprocess(["a", "b"]);
  const [a, b] = [host.files.get("a"), host.files.get("b")];
  assert.deepEqual(host.events.filter(([, file]) => file === a), [
    ["postprocess-progress", a, { mode: "indeterminate", message: "Confirming" }],
    ["postprocess-progress", a, { mode: "indeterminate", message: "Scanning for malware" }],
    ["postprocess-complete", a],
    ["presign-gate:available", a, { id: "record-1", status: "available" }],
  ]);
  const refused = host.events.filter(([, file]) => file === b);
  assert.deepEqual(refused.map(([name]) => name), ["postprocess-progress", "postprocess-progress", "upload-error"]);
  assert.equal(refused[2][2], rejected);
  assert.deepEqual(gate.calls.filter(([name]) => name === "waitUntilAvailable").map(([, id]) => id).sort(), ["record-1", "record-2"]);
});

test("`limit` reaches Uppy's AwsS3 only when given; the returned function removes everything installed", async () => {
  const limited = await installed(fakeGate(), [], { limit: 2 });
  assert.equal(limited.host.options.limit, 2);
  const plain = await installed(fakeGate(), []);
  assert.equal("limit" in plain.host.options, false, "AwsS3 keeps its own default");

  const uppy = new Uppy();
  const uninstall = usePresignGate(uppy, AwsS3, fakeGate());
  assert.ok(uppy.getPlugin("PresignGate:AwsS3"), "installed under its own id, beside any AwsS3 of the page's");
  uninstall();
  assert.equal(uppy.getPlugin("PresignGate:AwsS3"), undefined);
  uninstall();
  assert.equal(plain.host.pre.size, 1);
  plain.uninstall();
  assert.deepEqual([plain.host.pre.size, plain.host.post.size, plain.host.plugins.size], [0, 0, 0]);
  uppy.destroy();
});

test("s3Answer escapes every character XML reserves and writes each field and part in order", () => {
  const xml = xmlOf(s3Answer("R", { A: `<>&'"`, B: 2 }, [{ N: 1, E: "x" }, { N: 2, E: "y" }]));
  assert.equal(
    xml,
    '<?xml version="1.0" encoding="UTF-8"?><R><A>&lt;&gt;&amp;&apos;&quot;</A><B>2</B><Part><N>1</N><E>x</E></Part><Part><N>2</N><E>y</E></Part></R>',
  );
  assert.equal(xmlOf(s3Answer("Empty", {})), '<?xml version="1.0" encoding="UTF-8"?><Empty></Empty>');
});

test("objectKeyOf reads users/<owner>/<id> from a path-style or virtual-hosted URL, percent-decoded", () => {
  assert.equal(objectKeyOf("http://127.0.0.1:9100/files-bucket/users/alice/f1?X-Amz-Signature=s"), "users/alice/f1");
  assert.equal(objectKeyOf("https://files-bucket.s3.us-east-1.amazonaws.com/users/a%7Cb/f2?x=1"), "users/a|b/f2");
});
