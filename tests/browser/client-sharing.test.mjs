// The client's sharing calls against a fake fetch: grants (`/files/{id}/grants`, `/shared`), share
// links (`/files/{id}/links`), each request's method, path (ids and subs percent-encoded), query
// and body, what comes back, the API's refusals as PresignGateError, and the caller's signal.
import { test } from "node:test";
import assert from "node:assert/strict";

import { PresignGate, PresignGateError } from "../../client/presign-gate.js";
import { API, EXPIRED_TOKEN, FILE_ID, fakeApi, forbidLogging, json } from "./fakes.mjs";

forbidLogging();

/** A client of `fetch` with fixed headers, no waiting between attempts, and no retries unless asked. */
const client = (fetch, extra = {}) =>
  new PresignGate({ apiUrl: API, headers: { authorization: "Bearer t" }, fetch, sleep: async () => {}, retry: { retries: 0 }, ...extra });

/** Subs and ids with every character a path segment must not carry as it is. */
const ODD_ID = "f/1 ?#%";
const ODD_ID_PATH = "f%2F1%20%3F%23%25";
const ODD_SUB = "google-oauth2|1@x/y";
const ODD_SUB_PATH = "google-oauth2%7C1%40x%2Fy";

const noContent = () => new Response(null, { status: 204 });
const bodyOf = (call) => (call.init.body === undefined ? undefined : JSON.parse(call.init.body));

test("grant, grants and revokeGrant: the file's grants route, its id and the grantee percent-encoded; the API's records come back as they are", async () => {
  const record = { grantee: "bob", grantedAt: "2026-12-01T10:00:00Z", expiresAt: null };
  const api = fakeApi([
    () => json(201, { grant: record }),
    () => json(201, { grant: { ...record, expiresAt: "2027-01-01T00:00:00Z" } }),
    () => json(201, { grant: record }),
    () => json(200, { grants: [record] }),
    noContent,
  ]);
  const gate = client(api.fetch);
  assert.deepEqual(await gate.grant(FILE_ID, "bob"), record);
  // A Date goes as RFC 3339 in UTC, a string as it is.
  const until = await gate.grant(ODD_ID, ODD_SUB, { expiresAt: new Date(Date.UTC(2027, 0, 1)) });
  assert.equal(until.expiresAt, "2027-01-01T00:00:00Z");
  await gate.grant(FILE_ID, "bob", { expiresAt: "2027-01-01T00:00:00+01:00" });
  assert.deepEqual(await gate.grants(ODD_ID), [record]);
  assert.equal(await gate.revokeGrant(ODD_ID, ODD_SUB), undefined);

  const [plain, dated, stringDated, listed, revoked] = api.calls;
  assert.deepEqual([plain.method, plain.path], ["POST", `/prod/files/${FILE_ID}/grants`]);
  assert.deepEqual(bodyOf(plain), { grantee: "bob" }, "no expiresAt: until revoked");
  assert.equal(plain.init.headers["content-type"], "application/json");
  assert.deepEqual([dated.method, dated.path], ["POST", `/prod/files/${ODD_ID_PATH}/grants`]);
  assert.deepEqual(bodyOf(dated), { grantee: ODD_SUB, expiresAt: "2027-01-01T00:00:00.000Z" });
  assert.deepEqual(bodyOf(stringDated), { grantee: "bob", expiresAt: "2027-01-01T00:00:00+01:00" });
  assert.deepEqual([listed.method, listed.path, bodyOf(listed)], ["GET", `/prod/files/${ODD_ID_PATH}/grants`, undefined]);
  assert.deepEqual([revoked.method, revoked.path, bodyOf(revoked)], ["DELETE", `/prod/files/${ODD_ID_PATH}/grants/${ODD_SUB_PATH}`, undefined]);
  for (const { init, query } of api.calls) {
    assert.equal(init.headers.authorization, "Bearer t");
    assert.equal(query.toString(), "");
  }
});

test("shared: one page of GET /shared, limit and nextToken as given; the API's nextToken, or null once the walk is over", async () => {
  const file = { owner: ODD_SUB, id: FILE_ID, filename: "a.txt", contentType: "text/plain", size: 3, grantedAt: "2026-12-01T10:00:00Z", expiresAt: null };
  const api = fakeApi([
    () => json(200, { files: [file], nextToken: "t1" }),
    () => json(200, { files: [] }),
    () => json(200, { files: [], nextToken: null }),
  ]);
  const gate = client(api.fetch);
  assert.deepEqual(await gate.shared({ limit: 1 }), { files: [file], nextToken: "t1" });
  assert.deepEqual(await gate.shared({ limit: 1, nextToken: "t1" }), { files: [], nextToken: null });
  // A caller may hand back the last page's `nextToken: null` as it came.
  assert.deepEqual(await gate.shared({ nextToken: null }), { files: [], nextToken: null });
  assert.deepEqual(
    api.calls.map(({ method, path, query }) => [method, path, query.toString()]),
    [["GET", "/prod/shared", "limit=1"], ["GET", "/prod/shared", "limit=1&nextToken=t1"], ["GET", "/prod/shared", ""]],
  );
  assert.equal(bodyOf(api.calls[0]), undefined);
});

test("sharedDownloadUrl: the owner and the id percent-encoded, disposition and expiresIn passed on; the URL and its expiry only", async () => {
  const api = fakeApi([
    () => json(200, { method: "GET", url: "https://bucket.example.test/k?X-Amz-Signature=s", expiresAt: "2026-12-01T10:05:00Z" }),
    () => json(200, { method: "GET", url: "https://bucket.example.test/k?X-Amz-Signature=t", expiresAt: "2026-12-01T10:06:00Z" }),
  ]);
  const gate = client(api.fetch);
  assert.deepEqual(await gate.sharedDownloadUrl(ODD_SUB, ODD_ID, { disposition: "inline", expiresIn: 60 }), {
    url: "https://bucket.example.test/k?X-Amz-Signature=s",
    expiresAt: "2026-12-01T10:05:00Z",
  });
  await gate.sharedDownloadUrl("alice", FILE_ID);
  const [asked, plain] = api.calls;
  assert.deepEqual([asked.method, asked.path], ["GET", `/prod/shared/${ODD_SUB_PATH}/${ODD_ID_PATH}/download-url`]);
  assert.deepEqual(Object.fromEntries(asked.query), { disposition: "inline", expiresIn: "60" });
  assert.deepEqual([plain.path, plain.query.toString()], [`/prod/shared/alice/${FILE_ID}/download-url`, ""]);
});

test("downloadShared: the shared URL fetched with none of the caller's headers; an expired one is signed again through the shared route, other refusals fail at once", async () => {
  const signed = [];
  const storage = [];
  const fetch = async (url, init) => {
    const parsed = new URL(url);
    if (parsed.hostname === "bucket.example.test") {
      storage.push(init);
      return parsed.searchParams.get("X-Amz-Signature") === "s1" ? new Response(EXPIRED_TOKEN, { status: 403 }) : new Response("shared bytes");
    }
    signed.push([parsed.pathname, parsed.searchParams.toString()]);
    return json(200, { url: `https://bucket.example.test/k?X-Amz-Signature=s${signed.length}`, expiresAt: "2030-01-01T00:00:00Z" });
  };
  const controller = new AbortController();
  const response = await client(fetch, { retry: { retries: 1 } }).downloadShared(ODD_SUB, FILE_ID, { disposition: "attachment", signal: controller.signal });
  assert.equal(await response.text(), "shared bytes");
  const route = `/prod/shared/${ODD_SUB_PATH}/${FILE_ID}/download-url`;
  assert.deepEqual(signed, [[route, "disposition=attachment"], [route, "disposition=attachment"]]);
  assert.deepEqual(storage.map((init) => [init.method, init.headers, init.credentials, init.signal]), [
    ["GET", undefined, "omit", controller.signal],
    ["GET", undefined, "omit", controller.signal],
  ]);

  const denied = fakeApi([
    () => json(200, { url: "https://bucket.example.test/k?X-Amz-Signature=d" }),
    () => new Response("<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", { status: 403 }),
  ]);
  const error = await client(denied.fetch, { retry: { retries: 2 } }).downloadShared("alice", FILE_ID).catch((e) => e);
  assert.ok(error instanceof PresignGateError);
  assert.deepEqual([error.code, error.status, error.storageCode, error.message], ["download_failed", 403, "AccessDenied", "Storage refused the download (AccessDenied)."]);
  assert.equal(denied.calls.length, 2, "no second URL for a refusal that is not an expiry");
});

test("createLink, links and revokeLink: the file's links route, the link id percent-encoded; the link with its URL once, then without", async () => {
  const created = {
    id: "k1", url: `${API}/links/k1?secret=s3cr3t`, createdAt: "2026-12-01T10:00:00Z", expiresAt: "2026-12-02T10:00:00Z", maxDownloads: 3,
  };
  const listed = { id: "k1", createdAt: "2026-12-01T10:00:00Z", expiresAt: "2026-12-02T10:00:00Z", maxDownloads: 3, downloads: 1 };
  const api = fakeApi([
    () => json(201, { link: created }),
    () => json(201, { link: { ...created, maxDownloads: null } }),
    () => json(200, { links: [listed] }),
    noContent,
  ]);
  const gate = client(api.fetch);
  assert.deepEqual(await gate.createLink(ODD_ID, { expiresIn: 86400, maxDownloads: 3 }), created);
  assert.equal((await gate.createLink(FILE_ID)).maxDownloads, null);
  assert.deepEqual(await gate.links(ODD_ID), [listed]);
  assert.equal(await gate.revokeLink(ODD_ID, "k/1 ?"), undefined);

  const [limited, unlimited, list, revoked] = api.calls;
  assert.deepEqual([limited.method, limited.path, bodyOf(limited)], ["POST", `/prod/files/${ODD_ID_PATH}/links`, { expiresIn: 86400, maxDownloads: 3 }]);
  assert.deepEqual([unlimited.path, bodyOf(unlimited)], [`/prod/files/${FILE_ID}/links`, {}], "the API's defaults: its longest life, any number of downloads");
  assert.deepEqual([list.method, list.path, bodyOf(list)], ["GET", `/prod/files/${ODD_ID_PATH}/links`, undefined]);
  assert.deepEqual([revoked.method, revoked.path, bodyOf(revoked)], ["DELETE", `/prod/files/${ODD_ID_PATH}/links/k%2F1%20%3F`, undefined]);
});

test("the API's refusals of sharing calls are PresignGateErrors with its status, code and message; quota_exceeded is not retried", async () => {
  const refusals = [
    [(gate) => gate.grant(FILE_ID, "alice"), 409, "conflict", "a file cannot be shared with its owner"],
    [(gate) => gate.grants(FILE_ID), 404, "not_found", "no such file"],
    [(gate) => gate.revokeGrant(FILE_ID, "carol"), 404, "not_found", "no such grant"],
    [(gate) => gate.shared({ nextToken: "bad" }), 400, "invalid_request", "nextToken is malformed"],
    [(gate) => gate.sharedDownloadUrl("alice", FILE_ID), 404, "not_found", "no such file"],
    [(gate) => gate.downloadShared("alice", FILE_ID), 404, "not_found", "no such file"],
    [(gate) => gate.createLink(FILE_ID), 409, "not_ready", "the file is not available"],
    [(gate) => gate.createLink(FILE_ID, { maxDownloads: 3 }), 429, "quota_exceeded", "too many live links"],
    [(gate) => gate.links(FILE_ID), 404, "not_found", "no such file"],
    [(gate) => gate.revokeLink(FILE_ID, "k1"), 404, "not_found", "no such link"],
  ];
  for (const [call, status, code, message] of refusals) {
    const api = fakeApi([() => json(status, { error: { code, message } })]);
    const error = await call(client(api.fetch, { retry: { retries: 3 } })).catch((e) => e);
    assert.ok(error instanceof PresignGateError, code);
    assert.deepEqual([error.status, error.code, error.message], [status, code, message]);
    assert.equal(api.calls.length, 1, `${code}: asked once`);
  }
});

test("every sharing request is made under the caller's signal, and none is sent once it has aborted", async () => {
  const answers = [
    () => json(201, { grant: {} }), () => json(200, { grants: [] }), noContent, () => json(200, { files: [] }),
    () => json(200, { url: "https://bucket.example.test/k" }), () => json(201, { link: {} }), () => json(200, { links: [] }), noContent,
  ];
  const calls = (gate, options) => [
    () => gate.grant(FILE_ID, "bob", options),
    () => gate.grants(FILE_ID, options),
    () => gate.revokeGrant(FILE_ID, "bob", options),
    () => gate.shared(options),
    () => gate.sharedDownloadUrl("alice", FILE_ID, options),
    () => gate.createLink(FILE_ID, options),
    () => gate.links(FILE_ID, options),
    () => gate.revokeLink(FILE_ID, "k1", options),
  ];
  const controller = new AbortController();
  const api = fakeApi([...answers]);
  for (const call of calls(client(api.fetch), { signal: controller.signal })) await call();
  assert.equal(api.calls.length, answers.length);
  assert.ok(api.calls.every(({ init }) => init.signal === controller.signal));

  const reason = new Error("the user left");
  const aborted = new AbortController();
  aborted.abort(reason);
  const idle = fakeApi([]);
  for (const call of [...calls(client(idle.fetch), { signal: aborted.signal }), () => client(idle.fetch).downloadShared("alice", FILE_ID, { signal: aborted.signal })]) {
    await assert.rejects(call(), (error) => error === reason);
  }
  assert.equal(idle.calls.length, 0);
});
