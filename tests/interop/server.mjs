// Starts and stops the real `convstore serve` for the interop tests.
//
//   const server = await startServer({ args: ['--token-ttl', '900'] });
//   // server.url = 'http://127.0.0.1:PORT', server.adminKey = 'csk_...'
//   ...
//   await server.stop();  // SIGTERM, bounded wait, then removes the temp dir
//
// Every server runs on 127.0.0.1 port 0 in a fresh temp data dir. The binary
// is the test's first command-line argument (ctest passes
// $<TARGET_FILE:convstore>) or CONVSTORE_BINARY. The environment the server
// sees is this process's minus every LiveKit and CONVSTORE_ setting (so a
// developer's shell cannot change what a test checks), plus `env`. Every wait
// here is bounded; a server still running when the process exits is killed
// and its dir removed.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const START_TIMEOUT_MS = 30000;  // an ASan build on a busy machine is slow
const STOP_TIMEOUT_MS = 10000;
const REQUEST_TIMEOUT_MS = 15000;

const running = new Set();

process.on('exit', () => {
  for (const s of running) {
    try { s.child.kill('SIGKILL'); } catch { /* already gone */ }
    fs.rmSync(s.dir, { recursive: true, force: true });
  }
});

// The convstore binary: argv[2] (as ctest passes it) or CONVSTORE_BINARY.
// Without either, prints the usage and exits 2 (test files call this first).
export function convstoreBinary() {
  const binary = process.argv[2] || process.env.CONVSTORE_BINARY;
  if (!binary) {
    console.error(`usage: node ${path.basename(process.argv[1])} ` +
      'CONVSTORE_BINARY (or set CONVSTORE_BINARY)');
    process.exit(2);
  }
  return binary;
}

function serverEnv(extra) {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith('LIVEKIT_') || name.startsWith('CONVSTORE_')) {
      delete env[name];
    }
  }
  return { ...env, ...extra };
}

// Starts `convstore serve --listen 127.0.0.1:0 --data-dir <tmp>/data ...args`
// and resolves once it logs "listening on http://127.0.0.1:PORT" and its
// admin key is known (env.CONVSTORE_ADMIN_KEY, else the generated csk_... key
// it prints). Rejects with the server's log if it exits or does not get
// there within `timeoutMs`.
export function startServer({ args = [], env = {}, binary = convstoreBinary(),
  timeoutMs = START_TIMEOUT_MS } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convstore-interop-'));
  const child = spawn(binary, ['serve', '--listen', '127.0.0.1:0',
    '--data-dir', path.join(dir, 'data'), ...args],
  { env: serverEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const handle = { child, dir };
  running.add(handle);
  let log = '';
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  const stop = async () => {
    let result = { code: child.exitCode, signal: child.signalCode };
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      let timer;
      const killed = new Promise((resolve) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve({ code: null, signal: 'SIGKILL', timedOut: true });
        }, STOP_TIMEOUT_MS);
      });
      result = await Promise.race([exited, killed]);
      clearTimeout(timer);
      if (result.timedOut) await exited;
    }
    running.delete(handle);
    fs.rmSync(dir, { recursive: true, force: true });
    return result;
  };

  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop().finally(() => reject(new Error(`${why}; server log:\n${log}`)));
    };
    const timer = setTimeout(
      () => fail(`convstore did not start within ${timeoutMs} ms`), timeoutMs);
    const onData = (chunk) => {
      log += chunk.toString();
      if (settled) return;
      const listening = log.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      const adminKey = env.CONVSTORE_ADMIN_KEY ??
        log.match(/csk_[A-Za-z0-9_-]+/)?.[0];
      if (listening && adminKey) {
        settled = true;
        clearTimeout(timer);
        resolve({ url: listening[1], adminKey, dir, stop, log: () => log });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (e) => fail(`cannot run ${binary}: ${e.message}`));
    exited.then(({ code, signal }) =>
      fail(`convstore exited before it was ready (${code ?? signal})`));
  });
}

// A small JSON client bound to one server and key: every call is one fetch
// with a timeout. Resolves to {status, headers, text, json} (json undefined
// when the body is not JSON).
export function client(url, key) {
  return async function call(method, target, { json, headers = {} } = {}) {
    const h = { ...headers };
    if (key) h.Authorization = `Bearer ${key}`;
    let body;
    if (json !== undefined) {
      h['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    }
    const res = await fetch(url + target, { method, headers: h, body,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = await res.text();
    let parsed;
    try { parsed = JSON.parse(text); } catch { parsed = undefined; }
    return { status: res.status, headers: res.headers, text, json: parsed };
  };
}
