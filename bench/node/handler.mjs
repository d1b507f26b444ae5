// The download-url route as a team would write it in Node.js: AWS SDK for JavaScript v3, clients
// made once at init, one consistent GetItem for the caller's record, then a presigned GetObject
// with the same response overrides the Rust function signs. Bundled with esbuild as SAM's esbuild
// build method bundles a function (see `make bench-lambda`) and run by bench/node/runtime.mjs on
// the same Runtime API, DynamoDB stand-in, record and event as the Rust and Python functions.
// Bench only.

import { DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const TABLE = process.env.FILES_TABLE;
const BUCKET = process.env.FILES_BUCKET;
const EXPIRES_IN = 300;

// Region, credentials and the DynamoDB endpoint come from the environment, as in Lambda.
const dynamodb = new DynamoDBClient({});
const s3 = new S3Client({});

/**
 * @param {number} statusCode
 * @param {object} body
 */
function answer(statusCode, body) {
  return {
    statusCode,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
    body: JSON.stringify(body),
  };
}

/** @param {any} event an API Gateway HTTP API (payload 2.0) event with JWT claims */
export async function handler(event) {
  const sub = event.requestContext.authorizer.jwt.claims.sub;
  const fileId = event.rawPath.split("/")[2];
  const { Item: item } = await dynamodb.send(
    new GetItemCommand({
      TableName: TABLE,
      Key: { owner: { S: sub }, fileId: { S: fileId } },
      ConsistentRead: true,
    }),
  );
  if (item === undefined) {
    return answer(404, { error: { code: "not_found" } });
  }
  if (item.status.S !== "available") {
    return answer(409, { error: { code: "not_ready" } });
  }
  const url = await getSignedUrl(
    s3,
    new GetObjectCommand({
      Bucket: BUCKET,
      Key: item.objectKey.S,
      ResponseContentType: item.contentType.S,
      ResponseContentDisposition: `attachment; filename="${item.filename.S}"`,
    }),
    { expiresIn: EXPIRES_IN },
  );
  const expiresAt = new Date(Date.now() + EXPIRES_IN * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  return answer(200, { method: "GET", url, expiresAt });
}
