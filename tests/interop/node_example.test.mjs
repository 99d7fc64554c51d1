// The Node client example (examples/node/transcript.mjs) against a real
// `convstore serve`: run as its README says (plain `node`, CONVSTORE_URL and
// CONVSTORE_API_KEY in the environment), it must exit 0 and print the
// transcript, system message first and the four turns in the order sent,
// exactly the messages the server holds for the conversation it names. With
// a bad key it prints the API's error and exits 1; without the environment,
// exits 2.
//
// Usage: node node_example.test.mjs CONVSTORE_BINARY

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { client, convstoreBinary, startServer } from './server.mjs';

convstoreBinary();  // usage and exit 2 without the binary

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXAMPLE = path.resolve(HERE, '../../examples/node/transcript.mjs');
const RUN_TIMEOUT_MS = 30000;

// Runs the example with `env` only (plus PATH), bounded in time.
function runExample(env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [EXAMPLE], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`example did not finish in ${RUN_TIMEOUT_MS} ms:\n` +
        `${stdout}${stderr}`));
    }, RUN_TIMEOUT_MS);
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (!server) return;
  const { code, signal } = await server.stop();
  assert.equal(code, 0, `server stopped with ${code ?? signal}`);
});

test('prints the transcript in order, as the server holds it', async () => {
  const r = await runExample({ CONVSTORE_URL: `${server.url}/`,
    CONVSTORE_API_KEY: server.adminKey });
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}${r.stderr}`);
  assert.equal(r.stderr, '');

  const conv = r.stdout.match(/^Conversation +(conv-[0-9a-f-]+) /m)?.[1];
  assert.ok(conv, `no conversation id in:\n${r.stdout}`);
  const lines = r.stdout.split('\n')
    .filter((l) => /^ *\d+\. \[/.test(l));
  const printed = lines.map((l) => {
    const m = l.match(/^ *(\d+)\. \[(\d\d:\d\d:\d\d\.\d\d\d)\] (\w+) +(.*)$/);
    assert.ok(m, `transcript line: ${l}`);
    return { n: Number(m[1]), time: m[2], role: m[3], content: m[4] };
  });

  assert.deepEqual(printed.map((p) => [p.role, p.content]), [
    ['system', 'You are a helpful product support agent.'],
    ['assistant', 'Hello! How can I help you today?'],
    ['user', 'I need help with product setup'],
    ['assistant', 'Sure. Which product are you setting up?'],
    ['user', 'The X200 router, it will not connect.'],
  ]);
  assert.deepEqual(printed.map((p) => p.n), [1, 2, 3, 4, 5]);
  assert.match(r.stdout, /^Transcript \(5 messages\):$/m);

  // The same messages, in the same order, as the server returns them.
  const api = client(server.url, server.adminKey);
  const res = await api('GET', `/v1/conversations/${conv}/messages`);
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(printed.map((p) => [p.role, p.content, p.time]),
    res.json.map((m) => [m.role, m.content, m.created_at.slice(11, 23)]));
  const c = await api('GET', `/v1/conversations/${conv}`);
  assert.equal(c.json.title, 'Product Support Session');
});

test('a bad key: the API\'s error, exit 1', async () => {
  const r = await runExample({ CONVSTORE_URL: server.url,
    CONVSTORE_API_KEY: 'csk_not_a_valid_key' });
  assert.equal(r.code, 1, `exit ${r.code}\n${r.stdout}${r.stderr}`);
  assert.match(r.stderr,
    /^error: POST \/v1\/agents: 401 authentication_error: /m);
});

test('no environment: usage, exit 2', async () => {
  const r = await runExample({});
  assert.equal(r.code, 2, `exit ${r.code}\n${r.stdout}${r.stderr}`);
  assert.match(r.stderr, /CONVSTORE_URL/);
});
