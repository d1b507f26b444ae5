// scripts/local.sh (`make local`) and the log level: RUST_LOG is the functions' level only. At
// trace, cargo lambda watch writes each raw request, authorization header included, and traces
// every path under target/; local-aws's crates log requests. So neither may see RUST_LOG, and the
// functions get exactly the level asked for through cargo lambda watch's --env-file (issue 20,
// 2.10). The script runs against stand-ins for local-aws, moto and cargo that record what they
// were given, so no build and no port of the real stack is needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const REPO = resolve(import.meta.dirname, "../..");

/** A free loopback port. */
async function freePort() {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((done) => server.once("listening", done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

/**
 * A node script that records its arguments and RUST_LOG, then listens on each of `portFlags`'
 * ports, or exits. `--print-names` answers as local-aws does.
 */
const recorder = (name, portFlags) => `#!/usr/bin/env node
const fs = require("node:fs");
const args = process.argv.slice(2);
const record = { args, rustLog: process.env.RUST_LOG ?? null };
const envFile = args[args.indexOf("--env-file") + 1];
if (args.includes("--env-file")) record.envFile = fs.readFileSync(envFile, "utf8");
fs.appendFileSync(process.env.RECORD_DIR + "/${name}.jsonl", JSON.stringify(record) + "\\n");
if (args.includes("--print-names")) { console.log("FILES_BUCKET=bucket\\nFILES_TABLE=table"); process.exit(0); }
const ports = ${JSON.stringify(portFlags)}.filter((flag) => args.includes(flag)).map((flag) => args[args.indexOf(flag) + 1]);
for (const port of ports) require("node:net").createServer().listen(Number(port), "127.0.0.1");
if (ports.length === 0 && !(args[0] === "lambda" && args[1] === "watch")) process.exit(0);
else setInterval(() => {}, 1000);
`;

test("make local hands RUST_LOG to the functions only: cargo lambda watch and local-aws keep their own level", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "presign-gate-local-sh-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bin = join(dir, "bin");
  await mkdir(bin);
  for (const [name, flags] of [["local-aws", ["--s3-port", "--dynamodb-port", "--eventbridge-port"]], ["moto_server", ["-p"]], ["cargo", []]]) {
    await writeFile(join(bin, name), recorder(name, flags));
    await chmod(join(bin, name), 0o755);
  }
  const ports = {};
  for (const name of ["API_PORT", "S3_PORT", "DYNAMODB_PORT", "DEMO_PORT", "LAMBDA_PORT", "MOTO_PORT", "EVENTBRIDGE_PORT"]) ports[name] = String(await freePort());
  const level = "trace,presign_gate=debug";
  const script = spawn(join(REPO, "scripts/local.sh"), {
    cwd: REPO,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      ...ports,
      PATH: `${bin}:${process.env.PATH}`,
      LOCAL_AWS_BIN: join(bin, "local-aws"),
      MOTO_SERVER_BIN: join(bin, "moto_server"),
      DATA_DIR: join(dir, "data"),
      RECORD_DIR: dir,
      RUST_LOG: level,
    },
  });
  let output = "";
  script.stdout.on("data", (chunk) => (output += chunk));
  script.stderr.on("data", (chunk) => (output += chunk));
  const exited = new Promise((done) => script.once("exit", done));
  try {
    const deadline = Date.now() + 20_000;
    while (!existsSync(join(dir, "cargo.jsonl")) || !(await readFile(join(dir, "cargo.jsonl"), "utf8")).includes('"watch"')) {
      assert.ok(Date.now() < deadline, `cargo lambda watch never started: ${output}`);
      assert.equal(script.exitCode, null, `local.sh ended: ${output}`);
      await new Promise((done) => setTimeout(done, 100));
    }
  } finally {
    process.kill(-script.pid, "SIGTERM");
    await exited;
  }
  const lines = async (name) => (await readFile(join(dir, `${name}.jsonl`), "utf8")).trim().split("\n").map((l) => JSON.parse(l));
  for (const localAws of await lines("local-aws")) assert.equal(localAws.rustLog, null, "local-aws keeps its own level");
  const cargo = await lines("cargo");
  const watch = cargo.find((call) => call.args[0] === "lambda" && call.args[1] === "watch");
  assert.equal(watch.rustLog, null, "cargo lambda watch keeps its own level");
  assert.equal(watch.envFile, `RUST_LOG=${level}\n`, "the functions get the level asked for, commas and all");
  for (const call of cargo) assert.equal(call.rustLog, null, `cargo ${call.args.join(" ")}`);
});
