// Uppy's @uppy/aws-s3 (6.3 or later) uploading through Presign Gate.
//
// @uppy/aws-s3 6.x asks one function, `signRequest(request)`, for every S3 request it makes; the
// per-step hooks of earlier majors (`signPart`, `listParts`, `completeMultipartUpload`, ...) are
// gone. Ours answers:
//
// - A single PUT by reserving through the API (`POST /uploads`), so the server makes the object
//   key, the URL and the headers it signed; Uppy's own key is only a ticket that leads back to
//   its file. A post-processing step then confirms the file (`POST /files/{id}/complete`) and
//   waits for its malware scan (`waitUntilAvailable`).
// - Multipart, for files above the API's multipart threshold (`resolveMultipartThreshold`): the reservation is made before
//   Uppy's uploader starts (a pre-processor), because Uppy asks for the part size when it creates
//   the uploader. Uppy then uses exactly the server's plan: `shouldUseMultipart` says what the
//   reservation says and `getChunkSize` is its `partSize`. Each UploadPart is a URL from
//   `POST /files/{id}/parts`, signed for the part's exact length (and SHA-256). The steps S3 would
//   answer itself (CreateMultipartUpload, ListParts, CompleteMultipartUpload, AbortMultipartUpload)
//   are the server's here: it keeps the S3 upload id and never signs those requests for a
//   browser. The adapter does each through the API (the reservation, `GET /files/{id}/parts`,
//   `complete`, `DELETE /files/{id}`) and hands Uppy a `data:` URL holding the XML answer S3
//   would have sent, which is what Uppy's request then reads. A page with a Content-Security-
//   Policy must allow `connect-src data:` for this.
//
// Uppy never signs, keys or sizes anything itself: a request the adapter does not recognise, or
// a part number or length outside the server's plan, is refused (by the adapter or by S3).

import { browserMaySet, PART_URL_BATCH } from "./presign-gate.js";
import { sha256Base64 } from "./sha256.js";

const TICKET_PREFIX = "presign-gate-ticket/";
/** A cached part URL with less life left than this is signed again. */
const PART_URL_MARGIN_MS = 30_000;

/**
 * Installs @uppy/aws-s3 on `uppy`, uploading through `gate`. Returns a function that removes it.
 * @param {import("./uppy-presign-gate.js").UppyLike} uppy
 * @param {unknown} AwsS3 the @uppy/aws-s3 plugin class
 * @param {import("./presign-gate.js").PresignGate} gate
 * @param {import("./uppy-presign-gate.js").PresignGateUppyOptions} [options]
 */
export function usePresignGate(uppy, AwsS3, gate, { sha256 = true, expiresIn, limit } = {}) {
  /** Uppy file id -> { file: pending record, upload: how to send it }. */
  const reservations = new Map();
  /** Record id (Uppy's "upload id" of a multipart upload) -> Uppy file id. */
  const fileOfRecord = new Map();
  /** Uppy file id -> the record `complete` returned (multipart: confirmed while Uppy completes). */
  const confirmed = new Map();
  /** Record id -> partNumber -> a signed part URL. */
  const partUrls = new Map();
  /** What `shouldUseMultipart` decided last; `getChunkSize` runs right after it (see below). */
  let sizing = null;
  const pluginId = "PresignGate:AwsS3";

  const reserve = async (file, multipart) => {
    const reservation = await gate.reserve(file.data, {
      filename: file.name,
      contentType: file.type,
      sha256,
      expiresIn,
      multipart,
    });
    reservations.set(file.id, reservation);
    fileOfRecord.set(reservation.file.id, file.id);
    return reservation;
  };

  // Large files are reserved before the uploader starts: Uppy sizes the parts when it creates it.
  const reserveLarge = async (fileIds) => {
    await Promise.all(
      fileIds.map(async (fileId) => {
        const file = uppy.getFile(fileId);
        if (!file || reservations.has(fileId)) return;
        // The API's threshold (asked once), so that Uppy plans the upload as the server will.
        if (!(file.size > (await gate.resolveMultipartThreshold()))) return;
        uppy.emit("preprocess-progress", file, { mode: "indeterminate", message: "Reserving" });
        await reserve(file, true);
        uppy.emit("preprocess-complete", file);
      }),
    );
  };
  uppy.addPreProcessor(reserveLarge);

  /** The Uppy file and reservation behind a multipart request's upload id; only ours pass. */
  const multipartOf = (uploadId) => {
    const fileId = fileOfRecord.get(uploadId);
    const reservation = fileId && reservations.get(fileId);
    if (!reservation || reservation.upload.method !== "MULTIPART") {
      throw new Error("Presign Gate signs parts only of the multipart uploads it reserved.");
    }
    return { uppyFile: uppy.getFile(fileId), fileId, upload: reservation.upload };
  };

  const signPart = async (uploadId, partNumber) => {
    const { uppyFile, upload } = multipartOf(uploadId);
    const { partSize, partCount } = upload;
    // The reservation decided whether parts carry a SHA-256 (S3 refuses a part that differs).
    const hashing = upload.partSha256 ?? sha256 !== false;
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > partCount) {
      throw new Error(`Part ${partNumber} is outside the server's plan of ${partCount} parts.`);
    }
    const cache = partUrls.get(uploadId) ?? new Map();
    partUrls.set(uploadId, cache);
    const fresh = (part) => part && Date.parse(part.expiresAt) - Date.now() > PART_URL_MARGIN_MS;
    const cached = cache.get(partNumber);
    // A cached URL is used once: a retried part gets a new one.
    cache.delete(partNumber);
    if (fresh(cached)) return cached;
    let wanted;
    if (hashing) {
      const start = partSize * (partNumber - 1);
      if (!uppyFile) throw new Error("The file was removed during its upload.");
      const digest = await sha256Base64(uppyFile.data.slice(start, start + partSize));
      wanted = [{ partNumber, sha256: digest }];
    } else {
      // Uppy sends parts one after another: sign this one and the next ones in one request.
      wanted = [];
      for (let n = partNumber; n <= partCount && wanted.length < PART_URL_BATCH; n++) {
        // This part's own cached URL was just taken out, so it is always signed.
        if (!fresh(cache.get(n))) wanted.push({ partNumber: n });
      }
    }
    const signed = await gate.signParts(uploadId, wanted);
    for (const part of signed) cache.set(part.partNumber, part);
    const part = cache.get(partNumber);
    cache.delete(partNumber);
    return part;
  };

  uppy.use(AwsS3, {
    id: pluginId,
    ...(limit === undefined ? {} : { limit }),
    // Called for a file right before Uppy creates its uploader, which calls `getChunkSize` at
    // once, in the same synchronous run: `sizing` carries the plan from one to the other.
    shouldUseMultipart: (file) => {
      const upload = reservations.get(file.id)?.upload;
      sizing = upload?.method === "MULTIPART" ? { size: file.size, partSize: upload.partSize } : null;
      return sizing !== null;
    },
    getChunkSize: ({ size }) => {
      if (sizing?.size !== size) throw new Error("Presign Gate has no part plan for this file.");
      return sizing.partSize;
    },
    // The key Uppy would choose is replaced by the server's; this only names Uppy's file.
    generateObjectKey: (file) => TICKET_PREFIX + file.id,
    signRequest: async (request) => {
      if (!request.key.startsWith(TICKET_PREFIX)) {
        throw new Error(`Presign Gate signs no ${request.method} request of Uppy's own.`);
      }
      if (!("uploadId" in request)) {
        const file = uppy.getFile(request.key.slice(TICKET_PREFIX.length));
        if (!file) throw new Error("The file was removed before its upload started.");
        if (request.method === "PUT") {
          const { upload } = reservations.get(file.id) ?? (await reserve(file, false));
          if (upload.method !== "PUT") throw new Error("This file was reserved as a multipart upload.");
          return {
            url: upload.url,
            key: objectKeyOf(upload.url),
            headers: settableHeaders(upload.headers),
          };
        }
        if (request.method === "POST") {
          // CreateMultipartUpload: the pre-processor already reserved it.
          const reservation = reservations.get(file.id);
          if (reservation?.upload.method !== "MULTIPART") {
            throw new Error("Presign Gate reserved no multipart upload for this file.");
          }
          return s3Answer(
            "InitiateMultipartUploadResult",
            { Key: request.key, UploadId: reservation.file.id },
          );
        }
        throw new Error(`Presign Gate signs no ${request.method} request of Uppy's own.`);
      }

      const { uploadId } = request;
      if (request.method === "PUT" && "partNumber" in request) {
        const part = await signPart(uploadId, request.partNumber);
        return { url: part.url, headers: settableHeaders(part.headers) };
      }
      const { fileId } = multipartOf(uploadId);
      if (request.method === "GET") {
        // ListParts, when Uppy resumes (a retry after an error, or resume after a pause).
        const { parts } = await gate.parts(uploadId);
        return s3Answer(
          "ListPartsResult",
          {},
          parts.map((part) => ({ PartNumber: part.partNumber, ETag: part.etag, Size: part.size })),
        );
      }
      if (request.method === "POST") {
        // CompleteMultipartUpload: the server checks every part against its plan, completes
        // without overwriting, and confirms the file.
        const record = await gate.complete(uploadId);
        confirmed.set(fileId, record);
        partUrls.delete(uploadId);
        return s3Answer("CompleteMultipartUploadResult", {
          Location: `presign-gate:files/${record.id}`,
          Key: request.key,
          ETag: record.etag ?? "",
        });
      }
      if (request.method === "DELETE") {
        // AbortMultipartUpload (the file was removed or the upload cancelled): deleting the
        // pending file makes the server abort the S3 upload.
        await gate.delete(uploadId);
        reservations.delete(fileId);
        fileOfRecord.delete(uploadId);
        partUrls.delete(uploadId);
        return s3Answer("AbortMultipartUploadResult", {});
      }
      throw new Error(`Presign Gate signs no ${request.method} request of Uppy's own.`);
    },
  });

  const confirm = async (fileIds) => {
    await Promise.all(
      fileIds.map(async (fileId) => {
        const file = uppy.getFile(fileId);
        const reservation = reservations.get(fileId);
        if (!file || !reservation || file.error) return;
        uppy.emit("postprocess-progress", file, { mode: "indeterminate", message: "Confirming" });
        try {
          let record = confirmed.get(fileId) ?? (await gate.complete(reservation.file.id));
          reservations.delete(fileId);
          fileOfRecord.delete(reservation.file.id);
          confirmed.delete(fileId);
          // Uploads are scanned for malware before they can be downloaded (README, "Malware
          // scanning"): the file is available only once the scan finds it clean; a rejection
          // is the file's error.
          if (record.status !== "available") {
            uppy.emit("postprocess-progress", file, { mode: "indeterminate", message: "Scanning for malware" });
            record = await gate.waitUntilAvailable(record.id);
          }
          uppy.emit("postprocess-complete", file);
          uppy.emit("presign-gate:available", uppy.getFile(fileId), record);
        } catch (error) {
          uppy.emit("upload-error", file, error);
        }
      }),
    );
  };
  uppy.addPostProcessor(confirm);

  return () => {
    uppy.removePreProcessor(reserveLarge);
    uppy.removePostProcessor(confirm);
    const plugin = uppy.getPlugin(pluginId);
    if (plugin) uppy.removePlugin(plugin);
  };
}

/** @param {Record<string, string>} headers */
function settableHeaders(headers) {
  return Object.fromEntries(Object.entries(headers ?? {}).filter(([name]) => browserMaySet(name)));
}

const escapeXml = (value) =>
  String(value).replace(/[<>&'"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[c]);

/**
 * A `data:` URL whose body is the XML S3 answers `root` with: Uppy's request to it reads back
 * what the adapter already did through the API.
 * @param {string} root
 * @param {Record<string, unknown>} fields
 * @param {Record<string, unknown>[]} [parts]
 */
export function s3Answer(root, fields, parts = []) {
  const element = (name, value) => `<${name}>${escapeXml(value)}</${name}>`;
  const body =
    Object.entries(fields).map(([name, value]) => element(name, value)).join("") +
    parts.map((part) => `<Part>${Object.entries(part).map(([name, value]) => element(name, value)).join("")}</Part>`).join("");
  const xml = `<?xml version="1.0" encoding="UTF-8"?><${root}>${body}</${root}>`;
  return { url: `data:application/xml;charset=utf-8,${encodeURIComponent(xml)}` };
}

/**
 * The object key a presigned URL addresses: its last three path segments, `users/<owner>/<id>`
 * in the server's key scheme, whether the URL is path-style or virtual-hosted.
 * @param {string} url
 */
export function objectKeyOf(url) {
  return new URL(url).pathname.split("/").slice(-3).map(decodeURIComponent).join("/");
}
