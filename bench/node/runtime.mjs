// The Runtime API loop that runs the bundled Node.js function for the bench, in place of the
// managed nodejs20.x runtime's interface client: the npm package of that client (aws-lambda-ric)
// compiles a native addon at install and needs Node.js 22, neither of which the bench tooling
// takes on. The loop follows the Runtime API as AWS documents it (Lambda Developer Guide, "Using
// the Lambda runtime API for custom runtimes"): load the handler at init, reporting a failure to
// /runtime/init/error; then GET /runtime/invocation/next, call the handler, POST its result to
// /runtime/invocation/{id}/response or the error to /runtime/invocation/{id}/error, forever, on
// one kept-alive connection. Bench only.
//
// Usage: node runtime.mjs BUNDLE (a CommonJS bundle exporting `handler`)

import http from "node:http";
import { createRequire } from "node:module";
import path from "node:path";

const [host, port] = (process.env.AWS_LAMBDA_RUNTIME_API ?? "").split(":");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/**
 * One request to the Runtime API.
 * @param {string} method
 * @param {string} route below /2018-06-01
 * @param {string} [body]
 * @returns {Promise<{ headers: http.IncomingHttpHeaders, body: string }>}
 */
function runtimeApi(method, route, body) {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host, port, method, path: `/2018-06-01${route}`, agent },
      (response) => {
        const chunks = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("end", () =>
          resolve({ headers: response.headers, body: Buffer.concat(chunks).toString("utf8") }),
        );
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

/** @param {unknown} error */
function errorBody(error) {
  const e = error instanceof Error ? error : new Error(String(error));
  return JSON.stringify({ errorType: e.name, errorMessage: e.message });
}

async function main() {
  let handler;
  try {
    const bundle = path.resolve(process.argv[2] ?? "");
    ({ handler } = createRequire(bundle)(bundle));
    if (typeof handler !== "function") {
      throw new TypeError(`${bundle} exports no handler function`);
    }
  } catch (error) {
    await runtimeApi("POST", "/runtime/init/error", errorBody(error));
    process.exit(1);
  }
  for (;;) {
    const next = await runtimeApi("GET", "/runtime/invocation/next");
    const id = String(next.headers["lambda-runtime-aws-request-id"]);
    const deadline = Number(next.headers["lambda-runtime-deadline-ms"]);
    const context = {
      awsRequestId: id,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      invokedFunctionArn: next.headers["lambda-runtime-invoked-function-arn"],
      getRemainingTimeInMillis: () => deadline - Date.now(),
    };
    try {
      const result = await handler(JSON.parse(next.body), context);
      await runtimeApi("POST", `/runtime/invocation/${id}/response`, JSON.stringify(result));
    } catch (error) {
      await runtimeApi("POST", `/runtime/invocation/${id}/error`, errorBody(error));
    }
  }
}

await main();
