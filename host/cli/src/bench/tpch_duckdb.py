"""DuckDB's side of `cleanroom bench tpch` (written beside the report and run by it).

Usage: tpch_duckdb.py PLAIN_DIR QUERY_DIR REPS N,N,...

Registers each plaintext Parquet file of PLAIN_DIR as a view, runs QUERY_DIR/qN.sql REPS
times in this process, and prints one JSON line per query: the median wall time and the
process's peak resident memory while the query ran (Linux VmHWM, reset before each query).
"""

import json
import os
import statistics
import sys
import time

import duckdb


def peak_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def main():
    plain, queries, reps, nums = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    con = duckdb.connect()
    for name in sorted(os.listdir(plain)):
        if name.endswith(".parquet"):
            table = name[: -len(".parquet")]
            path = os.path.join(plain, name).replace("'", "''")
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{path}')")
    for n in nums.split(","):
        with open(os.path.join(queries, f"q{n}.sql")) as f:
            sql = f.read()
        times = []
        reset_peak()
        for _ in range(reps):
            start = time.perf_counter()
            rows = con.execute(sql).fetchall()
            times.append((time.perf_counter() - start) * 1000.0)
        print(
            json.dumps(
                {
                    "query": int(n),
                    "median_ms": statistics.median(times),
                    "peak_mib": peak_mib(),
                    "rows": len(rows),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
