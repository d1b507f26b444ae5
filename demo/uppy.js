// Uppy's Dashboard uploading through Presign Gate: @uppy/aws-s3 with the adapter from client/.
import { Uppy, Dashboard, AwsS3 } from "/vendor/uppy.mjs";
import { PresignGate } from "/client/presign-gate.js";
import { usePresignGate } from "/client/uppy-presign-gate.js";
import { connectionFromPage, describeError, formatSize } from "./shared.js";

const form = document.querySelector("#connection");
const confirmed = document.querySelector("#confirmed");

let uppy = null;

function connect() {
  uppy?.destroy();
  const gate = connectionFromPage(form, PresignGate);
  uppy = new Uppy({ autoProceed: false }).use(Dashboard, {
    inline: true,
    target: "#dashboard",
    height: 360,
    proudlyDisplayPoweredByUppy: false,
  });
  usePresignGate(uppy, AwsS3, gate);
  uppy.on("presign-gate:available", (_file, record) => {
    const item = document.createElement("li");
    item.dataset.testid = "uppy-available";
    item.dataset.fileId = record.id;
    item.textContent = `${record.filename} (${formatSize(record.size)}): ${record.status}`;
    confirmed.append(item);
  });
  uppy.on("upload-error", (file, error) => {
    uppy.info(describeError(error, { filename: file?.name, contentType: file?.type }), "error", 8000);
  });
  window.presignGateUppy = { uppy, gate };
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  connect();
});
connect();
