// Contract test: http/openapi.json against the running server.
//
// Starts the real `convstore serve` on an ephemeral 127.0.0.1 port, sends
// requests to every operation of the document (its success case and every
// error status that can be provoked cheaply), and validates each response
// against the document with Ajv (JSON Schema 2020-12, as OpenAPI 3.1 uses):
// the status must be documented for the operation, every documented
// required header present, every documented header present matching its
// schema, the Content-Type one the document lists, and the body valid
// against the response schema (response objects are closed:
// additionalProperties false, so an undocumented field fails).
//
// Both directions of "documented == served":
//  - every operation of the document is exercised (and answers one of its
//    documented success statuses), and every documented error status is
//    provoked except the few listed in NOT_PROVOKED (5xx faults, races);
//  - SERVER_ROUTES is the route table of http/app.cc; the document's paths
//    and methods must equal it, every other method on each path must get
//    404 or 405 (with an Allow header naming exactly the documented
//    methods), and the table is re-checked against the dispatch(...) calls
//    in http/app.cc so a new route cannot go unnoticed.
//
// Webhook deliveries are checked against the document's top-level
// `webhooks` the same way: a receiver in this process takes the POSTs of a
// webhook subscribed to every event type, and each must carry the documented
// headers (its Convstore-Signature verifying with the webhook's secret) and
// a body valid against the documented request body of its event type.
//
// Usage: node openapi_contract.test.mjs CONVSTORE_BINARY
// (ctest passes $<TARGET_FILE:convstore>; CONVSTORE_BINARY works too). The
// server is started through server.mjs.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { convstoreBinary, startServer } from './server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const DOC_PATH = path.join(ROOT, 'http/openapi.json');
const APP_CC = path.join(ROOT, 'http/app.cc');
const BINARY = convstoreBinary();
const ADMIN = 'csk_openapi_contract_admin_key_0123456789';
const REQUEST_TIMEOUT_MS = 15000;

const DOC_BYTES = fs.readFileSync(DOC_PATH);
const DOC = JSON.parse(DOC_BYTES.toString('utf8'));

// ------------------------------------------------------------ the routes

// The server's routes: what App::Handlers::Route in http/app.cc serves
// (HEAD is answered wherever GET is and is not listed).
const SERVER_ROUTES = {
  '/healthz': ['GET'],
  '/readyz': ['GET'],
  '/metrics': ['GET'],
  '/v1/openapi.json': ['GET'],
  '/v1/agents': ['GET', 'POST'],
  '/v1/agents/{id}': ['GET', 'PATCH', 'DELETE'],
  '/v1/conversations': ['GET', 'POST'],
  '/v1/conversations/{id}': ['GET', 'PATCH', 'DELETE'],
  '/v1/conversations/{id}/token': ['POST'],
  '/v1/conversations/{id}/messages': ['GET', 'POST'],
  '/v1/conversations/{id}/messages/stream': ['GET'],
  '/v1/webhooks': ['GET', 'POST'],
  '/v1/webhooks/{id}': ['GET', 'DELETE'],
  '/v1/webhooks/{id}/deliveries': ['GET'],
  '/v1/admin/projections': ['GET'],
  '/v1/admin/projections/rebuild': ['POST'],
  '/v1/admin/events': ['GET'],
  '/v1/admin/events/stream': ['GET'],
  '/v1/admin/backups': ['POST'],
  '/v1/admin/api-keys': ['GET', 'POST'],
  '/v1/admin/api-keys/{id}': ['DELETE'],
  '/v1/admin/users/{user_id}': ['DELETE'],
};
// Routes http/app.cc answers outside its dispatch(...) helper.
const ROUTES_OUTSIDE_DISPATCH = [
  '/healthz',
  '/readyz',
  '/metrics',
  '/v1/openapi.json',
];
const PROBE_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head',
  'patch', 'trace'];

// Documented statuses the test does not provoke: server faults (a failed or
// full disk, a bug) and a retry racing its own first request.
const NOT_PROVOKED_EVERYWHERE = new Set([500, 503, 507]);
const NOT_PROVOKED = {
  // 409 here is only `idempotency_in_flight` (a retry while the first
  // request is in the writer): a race, not cheaply provoked.
  'POST /v1/agents': [409],
  'PATCH /v1/agents/{id}': [409],
  'DELETE /v1/agents/{id}': [409],
  'DELETE /v1/conversations/{id}': [409],
  'POST /v1/conversations': [409],
  'POST /v1/admin/api-keys': [409],
  'DELETE /v1/admin/api-keys/{id}': [409],
  'POST /v1/webhooks': [409],
  'DELETE /v1/webhooks/{id}': [409],
};

// The contract's error type for each status (API.md, "General").
const ERROR_TYPES = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'method_not_allowed',
  409: ['conflict_error', 'idempotency_error'],
  412: 'precondition_failed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'idempotency_error',
  431: 'invalid_request_error',
  500: 'internal_error',
  503: 'unavailable',
  507: 'unavailable',
};

// ------------------------------------------------------------ the document

function resolvePointer(ref) {
  assert.ok(ref.startsWith('#/'), `only local refs: ${ref}`);
  let node = DOC;
  for (const part of ref.slice(2).split('/')) {
    node = node[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    assert.ok(node !== undefined, `unresolved ref ${ref}`);
  }
  return node;
}

function deref(node) {
  while (node && typeof node === 'object' && '$ref' in node) {
    node = resolvePointer(node.$ref);
  }
  return node;
}

// "METHOD /path/template" -> operation object.
const OPERATIONS = new Map();
for (const [template, item] of Object.entries(DOC.paths)) {
  for (const method of HTTP_METHODS) {
    if (item[method]) {
      OPERATIONS.set(`${method.toUpperCase()} ${template}`, item[method]);
    }
  }
}

// Ajv over the document's schemas: components.schemas become $defs of one
// registered schema, and "#/components/schemas/X" refs point into it.
const SCHEMAS_ID = 'https://convstore.invalid/openapi/schemas.json';
const ajv = new Ajv2020({ strict: true, allErrors: true,
  allowUnionTypes: true });
addFormats(ajv);
// An OpenAPI annotation (which variant to pick); oneOf already decides.
ajv.addKeyword('discriminator');

function rewriteRefs(node) {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$ref' && typeof v === 'string' &&
        v.startsWith('#/components/schemas/')) {
      out[k] = `${SCHEMAS_ID}#/$defs/${v.slice('#/components/schemas/'.length)}`;
    } else if (k === 'mapping' && typeof v === 'object') {
      out[k] = v;  // discriminator mapping: names, not refs to follow
    } else {
      out[k] = rewriteRefs(v);
    }
  }
  return out;
}
ajv.addSchema({ $id: SCHEMAS_ID,
  $defs: rewriteRefs(DOC.components.schemas) });

const validators = new Map();
function validate(schema, value, where) {
  const key = JSON.stringify(schema);
  let v = validators.get(key);
  if (!v) {
    v = ajv.compile(rewriteRefs(schema));
    validators.set(key, v);
  }
  if (!v(value)) {
    const errors = v.errors.map((e) => `${e.instancePath || '/'} ` +
      `${e.message}${e.params?.additionalProperty ?
        ` ('${e.params.additionalProperty}')` : ''}`).join('; ');
    const shown = JSON.stringify(value);
    assert.fail(`${where}: does not match the document: ${errors}\n` +
      `  value: ${shown.length > 600 ? `${shown.slice(0, 600)}...` : shown}`);
  }
}

// ------------------------------------------------------------ the server

let server;  // from server.mjs: {url, adminKey, dir, stop}
let port;

// One request on a fresh connection, bounded in time. `json` is sent as
// application/json; `body` as given.
function send(method, target, { key, headers = {}, json, body } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (key) h.Authorization = `Bearer ${key}`;
    let payload = body;
    if (json !== undefined) {
      payload = JSON.stringify(json);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
        h['Content-Type'] = 'application/json';
      }
    }
    if (payload !== undefined) h['Content-Length'] = Buffer.byteLength(payload);
    const req = http.request({ host: '127.0.0.1', port, method,
      path: target, headers: h, agent: false });
    const timer = setTimeout(() => req.destroy(
      new Error(`${method} ${target}: no answer in ${REQUEST_TIMEOUT_MS} ms`)),
    REQUEST_TIMEOUT_MS);
    req.on('response', (res) => {
      const chunks = [];
      const finish = (complete = (b) => b) => {
        clearTimeout(timer);
        const raw = complete(Buffer.concat(chunks));
        resolve({ method, target, status: res.statusCode,
          headers: res.headers, raw, text: raw.toString('utf8') });
      };
      // An event stream never ends by itself: the whole events (and
      // comments) that arrived first are the body checked.
      if (String(res.headers['content-type']).startsWith('text/event-stream')) {
        res.on('data', (c) => {
          chunks.push(c);
          if (Buffer.concat(chunks).includes('\n\n')) {
            finish((b) => b.subarray(0, b.lastIndexOf('\n\n') + 2));
            req.destroy();
          }
        });
        res.on('error', () => {});
        return;
      }
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const raw = Buffer.concat(chunks);
        resolve({ method, target, status: res.statusCode,
          headers: res.headers, raw, text: raw.toString('utf8') });
      });
      res.on('error', (e) => { clearTimeout(timer); reject(e); });
    });
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.end(payload);
  });
}

// ------------------------------------------------------------ checking

const exercised = new Map();  // "METHOD /template" -> Set of statuses

// Validates `res` against operation `opKey` and records the status.
function check(opKey, res) {
  const op = OPERATIONS.get(opKey);
  assert.ok(op, `${opKey} is not in the document`);
  const where = `${opKey} (${res.method} ${res.target.slice(0, 120)}) -> ` +
    `${res.status}`;
  const documented = op.responses[String(res.status)];
  assert.ok(documented, `${where}: status not documented; body: ` +
    `${res.text.slice(0, 300)}`);
  const spec = deref(documented);
  for (const [name, h0] of Object.entries(spec.headers ?? {})) {
    const h = deref(h0);
    const value = res.headers[name.toLowerCase()];
    if (value === undefined) {
      assert.ok(!h.required, `${where}: required header ${name} missing`);
      continue;
    }
    validate(h.schema, value, `${where}: header ${name}`);
  }
  const contentType = res.headers['content-type'];
  if (!spec.content) {
    assert.equal(res.raw.length, 0, `${where}: a body where none is documented`);
    assert.equal(contentType, undefined, `${where}: Content-Type without body`);
  } else {
    assert.ok(contentType, `${where}: no Content-Type`);
    const essence = contentType.split(';')[0].trim().toLowerCase();
    const media = spec.content[essence];
    assert.ok(media, `${where}: Content-Type ${contentType} not documented ` +
      `(${Object.keys(spec.content).join(', ')})`);
    let body = res.text;
    if (essence === 'application/json') {
      try {
        body = JSON.parse(res.text);
      } catch (e) {
        assert.fail(`${where}: body is not JSON: ${res.text.slice(0, 200)}`);
      }
    }
    validate(media.schema, body, `${where}: body`);
    if (res.status >= 400) {
      const want = [ERROR_TYPES[res.status]].flat();
      assert.ok(want.includes(body.error.type),
        `${where}: error type ${body.error.type}, want ${want.join('|')}`);
    }
  }
  if (!exercised.has(opKey)) exercised.set(opKey, new Set());
  exercised.get(opKey).add(res.status);
  return res;
}

// Sends a request for operation `opKey` ("METHOD /template") to `target`,
// checks the answer against the document and that its status is `status`.
async function call(opKey, target, status, opts = {}) {
  const method = opKey.split(' ')[0];
  const res = await send(method, target, opts);
  check(opKey, res);
  assert.equal(res.status, status, `${opKey} ${target}: got ${res.status}, ` +
    `want ${status}: ${res.text.slice(0, 300)}`);
  return res;
}

function jsonOf(res) {
  return JSON.parse(res.text);
}

const BIG_BODY = `{"x":"${'a'.repeat(1024 * 1024)}"}`;
const BIG_HEADER = { 'X-Padding': 'p'.repeat(20 * 1024) };
const BAD_IDEMPOTENCY_KEY = { 'Idempotency-Key': 'k'.repeat(256) };
const UNKNOWN_UUID = '01900000-0000-7000-8000-000000000000';
let keyCounter = 0;
function newIdempotencyKey() {
  keyCounter += 1;
  return `openapi-contract-${process.pid}-${keyCounter}`;
}

// What every authenticated operation answers the same way: no key (401),
// headers over 16 KiB (431), a malformed Idempotency-Key (400); with a
// request body: not JSON (415), over 1 MiB (413).
async function commonErrors(opKey, target, key, { hasBody = false } = {}) {
  await call(opKey, target, 401);
  await call(opKey, target, 431, { key, headers: BIG_HEADER });
  await call(opKey, target, 400, { key, headers: BAD_IDEMPOTENCY_KEY,
    json: hasBody ? {} : undefined });
  if (hasBody) {
    await call(opKey, target, 415, { key, body: '{}',
      headers: { 'Content-Type': 'text/plain' } });
    await call(opKey, target, 413, { key, body: BIG_BODY,
      headers: { 'Content-Type': 'application/json' } });
  }
}

// A write with an Idempotency-Key: the first answer, its replay (same
// status, Idempotent-Replayed: true) and, with the same key on a different
// request (`other`), 422.
async function idempotent(opKey, target, status, opts, other) {
  const headers = { ...(opts.headers ?? {}),
    'Idempotency-Key': newIdempotencyKey() };
  const first = await call(opKey, target, status, { ...opts, headers });
  const replay = await call(opKey, target, status, { ...opts, headers });
  assert.equal(replay.headers['idempotent-replayed'], 'true',
    `${opKey}: a replay without Idempotent-Replayed`);
  await call(opKey, other.target ?? target, 422,
    { ...opts, ...other, headers });
  return { first, replay };
}

// ------------------------------------------------------------ the tests

const ctx = {};  // ids and keys shared by the tests below, in order

// A test that builds on the ones before it (through `ctx`): skipped, not
// failed with confusing errors, once one of those has failed.
let stepFailed = false;
function step(name, fn) {
  test(name, async (t) => {
    if (stepFailed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn(t);
    } catch (e) {
      stepFailed = true;
      throw e;
    }
  });
}

before(async () => {
  server = await startServer({ binary: BINARY,
    env: { CONVSTORE_ADMIN_KEY: ADMIN } });
  port = Number(new URL(server.url).port);
});

after(async () => {
  await server?.stop();
});

test('the document is the committed file, served without auth', async () => {
  const res = await call('GET /v1/openapi.json', '/v1/openapi.json', 200);
  assert.ok(res.raw.equals(DOC_BYTES), 'served bytes differ from http/openapi.json');
  assert.equal(DOC.openapi, '3.1.0');
  await call('GET /v1/openapi.json', '/v1/openapi.json?x=%zz', 400);
  await call('GET /v1/openapi.json', '/v1/openapi.json', 431,
    { headers: BIG_HEADER });
});

test('operations routes: healthz, readyz, metrics', async () => {
  for (const p of ['/healthz', '/readyz', '/metrics']) {
    await call(`GET ${p}`, p, 200);
    await call(`GET ${p}`, `${p}?x=%zz`, 400);
    await call(`GET ${p}`, p, 431, { headers: BIG_HEADER });
  }
});

step('admin: API keys', async () => {
  const op = 'POST /v1/admin/api-keys';
  const created = await idempotent(op, '/v1/admin/api-keys', 201,
    { key: ADMIN, json: { user_id: 'alice' } },
    { json: { user_id: 'alice', role: 'user' } });
  ctx.alice = jsonOf(created.first).key;
  assert.ok(ctx.alice, 'the first answer shows the key');
  assert.equal(jsonOf(created.replay).key, undefined, 'a replay hides the key');
  ctx.bob = jsonOf(await call(op, '/v1/admin/api-keys', 201,
    { key: ADMIN, json: { user_id: 'bob', role: null } })).key;
  await call(op, '/v1/admin/api-keys', 201,
    { key: ADMIN, json: { user_id: 'ops@example', role: 'admin' } });
  await call(op, '/v1/admin/api-keys', 400,
    { key: ADMIN, json: { user_id: 'not a user id!' } });
  await call(op, '/v1/admin/api-keys', 400,
    { key: ADMIN, json: { user_id: 'carol', role: 'root' } });
  await call(op, '/v1/admin/api-keys', 403,
    { key: ctx.alice, json: { user_id: 'mallory' } });
  await commonErrors(op, '/v1/admin/api-keys', ADMIN, { hasBody: true });

  const list = 'GET /v1/admin/api-keys';
  const keys = jsonOf(await call(list, '/v1/admin/api-keys', 200,
    { key: ADMIN }));
  assert.ok(keys.length >= 4);
  await call(list, '/v1/admin/api-keys', 403, { key: ctx.bob });
  await commonErrors(list, '/v1/admin/api-keys', ADMIN);

  const del = 'DELETE /v1/admin/api-keys/{id}';
  const carol = jsonOf(await call(op, '/v1/admin/api-keys', 201,
    { key: ADMIN, json: { user_id: 'carol' } }));
  const dave = jsonOf(await call(op, '/v1/admin/api-keys', 201,
    { key: ADMIN, json: { user_id: 'dave' } }));
  await call(del, `/v1/admin/api-keys/${carol.id}`, 403, { key: ctx.alice });
  await idempotent(del, `/v1/admin/api-keys/${carol.id}`, 204,
    { key: ADMIN }, { target: `/v1/admin/api-keys/${dave.id}` });
  await call('GET /v1/agents', '/v1/agents', 401, { key: carol.key });
  await call(del, `/v1/admin/api-keys/key_${UNKNOWN_UUID}`, 404,
    { key: ADMIN });
  await commonErrors(del, `/v1/admin/api-keys/${dave.id}`, ADMIN);
  const revoked = jsonOf(await call(list, '/v1/admin/api-keys', 200,
    { key: ADMIN })).find((k) => k.id === carol.id);
  assert.ok(revoked.revoked_at, 'revoked_at is set');
});

step('agents', async () => {
  const create = 'POST /v1/agents';
  const created = await idempotent(create, '/v1/agents', 201,
    { key: ctx.alice, json: { name: 'Support',
      instructions: 'You are a helpful product support agent.',
      dispatch_name: 'support-agent', metadata: { tier: 'gold' } } },
    { json: { name: 'Other' } });
  ctx.agent = jsonOf(created.first);
  assert.equal(created.replay.headers.location, `/v1/agents/${ctx.agent.id}`);
  ctx.agent2 = jsonOf(await call(create, '/v1/agents', 201,
    { key: ctx.alice, json: { name: 'Plain', instructions: null,
      dispatch_name: null, metadata: null, unknown_field: 1 } }));
  ctx.bobAgent = jsonOf(await call(create, '/v1/agents', 201,
    { key: ctx.bob, json: { name: 'Bob agent' } }));
  await call(create, '/v1/agents', 400, { key: ctx.alice, json: {} });
  await call(create, '/v1/agents', 400, { key: ctx.alice, body: '{"name":',
    headers: { 'Content-Type': 'application/json' } });
  await commonErrors(create, '/v1/agents', ctx.alice, { hasBody: true });

  const list = 'GET /v1/agents';
  const page = await call(list, '/v1/agents?limit=1', 200, { key: ctx.alice });
  assert.ok(page.headers.link, 'a first page of 1 has a Link');
  const next = page.headers.link.match(/^<([^>]+)>/)[1];
  await call(list, next, 200, { key: ctx.alice });
  await call(list, '/v1/agents', 200, { key: ADMIN });
  await call(list, '/v1/agents?limit=0', 400, { key: ctx.alice });
  await call(list, '/v1/agents?after=!!', 400, { key: ctx.alice });
  await commonErrors(list, '/v1/agents', ctx.alice);

  const get = 'GET /v1/agents/{id}';
  const one = `/v1/agents/${ctx.agent.id}`;
  const got = await call(get, one, 200, { key: ctx.alice });
  await call(get, one, 403, { key: ctx.bob });
  await call(get, `/v1/agents/${UNKNOWN_UUID}`, 404, { key: ctx.alice });
  await call(get, '/v1/agents/not-an-id', 404, { key: ctx.alice });
  await commonErrors(get, one, ctx.alice);

  const patch = 'PATCH /v1/agents/{id}';
  await call(patch, one, 200, { key: ctx.alice,
    headers: { 'If-Match': got.headers.etag },
    json: { instructions: 'Be brief.', metadata: { tier: 'silver' } } });
  await call(patch, one, 412, { key: ctx.alice,
    headers: { 'If-Match': '"999"' }, json: { name: 'X' } });
  await call(patch, one, 200, { key: ctx.alice, headers: { 'If-Match': '*' },
    json: {} });
  await idempotent(patch, one, 200,
    { key: ctx.alice, json: { name: 'Support 2' } },
    { json: { name: 'Support 3' } });
  await call(patch, one, 403, { key: ctx.bob, json: { name: 'Mine' } });
  await call(patch, `/v1/agents/${UNKNOWN_UUID}`, 404,
    { key: ctx.alice, json: { name: 'X' } });
  await call(patch, one, 400, { key: ctx.alice, json: { name: 5 } });
  await commonErrors(patch, one, ctx.alice, { hasBody: true });

  const del = 'DELETE /v1/agents/{id}';
  const doomed = jsonOf(await call(create, '/v1/agents', 201,
    { key: ctx.alice, json: { name: 'Doomed' } }));
  const gone = `/v1/agents/${doomed.id}`;
  await call(del, gone, 412, { key: ctx.alice,
    headers: { 'If-Match': '"7"' } });
  await call(del, gone, 403, { key: ctx.bob });
  await commonErrors(del, gone, ctx.alice);
  await idempotent(del, gone, 204, { key: ctx.alice },
    { target: `/v1/agents/${ctx.agent2.id}` });
  await call(del, gone, 404, { key: ctx.alice });
  await call(get, gone, 404, { key: ctx.alice });
  ctx.deletedAgent = doomed.id;
});

step('conversations', async () => {
  const create = 'POST /v1/conversations';
  const created = await idempotent(create, '/v1/conversations', 201,
    { key: ctx.alice, json: { agent_id: ctx.agent.id,
      title: 'Product Support Session', metadata: { channel: 'web' } } },
    { json: { agent_id: ctx.agent.id } });
  ctx.conv = jsonOf(created.first);
  assert.ok(jsonOf(created.replay).token, 'a replay carries a fresh token');
  ctx.conv2 = jsonOf(await call(create, '/v1/conversations', 201,
    { key: ctx.alice, json: { agent_id: ctx.agent2.id, title: null } }));
  ctx.conv3 = jsonOf(await call(create, '/v1/conversations', 201,
    { key: ctx.alice, json: { agent_id: ctx.agent.id } }));
  ctx.bobConv = jsonOf(await call(create, '/v1/conversations', 201,
    { key: ctx.bob, json: { agent_id: ctx.bobAgent.id } }));
  await call(create, '/v1/conversations', 400, { key: ctx.alice,
    json: { title: 'no agent' } });
  await call(create, '/v1/conversations', 403, { key: ctx.alice,
    json: { agent_id: ctx.bobAgent.id } });
  await call(create, '/v1/conversations', 404, { key: ctx.alice,
    json: { agent_id: UNKNOWN_UUID } });
  await call(create, '/v1/conversations', 404, { key: ctx.alice,
    json: { agent_id: ctx.deletedAgent } });
  await commonErrors(create, '/v1/conversations', ctx.alice,
    { hasBody: true });

  const list = 'GET /v1/conversations';
  const page = await call(list, '/v1/conversations?limit=1', 200,
    { key: ctx.alice });
  assert.ok(page.headers.link, 'a first page of 1 has a Link');
  await call(list, page.headers.link.match(/^<([^>]+)>/)[1], 200,
    { key: ctx.alice });
  await call(list, `/v1/conversations?agent_id=${ctx.agent.id}&status=active`,
    200, { key: ctx.alice });
  await call(list, '/v1/conversations', 200, { key: ADMIN });
  await call(list, '/v1/conversations?status=bogus', 400, { key: ctx.alice });
  await call(list, '/v1/conversations?limit=101', 400, { key: ctx.alice });
  await commonErrors(list, '/v1/conversations', ctx.alice);

  const get = 'GET /v1/conversations/{id}';
  const one = `/v1/conversations/${ctx.conv.id}`;
  const got = await call(get, one, 200, { key: ctx.alice });
  await call(get, one, 200, { key: ADMIN });
  await call(get, one, 403, { key: ctx.bob });
  await call(get, `/v1/conversations/conv-${UNKNOWN_UUID}`, 404,
    { key: ctx.alice });
  await commonErrors(get, one, ctx.alice);

  const patch = 'PATCH /v1/conversations/{id}';
  await call(patch, one, 200, { key: ctx.alice,
    headers: { 'If-Match': got.headers.etag },
    json: { title: 'Renamed', metadata: null } });
  await call(patch, one, 412, { key: ctx.alice,
    headers: { 'If-Match': '"77"' }, json: { title: 'X' } });
  await idempotent(patch, one, 200,
    { key: ctx.alice, json: { title: 'Renamed again' } },
    { json: { title: 'Renamed once more' } });
  const two = `/v1/conversations/${ctx.conv2.id}`;
  await call(patch, two, 200, { key: ctx.alice,
    json: { status: 'completed' } });
  await call(patch, two, 409, { key: ctx.alice, json: { status: 'active' } });
  await call(patch, one, 400, { key: ctx.alice, json: { status: 'bogus' } });
  await call(patch, one, 403, { key: ctx.bob, json: { title: 'Mine' } });
  await call(patch, `/v1/conversations/conv-${UNKNOWN_UUID}`, 404,
    { key: ctx.alice, json: { title: 'X' } });
  await commonErrors(patch, one, ctx.alice, { hasBody: true });

  const token = 'POST /v1/conversations/{id}/token';
  const t = `${one}/token`;
  await idempotent(token, t, 201, { key: ctx.alice },
    { target: `/v1/conversations/${ctx.conv3.id}/token` });
  await call(token, t, 201, { key: ctx.alice, json: { ignored: true } });
  await call(token, `${two}/token`, 409, { key: ctx.alice });
  await call(token, t, 403, { key: ctx.bob });
  await call(token, `/v1/conversations/conv-${UNKNOWN_UUID}/token`, 404,
    { key: ctx.alice });
  await commonErrors(token, t, ctx.alice, { hasBody: true });

  const del = 'DELETE /v1/conversations/{id}';
  const doomed = jsonOf(await call(create, '/v1/conversations', 201,
    { key: ctx.alice, json: { agent_id: ctx.agent.id, title: 'Doomed' } }));
  const gone = `/v1/conversations/${doomed.id}`;
  await call(del, gone, 412, { key: ctx.alice,
    headers: { 'If-Match': '"7"' } });
  await call(del, gone, 403, { key: ctx.bob });
  await commonErrors(del, gone, ctx.alice);
  await idempotent(del, gone, 204, { key: ctx.alice },
    { target: `/v1/conversations/${ctx.conv3.id}` });
  await call(del, gone, 404, { key: ctx.alice });
  await call('GET /v1/conversations/{id}', gone, 404, { key: ctx.alice });
  ctx.erasedConv = doomed.id;
});

step('messages', async () => {
  const append = 'POST /v1/conversations/{id}/messages';
  const m = `/v1/conversations/${ctx.conv.id}/messages`;
  await idempotent(append, m, 201,
    { key: ctx.alice, json: { role: 'assistant',
      content: 'Hello! How can I help you today?' } },
    { json: { role: 'user', content: 'Something else' } });
  await call(append, m, 201, { key: ctx.alice,
    json: { role: 'user', content: 'I need help with product setup' } });
  await call(append, m, 400, { key: ctx.alice,
    json: { role: 'robot', content: 'beep' } });
  await call(append, m, 400, { key: ctx.alice,
    json: { role: 'user', content: '' } });
  await call(append, `/v1/conversations/${ctx.conv2.id}/messages`, 409,
    { key: ctx.alice, json: { role: 'user', content: 'late' } });
  await call(append, m, 403, { key: ctx.bob,
    json: { role: 'user', content: 'hi' } });
  await call(append, `/v1/conversations/conv-${UNKNOWN_UUID}/messages`, 404,
    { key: ctx.alice, json: { role: 'user', content: 'hi' } });
  await commonErrors(append, m, ctx.alice, { hasBody: true });

  const list = 'GET /v1/conversations/{id}/messages';
  const all = jsonOf(await call(list, m, 200, { key: ctx.alice }));
  assert.equal(all[0].role, 'system', 'instructions are the first message');
  const page = await call(list, `${m}?limit=1`, 200, { key: ctx.alice });
  assert.ok(page.headers.link, 'a first page of 1 has a Link');
  await call(list, page.headers.link.match(/^<([^>]+)>/)[1], 200,
    { key: ctx.alice });
  await call(list, `${m}?after=${all[0].id}`, 200, { key: ctx.alice });
  // A transcript over 64 KiB is streamed (chunked): still the same array.
  const long = `/v1/conversations/${ctx.conv3.id}/messages`;
  for (let i = 0; i < 3; i += 1) {
    await call(append, long, 201, { key: ctx.alice,
      json: { role: 'user', content: 'x'.repeat(40000) } });
  }
  const streamed = await call(list, long, 200, { key: ctx.alice });
  assert.equal(streamed.headers['transfer-encoding'], 'chunked');
  await call(list, `${m}?after=msg-${UNKNOWN_UUID}`, 400, { key: ctx.alice });
  await call(list, `${m}?limit=1001`, 400, { key: ctx.alice });
  await call(list, m, 403, { key: ctx.bob });
  await call(list, `/v1/conversations/conv-${UNKNOWN_UUID}/messages`, 404,
    { key: ctx.alice });
  await commonErrors(list, m, ctx.alice);

  const follow = 'GET /v1/conversations/{id}/messages/stream';
  const live = await call(follow, `${m}/stream`, 200, { key: ctx.alice });
  assert.match(live.text, /^id: [0-9]+\nevent: message\ndata: \{"id":/);
  await call(follow, `${m}/stream`, 400, { key: ctx.alice,
    headers: { 'Last-Event-ID': 'x' } });
  await call(follow, `${m}/stream`, 403, { key: ctx.bob });
  await call(follow, `/v1/conversations/conv-${UNKNOWN_UUID}/messages/stream`,
    404, { key: ctx.alice });
  await commonErrors(follow, `${m}/stream`, ctx.alice);
});

// ------------------------------------------------------------ webhooks

// A receiver for webhook deliveries on an ephemeral 127.0.0.1 port: keeps
// every request (method, headers, raw body) and answers 204.
async function startReceiver() {
  const received = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, headers: req.headers,
        raw: Buffer.concat(chunks) });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return { received, url: `http://127.0.0.1:${srv.address().port}/hook`,
    close: () => new Promise((resolve) => {
      srv.closeAllConnections();
      srv.close(resolve);
    }) };
}

// Polls `probe` (async, truthy when done) every 50 ms for up to `ms`.
async function waitFor(what, probe, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Checks one received delivery against the document's `webhooks` entry of
// its Convstore-Event: the method, every documented header, the
// Content-Type, the body, and the signature (with the webhook's `secret`).
// Returns the parsed body.
function checkDelivery(d, secret) {
  const type = d.headers['convstore-event'];
  const op = DOC.webhooks?.[type]?.post;
  assert.ok(op, `a delivery of an undocumented type: ${type}`);
  const where = `webhook ${type} (${d.headers['convstore-delivery']})`;
  assert.equal(d.method, 'POST', `${where}: method`);
  for (const p0 of op.parameters ?? []) {
    const p = deref(p0);
    assert.equal(p.in, 'header');
    const value = d.headers[p.name.toLowerCase()];
    if (value === undefined) {
      assert.ok(!p.required, `${where}: required header ${p.name} missing`);
      continue;
    }
    validate(p.schema, value, `${where}: header ${p.name}`);
  }
  const content = deref(op.requestBody).content;
  const essence = String(d.headers['content-type']).split(';')[0].trim()
    .toLowerCase();
  assert.ok(content[essence], `${where}: Content-Type ` +
    `${d.headers['content-type']} not documented`);
  let body;
  try {
    body = JSON.parse(d.raw.toString('utf8'));
  } catch (e) {
    assert.fail(`${where}: body is not JSON: ${d.raw.toString().slice(0, 200)}`);
  }
  validate(content[essence].schema, body, `${where}: body`);
  assert.equal(body.type, type, `${where}: type and Convstore-Event differ`);
  assert.equal(body.id, d.headers['convstore-delivery'],
    `${where}: id and Convstore-Delivery differ`);
  // Stripe's scheme: v1 = hex HMAC-SHA256(secret, "<t>.<body>").
  const sig = Object.fromEntries(d.headers['convstore-signature'].split(',')
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const expected = crypto.createHmac('sha256', secret).update(`${sig.t}.`)
    .update(d.raw).digest('hex');
  assert.equal(sig.v1, expected, `${where}: the signature does not verify`);
  assert.ok(Math.abs(Date.now() / 1000 - Number(sig.t)) < 300,
    `${where}: t is not now`);
  return body;
}

step('webhooks', async () => {
  const receiver = await startReceiver();
  try {
    const create = 'POST /v1/webhooks';
    const all = Object.keys(DOC.webhooks);
    const created = await idempotent(create, '/v1/webhooks', 201,
      { key: ctx.alice, json: { url: receiver.url, events: all,
        description: 'contract test' } },
      { json: { url: receiver.url, events: ['message.created'] } });
    const hook = jsonOf(created.first);
    assert.match(hook.secret ?? '', /^whsec_/, 'the first answer shows the secret');
    assert.equal(jsonOf(created.replay).secret, undefined,
      'a replay hides the secret');
    assert.equal(created.first.headers.location, `/v1/webhooks/${hook.id}`);
    assert.equal(created.replay.headers.location, `/v1/webhooks/${hook.id}`);
    assert.deepEqual(hook.events, all);
    // One that can never deliver: nothing listens on port 9.
    const dead = jsonOf(await call(create, '/v1/webhooks', 201,
      { key: ctx.alice, json: { url: 'http://127.0.0.1:9/',
        events: ['message.created'], description: null, unknown_field: 1 } }));
    const bobHook = jsonOf(await call(create, '/v1/webhooks', 201,
      { key: ctx.bob, json: { url: receiver.url,
        events: ['conversation.created'] } }));
    for (const [json, param] of [
      [{ events: all }, 'url'],
      [{ url: 'ftp://example.com/', events: all }, 'url'],
      [{ url: '/relative', events: all }, 'url'],
      [{ url: 'http://user:pw@example.com/', events: all }, 'url'],
      [{ url: 'http://example.com/#frag', events: all }, 'url'],
      [{ url: `http://example.com/${'a'.repeat(2048)}`, events: all }, 'url'],
      [{ url: receiver.url }, 'events'],
      [{ url: receiver.url, events: [] }, 'events'],
      [{ url: receiver.url, events: ['message.deleted'] }, 'events'],
      [{ url: receiver.url, events: ['message.created', 'message.created'] },
        'events'],
      [{ url: receiver.url, events: all, description: 5 }, 'description'],
      [{ url: receiver.url, events: all, description: 'd'.repeat(501) },
        'description'],
    ]) {
      const res = await call(create, '/v1/webhooks', 400,
        { key: ctx.alice, json });
      assert.equal(jsonOf(res).error.param, param, JSON.stringify(json));
    }
    await commonErrors(create, '/v1/webhooks', ctx.alice, { hasBody: true });

    // Events of alice's conversation reach alice's webhooks only; bob's
    // conversation reaches bob's.
    const conv = jsonOf(await call('POST /v1/conversations',
      '/v1/conversations', 201, { key: ctx.alice,
        json: { agent_id: ctx.agent.id, title: 'Webhook test' } }));
    const m = `/v1/conversations/${conv.id}/messages`;
    const said = jsonOf(await call('POST /v1/conversations/{id}/messages', m,
      201, { key: ctx.alice, json: { role: 'user', content: 'Hook me' } }));
    const transcript = jsonOf(await call('GET /v1/conversations/{id}/messages',
      m, 200, { key: ctx.alice }));
    assert.equal(transcript.length, 2, 'the instructions, then the message');
    await call('PATCH /v1/conversations/{id}', `/v1/conversations/${conv.id}`,
      200, { key: ctx.alice, json: { status: 'completed' } });
    const bobConv = jsonOf(await call('POST /v1/conversations',
      '/v1/conversations', 201, { key: ctx.bob,
        json: { agent_id: ctx.bobAgent.id } }));

    const of = (id) => receiver.received.filter((d) =>
      d.raw.includes(`"webhook_id":"${id}"`));
    await waitFor('5 deliveries to alice and 1 to bob', () =>
      of(hook.id).length >= 5 && of(bobHook.id).length >= 1);
    const bodies = of(hook.id).map((d) => checkDelivery(d, hook.secret));
    assert.deepEqual(bodies.map((b) => b.type), ['conversation.created',
      'message.created', 'message.created', 'conversation.status_changed',
      'conversation.completed'], 'in log order');
    assert.deepEqual([...new Set(bodies.map((b) => b.type))].sort(),
      [...all].sort(), 'every documented webhook type was delivered');
    assert.equal(new Set(bodies.map((b) => b.id)).size, 5, 'distinct ids');
    for (let i = 1; i < bodies.length; i += 1) {
      assert.ok(bodies[i].position >= bodies[i - 1].position, 'in log order');
    }
    const { token, ...convNoToken } = conv;
    assert.ok(token);
    assert.deepEqual(bodies[0].data, convNoToken);
    assert.deepEqual(bodies[1].data, transcript[0]);
    assert.deepEqual(bodies[2].data, said);
    assert.equal(bodies[3].data.to, 'completed');
    assert.deepEqual(bodies[4].data.messages, transcript);
    const bobBodies = of(bobHook.id).map((d) => checkDelivery(d,
      bobHook.secret));
    assert.equal(bobBodies.length, 1);
    assert.equal(bobBodies[0].data.id, bobConv.id, "only bob's conversation");

    const list = 'GET /v1/webhooks';
    const mine = jsonOf(await call(list, '/v1/webhooks', 200,
      { key: ctx.alice }));
    assert.deepEqual(mine.map((w) => w.id), [hook.id, dead.id], 'oldest first');
    const { secret, ...hookNoSecret } = hook;
    assert.deepEqual(mine[0], hookNoSecret);
    assert.deepEqual(jsonOf(await call(list, '/v1/webhooks', 200,
      { key: ADMIN })), [], "an admin lists only its own user's");
    await commonErrors(list, '/v1/webhooks', ctx.alice);

    const get = 'GET /v1/webhooks/{id}';
    const one = `/v1/webhooks/${hook.id}`;
    assert.deepEqual(jsonOf(await call(get, one, 200, { key: ctx.alice })),
      hookNoSecret);
    await call(get, one, 200, { key: ADMIN });
    await call(get, one, 403, { key: ctx.bob });
    await call(get, `/v1/webhooks/wh_${UNKNOWN_UUID}`, 404, { key: ctx.alice });
    await call(get, '/v1/webhooks/not-an-id', 404, { key: ctx.alice });
    await commonErrors(get, one, ctx.alice);

    const deliveries = 'GET /v1/webhooks/{id}/deliveries';
    // Each attempt is recorded right after the receiver's answer.
    const attempts = await waitFor('5 recorded attempts', async () => {
      const res = jsonOf(await call(deliveries, `${one}/deliveries`, 200,
        { key: ctx.alice }));
      return res.length >= 5 && res;
    });
    assert.equal(attempts.length, 5, JSON.stringify(attempts));
    for (const a of attempts) {
      assert.equal(a.outcome, 'delivered');
      assert.equal(a.status, 204);
    }
    assert.deepEqual(attempts.map((a) => a.delivery_id).reverse(),
      bodies.map((b) => b.id), 'newest first');
    const two = jsonOf(await call(deliveries, `${one}/deliveries?limit=2`, 200,
      { key: ctx.alice }));
    assert.deepEqual(two, attempts.slice(0, 2));
    const failed = await waitFor('a failed attempt', async () => {
      const res = await call(deliveries, `/v1/webhooks/${dead.id}/deliveries`,
        200, { key: ctx.alice });
      return jsonOf(res)[0];
    });
    assert.equal(failed.outcome, 'retrying', JSON.stringify(failed));
    assert.equal(failed.status, null);
    assert.ok(failed.error && failed.next_attempt_at, JSON.stringify(failed));
    await call(deliveries, `/v1/webhooks/${bobHook.id}/deliveries`, 200,
      { key: ADMIN });
    await call(deliveries, `${one}/deliveries?limit=0`, 400, { key: ctx.alice });
    await call(deliveries, `${one}/deliveries?limit=101`, 400,
      { key: ctx.alice });
    await call(deliveries, `${one}/deliveries`, 403, { key: ctx.bob });
    await call(deliveries, `/v1/webhooks/wh_${UNKNOWN_UUID}/deliveries`, 404,
      { key: ctx.alice });
    await commonErrors(deliveries, `${one}/deliveries`, ctx.alice);

    const del = 'DELETE /v1/webhooks/{id}';
    const gone = `/v1/webhooks/${dead.id}`;
    await call(del, gone, 403, { key: ctx.bob });
    await commonErrors(del, gone, ctx.alice);
    await idempotent(del, gone, 204, { key: ctx.alice }, { target: one });
    await call(del, gone, 404, { key: ctx.alice });
    await call(get, gone, 404, { key: ctx.alice });
    await call(deliveries, `${gone}/deliveries`, 404, { key: ctx.alice });
    await call(del, `/v1/webhooks/${bobHook.id}`, 204, { key: ADMIN });
    await call(del, one, 204, { key: ctx.alice });
    assert.deepEqual(jsonOf(await call(list, '/v1/webhooks', 200,
      { key: ctx.alice })), []);
  } finally {
    await receiver.close();
  }
});

step('admin: erase a user', async () => {
  const op = 'DELETE /v1/admin/users/{user_id}';
  const erin = jsonOf(await call('POST /v1/admin/api-keys',
    '/v1/admin/api-keys', 201, { key: ADMIN, json: { user_id: 'erin' } }));
  const agent = jsonOf(await call('POST /v1/agents', '/v1/agents', 201,
    { key: erin.key, json: { name: 'Erin agent' } }));
  const conv = jsonOf(await call('POST /v1/conversations',
    '/v1/conversations', 201,
    { key: erin.key, json: { agent_id: agent.id, title: 'Erin call' } }));
  await call('POST /v1/conversations/{id}/messages',
    `/v1/conversations/${conv.id}/messages`, 201,
    { key: erin.key, json: { role: 'user', content: 'erin says hi' } });

  await call(op, '/v1/admin/users/erin', 403, { key: ctx.alice });
  await call(op, '/v1/admin/users/not%20a%20user', 404, { key: ADMIN });
  await commonErrors(op, '/v1/admin/users/erin', ADMIN);
  const report = jsonOf(await call(op, '/v1/admin/users/erin', 200,
    { key: ADMIN }));
  assert.equal(report.status, 'erased');
  assert.deepEqual(report.erased, { agents: 1, conversations: 1, messages: 1,
    api_keys: 1, webhooks: 0 });
  assert.deepEqual(jsonOf(await call(op, '/v1/admin/users/erin', 200,
    { key: ADMIN })), report, 'a repeat reports the same erasure');
  await call('GET /v1/agents', '/v1/agents', 401, { key: erin.key });
  await call('GET /v1/conversations/{id}', `/v1/conversations/${conv.id}`,
    404, { key: ADMIN });
  // An admin cannot erase themselves: the key making the request is theirs.
  const admins = jsonOf(await call('GET /v1/admin/api-keys',
    '/v1/admin/api-keys', 200, { key: ADMIN }));
  const me = admins.find((k) => k.role === 'admin');
  await call(op, `/v1/admin/users/${me.user_id}`, 400, { key: ADMIN });
});

step('admin: backups', async () => {
  const op = 'POST /v1/admin/backups';
  const dir = path.join(server.dir, 'backup-1');
  await call(op, '/v1/admin/backups', 201, { key: ADMIN, json: { dir } });
  await call(op, '/v1/admin/backups', 409, { key: ADMIN, json: { dir } });
  await call(op, '/v1/admin/backups', 400, { key: ADMIN,
    json: { dir: 'relative/dir' } });
  await call(op, '/v1/admin/backups', 403, { key: ctx.alice,
    json: { dir: path.join(server.dir, 'backup-2') } });
  await commonErrors(op, '/v1/admin/backups', ADMIN, { hasBody: true });
});

step('admin: projections and the online rebuild', async () => {
  const status = 'GET /v1/admin/projections';
  await call(status, '/v1/admin/projections', 200, { key: ADMIN });
  await call(status, '/v1/admin/projections', 403, { key: ctx.alice });
  await commonErrors(status, '/v1/admin/projections', ADMIN);

  const op = 'POST /v1/admin/projections/rebuild';
  const target = '/v1/admin/projections/rebuild';
  await call(op, target, 403, { key: ctx.alice });
  await commonErrors(op, target, ADMIN, { hasBody: true });
  // Two at once: one starts it, the other finds it running (409). A small
  // store rebuilds fast, so try a few times.
  const waitIdle = async () => {
    for (let i = 0; i < 300; i += 1) {
      const s = jsonOf(await call(status, '/v1/admin/projections', 200,
        { key: ADMIN }));
      if (s.rebuild.state !== 'building') return s;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail('the rebuild did not finish in 15 s');
  };
  let conflicts = 0;
  for (let attempt = 0; attempt < 10 && conflicts === 0; attempt += 1) {
    await waitIdle();
    const both = await Promise.all([send('POST', target, { key: ADMIN }),
      send('POST', target, { key: ADMIN })]);
    for (const res of both) {
      check(op, res);
      assert.ok([202, 409].includes(res.status), `rebuild: ${res.status}`);
      if (res.status === 409) conflicts += 1;
    }
  }
  assert.ok(conflicts > 0, 'never saw 409 rebuild_in_progress');
  const done = await waitIdle();
  assert.equal(done.rebuild.state, 'done', JSON.stringify(done));
});

step('admin: the event log holds every event type, each as documented',
  async () => {
    const op = 'GET /v1/admin/events';
    const page = await call(op, '/v1/admin/events?limit=2', 200,
      { key: ADMIN });
    assert.ok(page.headers.link, 'a first page of 2 has a Link');
    await call(op, page.headers.link.match(/^<([^>]+)>/)[1], 200,
      { key: ADMIN });
    const events = jsonOf(await call(op, '/v1/admin/events?from=1&limit=10000',
      200, { key: ADMIN }));
    const types = new Set(events.map((e) => e.type));
    const documented = DOC.components.schemas.EventEnvelope.oneOf.map(
      (r) => deref(r).properties.type.const);
    assert.deepEqual([...types].sort(), [...documented].sort(),
      'every documented event type was produced and validated');
    await call(op, '/v1/admin/events?from=0', 400, { key: ADMIN });
    await call(op, '/v1/admin/events?limit=10001', 400, { key: ADMIN });
    await call(op, '/v1/admin/events', 403, { key: ctx.alice });
    await commonErrors(op, '/v1/admin/events', ADMIN);
  });

step('admin: the event log as a stream of server-sent events', async () => {
  const op = 'GET /v1/admin/events/stream';
  const first = await call(op, '/v1/admin/events/stream?from=1', 200,
    { key: ADMIN });
  assert.match(first.text, /^id: 1\ndata: \{"position":1,/);
  const resumed = await call(op, '/v1/admin/events/stream', 200,
    { key: ADMIN, headers: { 'Last-Event-ID': '1' } });
  assert.match(resumed.text, /^id: 2\n/);
  await call(op, '/v1/admin/events/stream?from=0', 400, { key: ADMIN });
  await call(op, '/v1/admin/events/stream', 400,
    { key: ADMIN, headers: { 'Last-Event-ID': 'x' } });
  await call(op, '/v1/admin/events/stream', 403, { key: ctx.alice });
  await commonErrors(op, '/v1/admin/events/stream', ADMIN);
});

test('the document lists exactly the server routes', () => {
  const documented = {};
  for (const key of OPERATIONS.keys()) {
    const [method, template] = key.split(' ');
    (documented[template] ??= []).push(method);
  }
  const norm = (o) => Object.fromEntries(Object.entries(o)
    .map(([k, v]) => [k, [...v].sort()]).sort(([a], [b]) => a.localeCompare(b)));
  assert.deepEqual(norm(documented), norm(SERVER_ROUTES));

  // SERVER_ROUTES against http/app.cc: the method lists of its dispatch(...)
  // calls (one per /v1 route) must be those of the table.
  const source = fs.readFileSync(APP_CC, 'utf8');
  const inApp = [...source.matchAll(/dispatch\(\s*"([A-Z, ]+)"/g)]
    .map((m) => m[1].split(', ').sort().join(',')).sort();
  const inTable = Object.entries(SERVER_ROUTES)
    .filter(([p]) => !ROUTES_OUTSIDE_DISPATCH.includes(p))
    .map(([, methods]) => [...methods].sort().join(',')).sort();
  assert.deepEqual(inApp, inTable, 'http/app.cc routes changed: update ' +
    'SERVER_ROUTES and http/openapi.json');
});

step('methods a path does not document are 404 or 405', async () => {
  const fill = (template) => template
    .replace('/v1/agents/{id}', `/v1/agents/${ctx.agent.id}`)
    .replace('/v1/conversations/{id}', `/v1/conversations/${ctx.conv.id}`)
    .replace('/v1/admin/api-keys/{id}', `/v1/admin/api-keys/key_${UNKNOWN_UUID}`)
    .replace('/v1/webhooks/{id}', `/v1/webhooks/wh_${UNKNOWN_UUID}`)
    .replace('/v1/admin/users/{user_id}', '/v1/admin/users/nobody');
  const paths = new Set([...Object.keys(DOC.paths),
    ...Object.keys(SERVER_ROUTES)]);
  for (const template of paths) {
    const allowed = (SERVER_ROUTES[template] ?? []);
    for (const method of PROBE_METHODS) {
      const op = DOC.paths[template]?.[method.toLowerCase()];
      if (op) continue;  // documented: exercised above
      const res = await send(method, fill(template),
        { key: ADMIN, json: method === 'GET' ? undefined : {} });
      assert.ok([404, 405].includes(res.status), `${method} ${template}: ` +
        `undocumented, yet answered ${res.status}: ${res.text.slice(0, 200)}`);
      if (res.status === 405) {
        const allow = res.headers.allow.split(',').map((s) => s.trim())
          .filter((m) => m !== 'HEAD').sort();
        assert.deepEqual(allow, [...allowed].sort(),
          `${method} ${template}: Allow lists other methods than documented`);
      }
    }
  }
  // Paths that are no route at all.
  for (const p of ['/', '/v1', '/v1/admin', '/v1/messages', '/v2/agents',
    '/v1/admin/projections/other', '/v1/openapi.yaml', '/openapi.json',
    `/v1/webhooks/wh_${UNKNOWN_UUID}/other`,
    `/v1/agents/${ctx.agent.id}/messages`]) {
    const res = await send('GET', p, { key: ADMIN });
    assert.equal(res.status, 404, `GET ${p}: ${res.status}`);
  }
});

step('every operation and every provokable documented status was exercised',
  () => {
    const missingOps = [...OPERATIONS.keys()].filter((k) => !exercised.has(k));
    assert.deepEqual(missingOps, [], 'operations never exercised');
    const extraOps = [...exercised.keys()].filter((k) => !OPERATIONS.has(k));
    assert.deepEqual(extraOps, []);
    const missing = [];
    for (const [key, op] of OPERATIONS) {
      const skip = new Set(NOT_PROVOKED[key] ?? []);
      for (const status of Object.keys(op.responses).map(Number)) {
        if (NOT_PROVOKED_EVERYWHERE.has(status) || skip.has(status)) continue;
        if (!exercised.get(key).has(status)) missing.push(`${key} ${status}`);
      }
      const success = Object.keys(op.responses).map(Number)
        .filter((s) => s < 300);
      assert.ok(success.some((s) => exercised.get(key).has(s)),
        `${key}: no success answer seen`);
    }
    assert.deepEqual(missing, [], 'documented statuses never provoked');
  });
