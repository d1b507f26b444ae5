// Uppy's @uppy/aws-s3 (6.3 or later) uploading through Presign Gate.
//
// @uppy/aws-s3 asks a `signRequest(request)` function for each S3 request it makes. Ours answers a
// PUT by reserving through the API (`POST /uploads`), so the server makes the object key, the
// URL, and the headers it signed; Uppy's own key is only a ticket that leads back to its file.
// After Uppy's PUT a post-processing step confirms each file (`POST /files/{id}/complete`).
// Anything but a single PUT is refused: Uppy never signs or sizes anything itself. Multipart
// (issue 13) will come through here too, with the server's part plan.

import { browserMaySet } from "./presign-gate.js";

const TICKET_PREFIX = "presign-gate-ticket/";

/**
 * Installs @uppy/aws-s3 on `uppy`, uploading through `gate`. Returns a function that removes both.
 * @param {import("./uppy-presign-gate.js").UppyLike} uppy
 * @param {unknown} AwsS3 the @uppy/aws-s3 plugin class
 * @param {import("./presign-gate.js").PresignGate} gate
 * @param {import("./uppy-presign-gate.js").PresignGateUppyOptions} [options]
 */
export function usePresignGate(uppy, AwsS3, gate, { sha256 = true, expiresIn, limit } = {}) {
  /** Uppy file id -> the pending record its reservation made. */
  const reservations = new Map();
  const pluginId = "PresignGate:AwsS3";

  uppy.use(AwsS3, {
    id: pluginId,
    ...(limit === undefined ? {} : { limit }),
    shouldUseMultipart: false,
    // The key Uppy would choose is replaced by the server's; this only names Uppy's file.
    generateObjectKey: (file) => TICKET_PREFIX + file.id,
    signRequest: async (request) => {
      if (request.method !== "PUT" || "uploadId" in request || !request.key.startsWith(TICKET_PREFIX)) {
        throw new Error(`Presign Gate signs no ${request.method} request of Uppy's own.`);
      }
      const file = uppy.getFile(request.key.slice(TICKET_PREFIX.length));
      if (!file) throw new Error("The file was removed before its upload started.");
      const { file: record, upload } = await gate.reserve(file.data, {
        filename: file.name,
        contentType: file.type,
        sha256,
        expiresIn,
      });
      if (upload.method !== "PUT") {
        throw new Error(`This adapter cannot send a ${upload.method} upload yet.`);
      }
      reservations.set(file.id, record);
      return {
        url: upload.url,
        key: objectKeyOf(upload.url),
        headers: Object.fromEntries(
          Object.entries(upload.headers).filter(([name]) => browserMaySet(name)),
        ),
      };
    },
  });

  const confirm = async (fileIds) => {
    await Promise.all(
      fileIds.map(async (fileId) => {
        const file = uppy.getFile(fileId);
        const record = reservations.get(fileId);
        if (!file || !record || file.error) return;
        uppy.emit("postprocess-progress", file, { mode: "indeterminate", message: "Confirming" });
        try {
          const confirmed = await gate.complete(record.id);
          reservations.delete(fileId);
          uppy.emit("postprocess-complete", file);
          uppy.emit("presign-gate:available", uppy.getFile(fileId), confirmed);
        } catch (error) {
          uppy.emit("upload-error", file, error);
        }
      }),
    );
  };
  uppy.addPostProcessor(confirm);

  return () => {
    uppy.removePostProcessor(confirm);
    const plugin = uppy.getPlugin(pluginId);
    if (plugin) uppy.removePlugin(plugin);
  };
}

/**
 * The object key a presigned URL addresses: its last three path segments, `users/<owner>/<id>`
 * in the server's key scheme, whether the URL is path-style or virtual-hosted.
 * @param {string} url
 */
export function objectKeyOf(url) {
  return new URL(url).pathname.split("/").slice(-3).map(decodeURIComponent).join("/");
}
