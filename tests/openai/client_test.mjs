// The official `openai` npm client against `pals sim-serve` (ctest `openai_client`).
//
//   node client_test.mjs --pals <path to the pals binary> [--model <HF config.json>]
//
// Starts `pals sim-serve --port 0`, waits for its `listening on` line, then uses the client for
// models.list, completions (plain and streamed with usage), a streamed chat completion and two
// error cases, then sends SIGTERM and expects exit code 0.
// Exit codes: 0 success, 1 failure, 77 skipped (no node_modules/openai: run `npm ci` here).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const SKIP = 77;
const here = dirname(fileURLToPath(import.meta.url));

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

if (!existsSync(join(here, "node_modules", "openai"))) {
  console.log("SKIP: tests/openai/node_modules/openai is missing (run `npm ci` in tests/openai)");
  process.exit(SKIP);
}
const { default: OpenAI } = await import("openai");

const pals = arg("--pals", "");
const model = arg("--model", "");
if (!pals || !existsSync(pals)) {
  console.error(`FAIL: --pals must name the pals binary (got '${pals}')`);
  process.exit(1);
}

let failures = 0;
function check(condition, what) {
  if (condition) {
    console.log(`ok   ${what}`);
  } else {
    console.log(`FAIL ${what}`);
    failures += 1;
  }
}

const stateDir = mkdtempSync(join(tmpdir(), "pals-openai-test-"));
const args = ["sim-serve", "--port", "0", "--state-dir", stateDir, "--time-scale", "10"];
if (model) {
  args.push("--model", model);
}
const server = spawn(pals, args, { stdio: ["ignore", "pipe", "pipe"] });
let stderr = "";
server.stderr.on("data", (d) => (stderr += d));
const exited = new Promise((resolve) => server.on("exit", (code, signal) => resolve({ code, signal })));

function fail(message) {
  console.error(`FAIL ${message}`);
  if (stderr) console.error(stderr);
  server.kill("SIGKILL");
  rmSync(stateDir, { recursive: true, force: true });
  process.exit(1);
}

const baseURL = await new Promise((resolve) => {
  let out = "";
  const timer = setTimeout(() => resolve(null), 30000);
  server.stdout.on("data", (d) => {
    out += d;
    const m = out.match(/listening on (http:\/\/\S+)/);
    if (m) {
      clearTimeout(timer);
      resolve(m[1]);
    }
  });
  server.on("exit", () => resolve(null));
});
if (!baseURL) fail("pals sim-serve did not print 'listening on'");

const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: "EMPTY", maxRetries: 0, timeout: 30000 });

try {
  // models.list
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  check(models.length === 1 && typeof models[0].id === "string", "models.list has one model");
  const name = models[0].id;
  check(models[0].max_model_len > 0, `the model card has max_model_len (${models[0].max_model_len})`);

  // completions, not streamed
  const c = await client.completions.create({ model: name, prompt: "hello world!", max_tokens: 7 });
  check(c.object === "text_completion", "completion object");
  check(c.usage.completion_tokens === 7 && c.usage.prompt_tokens === 3 && c.usage.total_tokens === 10,
    `completion usage ${JSON.stringify(c.usage)}`);
  check(c.choices[0].text.trim().split(/\s+/).length === 7, `completion text '${c.choices[0].text}'`);
  check(c.choices[0].finish_reason === "length", "completion finish_reason length");

  // completions, streamed with usage (token-id prompt, as vllm bench serve sends)
  const stream = await client.completions.create({
    model: name, prompt: Array.from({ length: 32 }, (_, i) => i + 1), max_tokens: 10,
    stream: true, stream_options: { include_usage: true },
  });
  let tokenChunks = 0;
  let usage = null;
  let lastFinish = null;
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) {
      tokenChunks += 1;
      lastFinish = chunk.choices[0].finish_reason;
    } else if (chunk.usage) {
      usage = chunk.usage;
    }
  }
  check(tokenChunks === 10, `streamed completion: ${tokenChunks} token chunks`);
  check(lastFinish === "length", "streamed completion: last finish_reason length");
  check(usage && usage.completion_tokens === 10 && usage.prompt_tokens === 32,
    `streamed completion: usage chunk ${JSON.stringify(usage)}`);

  // chat, streamed
  const chat = await client.chat.completions.create({
    model: name, messages: [{ role: "user", content: "Say something." }],
    max_completion_tokens: 5, stream: true, stream_options: { include_usage: true },
  });
  let role = null;
  let content = "";
  let chatUsage = null;
  let chunks = 0;
  for await (const chunk of chat) {
    chunks += 1;
    if (chunk.choices.length > 0) {
      const delta = chunk.choices[0].delta;
      if (delta.role && role === null) role = delta.role;
      content += delta.content ?? "";
    } else if (chunk.usage) {
      chatUsage = chunk.usage;
    }
  }
  check(role === "assistant", "chat stream: first delta has role assistant");
  check(content.trim().split(/\s+/).length === 5, `chat stream: content '${content}'`);
  check(chatUsage && chatUsage.completion_tokens === 5, `chat stream: usage ${JSON.stringify(chatUsage)}`);
  check(chunks === 1 + 5 + 1, `chat stream: ${chunks} chunks, then the iterator ended`);

  // errors
  try {
    await client.completions.create({ model: "no-such-model", prompt: "x", max_tokens: 2 });
    check(false, "unknown model throws");
  } catch (e) {
    check(e instanceof OpenAI.NotFoundError && e.status === 404, `unknown model: ${e.constructor.name} ${e.status}`);
  }
  try {
    await client.completions.create({ model: name, prompt: "x", max_tokens: 10_000_000 });
    check(false, "too long a request throws");
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && e.status === 400, `too long: ${e.constructor.name} ${e.status}`);
  }
} catch (e) {
  fail(`unexpected error: ${e?.stack ?? e}`);
}

server.kill("SIGTERM");
const timeout = new Promise((resolve) => setTimeout(() => resolve({ code: "timeout" }), 20000));
const { code, signal } = await Promise.race([exited, timeout]);
check(code === 0, `SIGTERM: exit code ${code}${signal ? ` signal ${signal}` : ""}`);
if (code === "timeout") server.kill("SIGKILL");
rmSync(stateDir, { recursive: true, force: true });
if (failures > 0) {
  if (stderr) console.error(stderr);
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
console.log("all checks passed");
process.exit(0);
