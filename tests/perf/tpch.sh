#!/usr/bin/env bash
# TPC-H through the clean-room path beside plain DataFusion and DuckDB, and the TPC-H
# section of docs/PERFORMANCE.md regenerated from the run:
#
#   bash tests/perf/tpch.sh [SF] [REPS]      (defaults: SF 1, 3 repetitions)
#
# Installs DuckDB's Python package (PyPI), builds the release `cleanroom` and `cleanroom-kbs`,
# runs `cleanroom bench tpch --sf SF --reps REPS --out $OUT` (OUT defaults to
# $CARGO_TARGET_DIR/bench-tpch; the generated data stays there for the next run of the same
# SF), and replaces the section between the `tpch-sfSF` markers of docs/PERFORMANCE.md with
# the report (appending it if the markers are not there).
# Disk: about 1.3 GB per unit of SF (SF 1: ~1.3 GB, SF 10: ~13 GB). Time at SF 1 on 2 cores:
# ~3 min of data generation and sealing (once), then ~5 min of queries.
set -euo pipefail
SF=${1:-1}
REPS=${2:-3}
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
OUT=${OUT:-$CARGO_TARGET_DIR/bench-tpch}
python3 -m pip install --quiet duckdb
cargo build --release -q -p cleanroom-cli -p cleanroom-kbs
"$CARGO_TARGET_DIR/release/cleanroom" bench tpch --sf "$SF" --reps "$REPS" --out "$OUT"
python3 - "$OUT/tpch-sf$SF.md" "$SF" docs/PERFORMANCE.md <<'PY'
import sys
report, sf, doc = sys.argv[1], sys.argv[2], sys.argv[3]
body = open(report).read().strip()
begin, end = f"<!-- tpch-sf{sf}:begin -->", f"<!-- tpch-sf{sf}:end -->"
text = open(doc).read()
section = f"{begin}\n{body}\n{end}"
if begin in text and end in text and text.index(begin) < text.index(end):
    text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + f"\n\n### TPC-H SF {sf}\n\n{section}\n"
open(doc, "w").write(text)
print(f"docs/PERFORMANCE.md: TPC-H SF {sf} section updated")
PY
