// Prometheus interop: `promtool check metrics` (the linter shipped with
// Prometheus) on GET /metrics of a real `convstore serve` after it served
// creates, appends, reads, a 404 and a 401, so every metric family has
// samples. promtool must exit 0 and print nothing. On top of what promtool
// checks, the scrape is parsed here: Content-Type of the text format 0.0.4,
// every family of the API contract present with HELP, TYPE and samples,
// histogram buckets cumulative with +Inf equal to _count, counters whose
// values match the traffic sent, and the log head equal to the events
// written. promtool itself is first shown to complain about a bad exposition,
// so a silent promtool cannot pass this test.
//
// Usage: node prometheus_metrics.test.mjs CONVSTORE_BINARY
// (promtool from PROMTOOL, else from PATH; Debian package prometheus)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { client, convstoreBinary, startServer } from './server.mjs';

convstoreBinary();  // usage and exit 2 without the binary

const PROMTOOL = process.env.PROMTOOL || 'promtool';
const PROMTOOL_TIMEOUT_MS = 30000;

// Runs `promtool check metrics` with `text` on stdin.
function promtoolCheck(text) {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`promtool did not finish in ${PROMTOOL_TIMEOUT_MS} ms`));
    }, PROMTOOL_TIMEOUT_MS);
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${PROMTOOL} (Debian package prometheus, ` +
        `see tools/install-deps): ${e.message}`));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {});  // promtool may exit before reading all
    child.stdin.end(text);
  });
}

// Parses the text exposition format into families:
// name -> {help, type, samples: [{name, labels, value}]}.
function parseExposition(text) {
  const families = new Map();
  const family = (name) => {
    if (!families.has(name)) families.set(name, { samples: [] });
    return families.get(name);
  };
  let current = null;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = line.match(/^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/);
    if (m) {
      const f = family(m[2]);
      assert.equal(f[m[1].toLowerCase()], undefined, `second ${m[1]} ${m[2]}`);
      f[m[1].toLowerCase()] = m[3];
      current = m[2];
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment: ${line}`);
    m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    assert.ok(m, `not a sample line: ${line}`);
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2];
    }
    const value = Number(m[3]);
    assert.ok(!Number.isNaN(value) || m[3] === 'NaN', `bad value: ${line}`);
    // A sample belongs to the family declared last (histogram samples carry
    // _bucket/_sum/_count suffixes).
    assert.ok(current && (m[1] === current || m[1].startsWith(`${current}_`)),
      `sample ${m[1]} outside its family (after ${current})`);
    families.get(current).samples.push({ name: m[1], labels, value });
  }
  return families;
}

function sample(families, family, name, labels = {}) {
  const f = families.get(family);
  return f?.samples.find((s) => s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

// Histogram checks: per label set (without le), buckets non-decreasing in le
// order, a +Inf bucket equal to _count, and a _sum.
function assertHistogram(families, name) {
  const f = families.get(name);
  const series = new Map();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(rest);
    if (!series.has(key)) series.set(key, { buckets: [] });
    const entry = series.get(key);
    if (s.name === `${name}_bucket`) {
      entry.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    } else if (s.name === `${name}_sum`) {
      entry.sum = s.value;
    } else if (s.name === `${name}_count`) {
      entry.count = s.value;
    } else {
      assert.fail(`${s.name} in histogram ${name}`);
    }
  }
  assert.ok(series.size > 0, `${name} has no series`);
  for (const [key, e] of series) {
    assert.ok(e.buckets.length > 1, `${name}${key}: no buckets`);
    for (let i = 1; i < e.buckets.length; i++) {
      assert.ok(e.buckets[i][0] > e.buckets[i - 1][0],
        `${name}${key}: le not increasing`);
      assert.ok(e.buckets[i][1] >= e.buckets[i - 1][1],
        `${name}${key}: buckets not cumulative`);
    }
    assert.equal(e.buckets.at(-1)[0], Infinity, `${name}${key}: no +Inf`);
    assert.equal(e.buckets.at(-1)[1], e.count, `${name}${key}: +Inf != _count`);
    assert.equal(typeof e.sum, 'number', `${name}${key}: no _sum`);
  }
}

let server;
let metricsRes;
let metricsText;
let eventCount;

before(async () => {
  server = await startServer();
  const api = client(server.url, server.adminKey);
  const ok = async (p, status) => {
    const r = await p;
    assert.equal(r.status, status, r.text);
    return r.json;
  };
  const agent = await ok(api('POST', '/v1/agents', { json: {
    name: 'Metrics', instructions: 'Count everything.' } }), 201);
  for (let c = 0; c < 2; c++) {
    const conv = await ok(api('POST', '/v1/conversations',
      { json: { agent_id: agent.id } }), 201);
    for (let i = 0; i < 3; i++) {
      await ok(api('POST', `/v1/conversations/${conv.id}/messages`,
        { json: { role: i % 2 ? 'assistant' : 'user', content: `turn ${i}` } }),
      201);
    }
    await ok(api('GET', `/v1/conversations/${conv.id}/messages`), 200);
  }
  await ok(api('GET', '/v1/conversations'), 200);
  await ok(api('GET', '/v1/conversations/conv-01900000-0000-7000-8000-000000000000'),
    404);
  await ok(client(server.url, 'csk_not_a_key')('GET', '/v1/agents'), 401);
  const events = await ok(api('GET', '/v1/admin/events?limit=10000'), 200);
  eventCount = events.length;
  metricsRes = await fetch(`${server.url}/metrics`,
    { signal: AbortSignal.timeout(15000) });
  metricsText = await metricsRes.text();
});

after(async () => {
  if (!server) return;
  const { code, signal } = await server.stop();
  assert.equal(code, 0, `server stopped with ${code ?? signal}`);
});

test('promtool complains about a bad exposition (it is really checking)',
  async () => {
    const bad = '# TYPE convstore_bad_requests counter\n' +
      'convstore_bad_requests 1\n';
    const r = await promtoolCheck(bad);
    assert.ok(r.code !== 0 || (r.stdout + r.stderr).trim() !== '',
      'promtool accepted a counter without HELP and without _total');
  });

test('promtool check metrics accepts GET /metrics: exit 0, no output',
  async () => {
    assert.equal(metricsRes.status, 200);
    const r = await promtoolCheck(metricsText);
    assert.equal(r.stdout + r.stderr, '',
      `promtool said:\n${r.stdout}${r.stderr}\non:\n${metricsText}`);
    assert.equal(r.code, 0);
  });

test('the scrape: text format 0.0.4, every family typed, with samples',
  () => {
    assert.match(metricsRes.headers.get('content-type'),
      /^text\/plain; ?version=0\.0\.4/);
    const families = parseExposition(metricsText);
    const expected = {
      convstore_log_head_position: 'gauge',
      convstore_append_batch_size: 'histogram',
      convstore_fsync_seconds_total: 'counter',
      convstore_read_model_lag_events: 'gauge',
      convstore_storage_background_jobs: 'gauge',
      convstore_storage_pending_compaction_bytes: 'gauge',
      convstore_http_requests_total: 'counter',
      convstore_http_request_duration_seconds: 'histogram',
    };
    for (const [name, type] of Object.entries(expected)) {
      const f = families.get(name);
      assert.ok(f, `${name} missing`);
      assert.equal(f.type, type, `${name} type`);
      assert.ok(f.help && f.help.trim() !== '', `${name} has no HELP`);
      assert.ok(f.samples.length > 0, `${name} has no samples`);
    }
    for (const [name, f] of families) {
      assert.ok(f.type && f.help, `${name}: HELP and TYPE`);
      assert.ok(f.samples.length > 0, `${name} has no samples`);
      if (f.type === 'histogram') assertHistogram(families, name);
      if (f.type === 'counter') {
        assert.ok(f.samples.every((s) => s.value >= 0), `${name} negative`);
      }
    }

    // The values follow the traffic sent.
    const req = (method, route, status) => sample(families,
      'convstore_http_requests_total', 'convstore_http_requests_total',
      { method, route, status })?.value;
    assert.equal(req('POST', '/v1/agents', '201'), 1);
    assert.equal(req('POST', '/v1/conversations', '201'), 2);
    assert.equal(req('POST', '/v1/conversations/{id}/messages', '201'), 6);
    assert.equal(req('GET', '/v1/conversations/{id}/messages', '200'), 2);
    assert.equal(req('GET', '/v1/conversations/{id}', '404'), 1);
    assert.ok(families.get('convstore_http_requests_total').samples
      .some((s) => s.labels.status === '401'), 'the 401 is counted');
    const duration = sample(families, 'convstore_http_request_duration_seconds',
      'convstore_http_request_duration_seconds_count',
      { method: 'POST', route: '/v1/conversations/{id}/messages',
        status: '201' });
    assert.equal(duration?.value, 6);

    assert.equal(sample(families, 'convstore_log_head_position',
      'convstore_log_head_position').value, eventCount);
    assert.equal(sample(families, 'convstore_read_model_lag_events',
      'convstore_read_model_lag_events').value, 0);
    for (const name of ['convstore_storage_background_jobs',
      'convstore_storage_pending_compaction_bytes']) {
      const v = sample(families, name, name).value;
      assert.ok(Number.isInteger(v) && v >= 0, `${name}: ${v}`);
    }
    // 1 agent + 2 conversations + 6 appends: 9 commands, in 1..9 groups.
    const commands = sample(families, 'convstore_append_batch_size',
      'convstore_append_batch_size_sum').value;
    const groups = sample(families, 'convstore_append_batch_size',
      'convstore_append_batch_size_count').value;
    assert.equal(commands, 9, 'commands committed');
    assert.ok(groups >= 1 && groups <= 9, `${groups} groups`);
    assert.ok(sample(families, 'convstore_fsync_seconds_total',
      'convstore_fsync_seconds_total').value > 0, 'fsync time counted');
  });
