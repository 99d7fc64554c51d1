#!/usr/bin/env node
// A convstore client in plain Node (20+, no packages: the global fetch).
//
// Creates an agent and a conversation with it, records a few turns the way a
// voice pipeline would, then reads the transcript back and prints it.
//
//   CONVSTORE_URL=http://127.0.0.1:8080 CONVSTORE_API_KEY=csk_... \
//     node examples/node/transcript.mjs
//
// Exits 0 on success; 1 with the API's error message when a request fails;
// 2 when the environment is not set.

const TIMEOUT_MS = 15000;

const baseUrl = (process.env.CONVSTORE_URL ?? '').replace(/\/+$/, '');
const apiKey = process.env.CONVSTORE_API_KEY ?? '';
if (!baseUrl || !apiKey) {
  console.error('Set CONVSTORE_URL (e.g. http://127.0.0.1:8080) and ' +
    'CONVSTORE_API_KEY (a csk_... key) first.');
  process.exit(2);
}

class ApiError extends Error {}

// One API call: JSON in, JSON out. Errors carry the API's own message
// ({"error": {"message", "type", "param", "code"}}).
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${apiKey}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(baseUrl + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = json?.error;
    throw new ApiError(`${method} ${path}: ${res.status} ` +
      (e ? `${e.type}: ${e.message}` : text.slice(0, 200)));
  }
  return json;
}

async function main() {
  const agent = await api('POST', '/v1/agents', {
    name: 'Support',
    instructions: 'You are a helpful product support agent.',
    dispatch_name: 'support-agent',
  });
  console.log(`Agent         ${agent.id} (${agent.name})`);

  const conv = await api('POST', '/v1/conversations', {
    agent_id: agent.id,
    title: 'Product Support Session',
  });
  console.log(`Conversation  ${conv.id} "${conv.title}" (${conv.status})`);
  console.log(`LiveKit room  ${conv.room_name} at ${conv.room_url} ` +
    `(token: ${conv.token.length} characters)`);

  // What a voice pipeline records as the speakers take turns.
  const turns = [
    ['assistant', 'Hello! How can I help you today?'],
    ['user', 'I need help with product setup'],
    ['assistant', 'Sure. Which product are you setting up?'],
    ['user', 'The X200 router, it will not connect.'],
  ];
  for (const [role, content] of turns) {
    await api('POST', `/v1/conversations/${conv.id}/messages`,
      { role, content });
  }

  // The whole transcript, oldest first (the agent's instructions are its
  // first, system, message).
  const messages = await api('GET', `/v1/conversations/${conv.id}/messages`);
  console.log(`\nTranscript (${messages.length} messages):`);
  messages.forEach((m, i) => {
    const time = m.created_at.slice(11, 23);  // HH:MM:SS.mmm, UTC
    console.log(`${String(i + 1).padStart(3)}. [${time}] ` +
      `${m.role.padEnd(9)} ${m.content}`);
  });
}

main().catch((e) => {
  if (e instanceof ApiError) {
    console.error(`error: ${e.message}`);
  } else {
    console.error(`error: cannot reach ${baseUrl}: ${e.cause?.message ?? e.message}`);
  }
  process.exit(1);
});
