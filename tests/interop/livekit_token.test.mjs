// LiveKit interop: the tokens convstore mints are checked with the official
// LiveKit server SDK (livekit-server-sdk, pinned in package-lock.json), the
// way a LiveKit deployment or an app backend checks them.
//
// Against a real `convstore serve` with known LiveKit settings:
//  - a conversation's token verifies with TokenVerifier(apiKey, apiSecret):
//    identity (sub) = the caller's user id, iss = the API key, video grant
//    for room = the conversation's room_name with roomJoin, canPublish,
//    canSubscribe, canPublishData; exp - nbf = the configured --token-ttl;
//  - an agent with a dispatch_name puts a roomConfig in the token that the
//    SDK's own RoomConfiguration (protobuf JSON, unknown keys rejected, as
//    LiveKit's server parses it) accepts, naming that agent and the
//    conversation id in its metadata; an agent without one gives no
//    roomConfig at all;
//  - the claims are the ones the SDK's AccessToken mints for the same grant;
//  - a wrong secret, a wrong API key or a tampered payload is rejected;
//  - POST /v1/conversations/{id}/token and an idempotent replay of the create
//    give fresh tokens that verify and name the same room;
//  - with --token-ttl 1, the token is rejected once expired, and a refresh
//    gives a valid one again.
//
// Usage: node livekit_token.test.mjs CONVSTORE_BINARY

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AccessToken, RoomAgentDispatch, RoomConfiguration, TokenVerifier,
} from 'livekit-server-sdk';
import { client, convstoreBinary, startServer } from './server.mjs';

convstoreBinary();  // usage and exit 2 without the binary

const LIVEKIT_URL = 'wss://livekit.interop.invalid';
const API_KEY = 'APIconvstoreInterop';
const API_SECRET = 'interop-secret-0123456789abcdefghijklmnopqrstuvw';
const TTL = 900;
const USER = 'user-livekit-interop';
const DISPATCH = 'support-agent';

const verifier = new TokenVerifier(API_KEY, API_SECRET);

function livekitArgs(ttl) {
  return ['--livekit-url', LIVEKIT_URL, '--livekit-api-key', API_KEY,
    '--livekit-api-secret', API_SECRET, '--token-ttl', String(ttl),
    '--room-url-template', '{livekit_url}'];
}

async function expectStatus(resPromise, status, what) {
  const res = await resPromise;
  assert.equal(res.status, status, `${what}: ${res.status} ${res.text}`);
  return res.json;
}

// A user key on `server`, and an agent with and one without a dispatch name.
async function setUp(server) {
  const admin = client(server.url, server.adminKey);
  const key = await expectStatus(admin('POST', '/v1/admin/api-keys',
    { json: { user_id: USER, role: 'user' } }), 201, 'create user key');
  const api = client(server.url, key.key);
  const dispatching = await expectStatus(api('POST', '/v1/agents', {
    json: { name: 'Support', instructions: 'Be helpful.',
      dispatch_name: DISPATCH } }), 201, 'create agent with dispatch_name');
  const plain = await expectStatus(api('POST', '/v1/agents', {
    json: { name: 'Silent' } }), 201, 'create agent without dispatch_name');
  assert.equal(dispatching.dispatch_name, DISPATCH);
  assert.equal(plain.dispatch_name ?? null, null);
  return { api, dispatching, plain };
}

async function createConversation(api, agentId, headers = {}) {
  return expectStatus(api('POST', '/v1/conversations', {
    json: { agent_id: agentId, title: 'LiveKit interop' }, headers }), 201,
  'create conversation');
}

// The grants every conversation token must carry.
function assertRoomGrants(claims, roomName) {
  assert.equal(claims.iss, API_KEY);
  assert.equal(claims.sub, USER);
  assert.deepEqual(claims.video, {
    room: roomName, roomJoin: true, canPublish: true, canSubscribe: true,
    canPublishData: true,
  });
}

function assertLifetime(claims, ttl, mintedAfterS, mintedBeforeS) {
  assert.equal(typeof claims.exp, 'number');
  assert.equal(typeof claims.nbf, 'number');
  assert.equal(claims.exp - claims.nbf, ttl, 'exp - nbf is the token TTL');
  if (claims.iat !== undefined) assert.equal(claims.exp - claims.iat, ttl);
  // nbf is the (whole-second) minting time on this same machine's clock.
  assert.ok(claims.nbf >= mintedAfterS - 1 && claims.nbf <= mintedBeforeS + 1,
    `nbf ${claims.nbf} not within [${mintedAfterS}, ${mintedBeforeS}]`);
}

// The roomConfig, parsed the way LiveKit parses it: protobuf JSON into a
// RoomConfiguration, unknown keys rejected.
function assertDispatch(claims, conv) {
  assert.ok(claims.roomConfig, 'token has a roomConfig');
  const config = RoomConfiguration.fromJson(claims.roomConfig);
  assert.equal(config.name, conv.room_name);
  assert.equal(config.agents.length, 1);
  assert.equal(config.agents[0].agentName, DISPATCH);
  assert.deepEqual(JSON.parse(config.agents[0].metadata),
    { conversation_id: conv.id });
}

const nowS = () => Math.floor(Date.now() / 1000);

describe('LiveKit tokens (TTL ' + TTL + ' s)', () => {
  let server;
  let ctx;

  before(async () => {
    server = await startServer({ args: livekitArgs(TTL) });
    ctx = await setUp(server);
  });

  after(async () => {
    if (!server) return;
    const { code, signal } = await server.stop();
    assert.equal(code, 0, `server stopped with ${code ?? signal}`);
  });

  test('token of a conversation whose agent dispatches: room, grants, ' +
       'dispatch, TTL', async () => {
    const t0 = nowS();
    const conv = await createConversation(ctx.api, ctx.dispatching.id);
    const t1 = nowS();
    assert.equal(conv.room_name, conv.id);
    assert.equal(conv.room_url, LIVEKIT_URL);
    const claims = await verifier.verify(conv.token);
    assertRoomGrants(claims, conv.room_name);
    assertLifetime(claims, TTL, t0, t1);
    assertDispatch(claims, conv);
  });

  test('token of a conversation whose agent has no dispatch_name: no ' +
       'roomConfig', async () => {
    const t0 = nowS();
    const conv = await createConversation(ctx.api, ctx.plain.id);
    const t1 = nowS();
    const claims = await verifier.verify(conv.token);
    assertRoomGrants(claims, conv.room_name);
    assertLifetime(claims, TTL, t0, t1);
    assert.equal(claims.roomConfig, undefined);
    assert.ok(!('roomConfig' in claims));
  });

  test('claims match what the SDK\'s AccessToken mints for the same grant',
    async () => {
      const conv = await createConversation(ctx.api, ctx.dispatching.id);
      const ours = await verifier.verify(conv.token);

      const at = new AccessToken(API_KEY, API_SECRET,
        { identity: USER, ttl: TTL });
      at.addGrant({ room: conv.room_name, roomJoin: true, canPublish: true,
        canSubscribe: true, canPublishData: true });
      at.roomConfig = new RoomConfiguration({
        name: conv.room_name,
        agents: [new RoomAgentDispatch({ agentName: DISPATCH,
          metadata: JSON.stringify({ conversation_id: conv.id }) })],
      });
      const theirs = await verifier.verify(await at.toJwt());

      assert.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort());
      for (const claim of ['iss', 'sub', 'video']) {
        assert.deepEqual(ours[claim], theirs[claim], claim);
      }
      assert.equal(ours.exp - ours.nbf, theirs.exp - theirs.nbf);
      assert.ok(RoomConfiguration.fromJson(ours.roomConfig)
        .equals(RoomConfiguration.fromJson(theirs.roomConfig)), 'roomConfig');
    });

  test('a wrong secret, a wrong API key or a tampered payload is rejected',
    async () => {
      const conv = await createConversation(ctx.api, ctx.dispatching.id);
      await verifier.verify(conv.token);  // the genuine token passes
      await assert.rejects(
        new TokenVerifier(API_KEY, `${API_SECRET}x`).verify(conv.token),
        { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
      await assert.rejects(
        new TokenVerifier('devkey', 'secret').verify(conv.token),
        { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
      await assert.rejects(
        new TokenVerifier('APIotherKey', API_SECRET).verify(conv.token),
        { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'iss' });

      // Another room in the payload, the original signature.
      const [header, payload, signature] = conv.token.split('.');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
      claims.video.room = 'conv-someone-elses-room';
      const forged = [header,
        Buffer.from(JSON.stringify(claims)).toString('base64url'),
        signature].join('.');
      await assert.rejects(verifier.verify(forged),
        { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    });

  test('POST /v1/conversations/{id}/token: a fresh token for the same room',
    async () => {
      for (const agent of [ctx.dispatching, ctx.plain]) {
        const conv = await createConversation(ctx.api, agent.id);
        const t0 = nowS();
        const fresh = await expectStatus(ctx.api('POST',
          `/v1/conversations/${conv.id}/token`), 201, 'refresh token');
        const t1 = nowS();
        assert.equal(fresh.room_name, conv.room_name);
        assert.equal(fresh.room_url, LIVEKIT_URL);
        const claims = await verifier.verify(fresh.token);
        assertRoomGrants(claims, conv.room_name);
        assertLifetime(claims, TTL, t0, t1);
        assert.equal(Date.parse(fresh.expires_at), claims.exp * 1000,
          `expires_at ${fresh.expires_at} is exp ${claims.exp}`);
        if (agent.dispatch_name) {
          assertDispatch(claims, conv);
        } else {
          assert.ok(!('roomConfig' in claims));
        }
      }
    });

  test('an idempotent replay of the create carries a token that verifies',
    async () => {
      const headers = { 'Idempotency-Key': `livekit-${Date.now()}` };
      const first = await createConversation(ctx.api, ctx.dispatching.id,
        headers);
      const res = await ctx.api('POST', '/v1/conversations', {
        json: { agent_id: ctx.dispatching.id, title: 'LiveKit interop' },
        headers });
      assert.equal(res.status, 201, res.text);
      assert.equal(res.headers.get('idempotent-replayed'), 'true');
      assert.equal(res.json.id, first.id);
      const claims = await verifier.verify(res.json.token);
      assertRoomGrants(claims, first.room_name);
      assertDispatch(claims, first);
    });
});

describe('LiveKit tokens (TTL 1 s)', () => {
  let server;
  let ctx;

  before(async () => {
    server = await startServer({ args: livekitArgs(1) });
    ctx = await setUp(server);
  });

  after(async () => {
    if (!server) return;
    const { code, signal } = await server.stop();
    assert.equal(code, 0, `server stopped with ${code ?? signal}`);
  });

  test('an expired token is rejected; a refreshed one verifies', async () => {
    const conv = await createConversation(ctx.api, ctx.dispatching.id);
    // Read the claims without checking exp (it may already have passed).
    const early = await verifier.verify(conv.token, 3600);
    assert.equal(early.exp - early.nbf, 1);
    assertRoomGrants(early, conv.room_name);

    // Wait until the clock is past exp (at most ~3 s: exp is mint time + 1).
    for (let i = 0; i < 40 && nowS() <= early.exp; i++) await sleep(100);
    assert.ok(nowS() > early.exp, 'clock did not pass exp in 4 s');
    // No clock tolerance: the token is expired now. (TokenVerifier's default
    // tolerance is 10 s, LiveKit's own server allows some leeway too.)
    await assert.rejects(verifier.verify(conv.token, 0),
      { code: 'ERR_JWT_EXPIRED' });

    const fresh = await expectStatus(ctx.api('POST',
      `/v1/conversations/${conv.id}/token`), 201, 'refresh token');
    assert.equal(fresh.room_name, conv.room_name);
    // The default tolerance, as an app backend would call it.
    const claims = await verifier.verify(fresh.token);
    assert.equal(claims.video.room, conv.room_name);
    assert.equal(claims.exp - claims.nbf, 1);
    assert.ok(claims.exp > early.exp, 'the refreshed token expires later');
    assertDispatch(claims, conv);
  });
});
