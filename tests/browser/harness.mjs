// What the Chromium tests stand on: `make local`'s stack (scripts/local.sh) on free ports with a
// fresh data directory, headless Chromium with its normal web security, a static server for a
// foreign origin, and a plain-HTTP helper for the API (node's fetch knows no CORS).
import { spawn } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, extname, resolve, sep } from "node:path";
import { once } from "node:events";
import { createServer as createNetServer } from "node:net";
import { after, afterEach, before } from "node:test";
import assert from "node:assert/strict";

import { chromium } from "playwright-core";

import { localS3 } from "./local-s3.mjs";

export const REPO = resolve(import.meta.dirname, "../..");
export const ARTIFACTS = join(REPO, "target/browser-artifacts");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** The first build of the function can take minutes; a built one answers in seconds. */
const STACK_START_TIMEOUT_MS = 20 * 60 * 1000;

export async function freePort() {
  const server = createNetServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

/**
 * Starts scripts/local.sh on free ports with a temporary DATA_DIR; resolves once it has printed
 * both `API ready at <url>` and `Demo at <url>`. Uploads are not scanned for malware unless
 * `extraEnv` sets `SCAN_UPLOADS: "true"` (local.sh then runs GuardDuty's stand-in, and the
 * functions and the bucket policy agree): the other test files are about moving bytes, and run
 * on the template's `ScanUploads=false`, where a confirmed file is available at once.
 */
export async function startLocalStack(extraEnv = {}) {
  for (const name of ["LOCAL_AWS_BIN", "MOTO_SERVER_BIN", "VENDOR_DIR"]) {
    if (!process.env[name]) throw new Error(`${name} is not set: run the browser tests through \`make browser-test\``);
  }
  const dataDir = await mkdtemp(join(tmpdir(), "presign-gate-browser-"));
  const env = {
    ...process.env,
    API_PORT: String(await freePort()),
    S3_PORT: String(await freePort()),
    DYNAMODB_PORT: String(await freePort()),
    DEMO_PORT: String(await freePort()),
    LAMBDA_PORT: String(await freePort()),
    MOTO_PORT: String(await freePort()),
    EVENTBRIDGE_PORT: String(await freePort()),
    DATA_DIR: dataDir,
    SCAN_UPLOADS: "false",
    ...extraEnv,
  };
  const child = spawn(join(REPO, "scripts/local.sh"), [], { cwd: REPO, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const ready = new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`local.sh did not get ready in time:\n${output}`)), STACK_START_TIMEOUT_MS);
    const onData = (chunk) => {
      output += chunk;
      const api = /API ready at (\S+)/.exec(output);
      const demo = /Demo at (\S+)/.exec(output);
      if (api && demo) {
        clearTimeout(timer);
        resolvePromise({ apiUrl: api[1], demoUrl: demo[1] });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`local.sh exited (${code}) before it was ready:\n${output}`));
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      // local.sh stops what it started on TERM; its whole process group goes with it.
      process.kill(-child.pid, "SIGTERM");
      await exited;
    }
    // The functions' own logs, kept beside the screenshots: a failure in CI is read from here.
    await writeFile(await artifactPath("local-stack.log"), output);
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const { apiUrl, demoUrl } = await ready;
    const s3 = await localS3(`http://127.0.0.1:${env.S3_PORT}`, env.LOCAL_AWS_BIN, REPO);
    return { apiUrl, demoUrl: new URL(demoUrl), dataDir, stop, output: () => output, faults: faultControl(new URL("/__faults", demoUrl)), s3 };
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
}

/**
 * The faults the stack injects (local-aws only, README "The local AWS"): `inject` queues
 * `{ s3: [...], api: [...] }`, `report` answers what is left and how many were served, `clear`.
 */
function faultControl(url) {
  const call = async (method, plan) => {
    const response = await fetch(url, {
      method,
      headers: plan === undefined ? {} : { "content-type": "application/json" },
      body: plan === undefined ? undefined : JSON.stringify(plan),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} /__faults: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  return { inject: (plan) => call("POST", plan), report: () => call("GET"), clear: () => call("DELETE") };
}

/** Console levels that fail a test: the client and the demo never warn or log an error. */
const FAILING_LEVELS = new Set(["warning", "error", "assert"]);
/** Failing at any level: a header the client must never try to set or read. */
const UNSAFE_HEADER = /Refused to (set|get) unsafe header/;

/**
 * Collects the console messages of every page of `context`. `take()` returns (and forgets) those
 * that fail a test: a warning, an error, or "Refused to set unsafe header" at any level, unless
 * the page expected it with `page.expectConsole(pattern, reason)` (a test that provokes a refusal
 * on purpose, with the reason it is unavoidable). Query strings are cut from the text: a presigned
 * URL's query is a credential, and a failure message is printed.
 */
export function collectConsole(context) {
  const messages = [];
  const watch = (page) => {
    const expected = [];
    page.expectConsole = (pattern, reason) => {
      if (!reason) throw new Error("an expected console message needs its reason");
      expected.push(pattern);
    };
    page.on("console", (message) => {
      const text = message.text().replace(/\?[^\s'"]*/g, "?…");
      const at = message.location()?.url?.replace(/[?#].*$/, "") ?? "";
      messages.push({ level: message.type(), text, at, expected });
    });
  };
  context.pages().forEach(watch);
  context.on("page", watch);
  return {
    take() {
      const failing = messages
        .filter(({ level, text }) => FAILING_LEVELS.has(level) || UNSAFE_HEADER.test(text))
        .filter(({ text, expected }) => UNSAFE_HEADER.test(text) || !expected.some((pattern) => pattern.test(text)))
        .map(({ level, text, at }) => `${level}: ${text}${at ? ` (${at})` : ""}`);
      messages.length = 0;
      return failing;
    },
  };
}

/**
 * A test file's stack (`startLocalStack(env)`) and Chromium: started before its tests, stopped
 * after them, and after each test no console message the test did not expect (`collectConsole`).
 * Tests read `suite.stack` and `suite.browser`.
 */
export function stackAndChromium(env = {}) {
  const suite = { stack: null, browser: null };
  before(async () => {
    suite.stack = await startLocalStack(env);
    suite.browser = await launchChromium();
  });
  afterEach(() => {
    assert.deepEqual(suite.browser?.console.take() ?? [], [], "console messages no test expected");
  });
  after(async () => {
    await suite.browser?.close();
    await suite.stack?.stop();
  });
  return suite;
}

/** Headless Chromium with its normal web security, in a fresh profile. */
export async function launchChromium() {
  const profile = await mkdtemp(join(tmpdir(), "presign-gate-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    console: collectConsole(context),
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

const CONTENT_TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css" };

/**
 * A static server at an origin no CORS rule lists: `/client/` serves client/, `/` a blank page.
 */
export async function startForeignOrigin() {
  const server = createServer(async (request, response) => {
    const path = decodeURIComponent(new URL(request.url, "http://localhost").pathname);
    if (path === "/") {
      response.writeHead(200, { "content-type": "text/html" });
      // No favicon request (a 404 in the console).
      response.end('<!doctype html><link rel="icon" href="data:,"><title>foreign</title><p>a page no CORS rule lists</p>');
      return;
    }
    const file = resolve(REPO, "." + path);
    if (!path.startsWith("/client/") || !file.startsWith(join(REPO, "client") + sep)) {
      response.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      response.writeHead(200, { "content-type": CONTENT_TYPES[extname(file)] ?? "application/octet-stream" });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((done) => server.close(done)),
  };
}

/** The API over plain HTTP as `user` (the dev header), for setting up and checking. */
export function apiAs(apiUrl, user) {
  return async (method, path, body) => {
    const response = await fetch(apiUrl.replace(/\/+$/, "") + path, {
      method,
      headers: { "x-dev-user": user, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
}

export async function artifactPath(name) {
  await mkdir(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/** Waits for `check` to return a truthy value, polling; fails with `what` after `timeoutMs`. */
export async function eventually(check, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}
