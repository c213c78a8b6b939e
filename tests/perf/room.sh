#!/usr/bin/env bash
# The figures of docs/PERFORMANCE.md "The room binary, a one-shot run, the room service":
#
#   bash tests/perf/room.sh [IMPRESSIONS]      (default 2000000)
#
# Builds the release binaries, runs the demo at IMPRESSIONS (simulated attestation) into
# /tmp/cleanroom-perf, restarts its two brokers, then:
#   1. the release room binary's size, its .text, and `cargo tree -p cleanroom-room` lines;
#   2. the one-shot `cleanroom-room run` of the demo query, 5 runs (farm-bench);
#   3. the room service on the same room (its state's room/ is the demo's room, so one audit
#      log): a member's `cleanroom room run --wait` (signed request -> committed output)
#      paired with the one-shot run (farm-bench --vs), and run-status reads under wrk
#      (2 threads, 16 connections, 15 s) with the service's resident memory during the load.
# Needs farm-bench (this workplace's timing tool; hyperfine does the same) and wrk (Debian).
set -euo pipefail
N=${1:-2000000}
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q -p cleanroom-room -p cleanroom-cli -p cleanroom-kbs
T=$CARGO_TARGET_DIR/release
D=/tmp/cleanroom-perf
rm -rf "$D"
echo "== binaries"
ls -l "$T/cleanroom-room" "$T/cleanroom" "$T/cleanroom-kbs" | awk '{print $5, $9}'
size -A "$T/cleanroom-room" | awk '$1==".text"{print ".text of cleanroom-room:", $2}'
echo "cargo tree -p cleanroom-room -e normal: $(cargo tree -p cleanroom-room -e normal 2>/dev/null | wc -l) lines"
echo "== demo at $N impressions"
# Only the demo's first steps matter here (the room, its data, the approved query); at 2M
# impressions its training step exceeds the module's default sandbox, so the demo may stop
# there.
/usr/bin/time -f "demo: %e s wall, %M KB peak" env CLEANROOM_NO_BIN_BUILD=1 "$T/cleanroom" demo --impressions "$N" --dir "$D" > "$D.log" 2>&1 || true
grep -q '^\[7\]' "$D.log" || { echo "the demo did not reach its result:"; tail "$D.log"; exit 1; }
grep -A9 '^\[6\]' "$D.log" | grep -E 'time:|input'
C=$D/room/contract.toml
brokers=$(grep -o 'broker = "https://127.0.0.1:[0-9]*"' "$C" | grep -o '127.0.0.1:[0-9]*' | awk '!seen[$0]++')
set -- $brokers
"$T/cleanroom-kbs" serve --db "$D/publisher/kbs.db" --master-key "$D/publisher/kbs.master-key" --listen "$1" > "$D.kbs-pub.log" 2>&1 &
P1=$!
"$T/cleanroom-kbs" serve --db "$D/advertiser/kbs.db" --master-key "$D/advertiser/kbs.master-key" --listen "$2" > "$D.kbs-adv.log" 2>&1 &
P2=$!
mkdir -p "$D/service"
ln -s "$D/room" "$D/service/room"
"$T/cleanroom-room" serve --contract "$C" --state "$D/service" --data "$D/room" --listen 127.0.0.1:18444 --platform sim > "$D.serve.log" 2>&1 &
P3=$!
trap 'kill $P1 $P2 $P3 2>/dev/null || true' EXIT
sleep 3
ONESHOT="$T/cleanroom-room run --contract $C --workload $D/room/workload.toml --dir $D/room --platform sim"
echo "== one-shot run of the demo query"
farm-bench -n 5 --timeout 900 -- $ONESHOT
R="--room https://127.0.0.1:18444 --contract $C"
digest=$("$T/cleanroom" room propose $R --workload "$D/room/workload.toml" --key "$D/advertiser/keys/advertiser.sign.key" | awk '{print $2}')
for m in publisher advertiser; do
  "$T/cleanroom" room approve $R --workload "$digest" --key "$D/$m/keys/$m.sign.key" > /dev/null
done
echo "== signed run request -> committed output (A), against the one-shot run (B)"
farm-bench -n 5 --timeout 1800 --vs "$ONESHOT" -- "$T/cleanroom" room run $R --workload "$digest" --key "$D/advertiser/keys/advertiser.sign.key" --wait
id=$("$T/cleanroom" room runs $R | grep -o '"id": "q-[0-9a-f]*"' | head -1 | cut -d'"' -f4)
echo "== run-status reads under load (GET /v1/runs/$id)"
wrk -t2 -c16 -d15s --latency "https://127.0.0.1:18444/v1/runs/$id" &
W=$!
sleep 8
echo "room service resident memory during the load: $(ps -o rss= -p $P3) KB"
wait $W
