// The entry `make vendor` bundles into one browser ES module (target/vendor/uppy.mjs): Uppy's
// packages are ES modules, but a few of their dependencies (lodash, classnames, mime-match,
// namespace-emitter) are CommonJS, which a browser cannot import, and no `uppy` bundle on npm carries
// an @uppy/aws-s3 that sends the headers a presigned URL signed (6.3 added them; the `uppy` 6.0.1
// bundle has 6.1.0). Only this third-party code is bundled; the client and the demo are served as written.
export { default as Uppy } from "@uppy/core";
export { default as Dashboard } from "@uppy/dashboard";
export { default as AwsS3 } from "@uppy/aws-s3";
