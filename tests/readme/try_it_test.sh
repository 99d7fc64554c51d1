#!/usr/bin/env bash
# The README's "Try it" block, run as printed against a fresh server: every
# curl must succeed, and the transcript read back must hold the system
# message and both turns in order. Only the port is changed (to a free one).
# Usage: try_it_test.sh CONVSTORE_BINARY README.md
set -euo pipefail
binary=$1
readme=$2
dir=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

"$binary" serve --listen 127.0.0.1:0 --data-dir "$dir/data" >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$dir/server.log" && break
  sleep 0.1
done
port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$dir/server.log" | grep -o '[0-9]*$')
key=$(grep -o 'csk_[A-Za-z0-9_-]*' "$dir/server.log" | head -1)
[ -n "$port" ] && [ -n "$key" ] || { echo "server did not start:"; cat "$dir/server.log"; exit 1; }

# The block between "## Try it" and the next heading, first ```sh fence.
awk '/^## Try it/{on=1} on && /^```sh/{f=1; next} f && /^```/{exit} f' "$readme" \
  | sed "s/127.0.0.1:8080/127.0.0.1:$port/g" >"$dir/try.sh"
grep -q 'curl' "$dir/try.sh" || { echo "no curl lines found in the README"; exit 1; }
# The printed `export KEY=csk_...` line stands for the key the server printed.
sed -i "s/^export KEY=.*/export KEY=$key/" "$dir/try.sh"
# Make curl fail on HTTP errors, as a reader would notice them.
sed -i 's/curl -s /curl -sS --fail-with-body /g' "$dir/try.sh"
echo 'echo; echo "TRANSCRIPT:"; curl -sS --fail-with-body http://127.0.0.1:'"$port"'/v1/conversations/$CONV/messages -H "Authorization: Bearer $KEY"' >>"$dir/try.sh"

out=$(bash -e "$dir/try.sh")
transcript=${out##*TRANSCRIPT:}
for expected in '"role":"system"' 'Hello! How can I help you today?' 'I need help with product setup' '"user_id":"user-12345"'; do
  if ! grep -qF "$expected" <<<"$out"; then
    echo "missing from the README run's output: $expected"
    echo "$out"
    exit 1
  fi
done
# Order: system, assistant, user.
order=$(grep -o '"role":"[a-z]*"' <<<"$transcript" | tr '\n' ' ')
[ "$order" = '"role":"system" "role":"assistant" "role":"user" ' ] || {
  echo "transcript order is wrong: $order"; exit 1; }
echo "README Try it: 1 passed, 0 failed"
