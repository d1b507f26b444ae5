// The local S3 as the account's administrator sees it, for checking what a browser test left in
// the bucket: ListMultipartUploads (which local-aws answers as S3 does, local/src/uploads.rs),
// GetObject and GetObjectTagging (the tag GuardDuty's stand-in writes, local/src/guardduty/),
// signed with Signature Version 4 in the Authorization header as the AWS SDKs sign it (AWS General
// Reference, "Signature Version 4 signing process"; Amazon S3 API Reference, "Authenticating
// Requests: Using the Authorization Header"). The key pair is scripts/local.sh's administrator's,
// known only to the stand-ins.
import { execFile } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { promisify } from "node:util";

const ADMINISTRATOR = { accessKey: "local-access-key", secretKey: "local-secret-key", region: "us-east-1" };

const sha256Hex = (data) => createHash("sha256").update(data).digest("hex");
const hmac = (key, data) => createHmac("sha256", key).update(data).digest();
/** RFC 3986 percent-encoding, as SigV4's canonical query string wants it. */
const encode = (text) => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** The headers that sign a GET of `url` with no body as `credentials`, for S3. */
function signedGet(url, { accessKey, secretKey, region }, now = new Date()) {
  const amzDate = now.toISOString().replace(/[-:]|\.\d{3}/g, "");
  const day = amzDate.slice(0, 8);
  const payloadHash = sha256Hex("");
  const query = [...url.searchParams]
    .map(([name, value]) => [encode(name), encode(value)])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
  const headers = { host: url.host, "x-amz-content-sha256": payloadHash, "x-amz-date": amzDate };
  const names = Object.keys(headers).sort();
  const canonical = ["GET", url.pathname, query, names.map((name) => `${name}:${headers[name]}\n`).join(""), names.join(";"), payloadHash].join("\n");
  const scope = `${day}/${region}/s3/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256Hex(canonical)].join("\n");
  const signingKey = ["s3", "aws4_request"].reduce(hmac, hmac(hmac(`AWS4${secretKey}`, day), region));
  const signature = createHmac("sha256", signingKey).update(stringToSign).digest("hex");
  const { host: _, ...sent } = headers;
  return {
    ...sent,
    authorization: `AWS4-HMAC-SHA256 Credential=${accessKey}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`,
  };
}

/**
 * The local S3 at `s3Url` with the template's bucket (as `local-aws --print-names` names it).
 * @param {string} s3Url @param {string} localAwsBin @param {string} cwd where template.yaml is
 */
export async function localS3(s3Url, localAwsBin, cwd) {
  const { stdout } = await promisify(execFile)(localAwsBin, ["--print-names"], { cwd });
  const bucket = /^FILES_BUCKET=(.+)$/m.exec(stdout)?.[1];
  if (!bucket) throw new Error(`local-aws --print-names named no bucket: ${stdout}`);
  /** A signed GET of `path` in the bucket with `query`: `{ status, text }`. */
  const get = async (path, query = {}) => {
    const url = new URL(`/${bucket}${path}`, s3Url);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    const response = await fetch(url, { headers: signedGet(url, ADMINISTRATOR) });
    return { status: response.status, text: await response.text() };
  };
  return {
    bucket,
    /** The multipart uploads in progress under `prefix`: `[{ key, uploadId }]` (one page). */
    async listMultipartUploads(prefix) {
      const { status, text } = await get("", { uploads: "", prefix });
      if (status !== 200) throw new Error(`ListMultipartUploads: ${status} ${text}`);
      return [...text.matchAll(/<Upload>([\s\S]*?)<\/Upload>/g)].map(([, upload]) => ({
        key: /<Key>([^<]*)<\/Key>/.exec(upload)?.[1],
        uploadId: /<UploadId>([^<]*)<\/UploadId>/.exec(upload)?.[1],
      }));
    },
    /**
     * GetObject of `key` with the administrator's header-signed request, which the bucket policy's
     * deny of unscanned objects (presigned requests only) leaves alone: `{ status, text }`, S3's
     * `<Error>` when refused (404 `NoSuchKey` for an object that is gone).
     */
    getObject: (key) => get(`/${key}`),
    /** The object's tags (GetObjectTagging): `{ name: value }`. */
    async objectTags(key) {
      const { status, text } = await get(`/${key}`, { tagging: "" });
      if (status !== 200) throw new Error(`GetObjectTagging: ${status} ${text}`);
      return Object.fromEntries(
        [...text.matchAll(/<Tag>\s*<Key>([^<]*)<\/Key>\s*<Value>([^<]*)<\/Value>\s*<\/Tag>/g)].map(([, name, value]) => [name, value]),
      );
    },
  };
}
