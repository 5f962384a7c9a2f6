"""The read baseline of `burnrate bench query --baselines`: DuckDB answering the JSON API's
calls as plain GROUP BYs over the same events, loaded raw (no dedupe, no rollups), in
memory. Each call's window ends at NOW_MS, like the API's.

usage: python3 duckdb_reads.py EVENTS.ndjson NOW_MS ROUNDS  -> JSON {call: median ms}
(needs `pip install duckdb`)
"""
import json
import statistics
import sys
import time

import duckdb

SUMS = ("count(*) AS requests, sum(inputTokens) AS input, sum(cachedTokens) AS cached, "
        "sum(outputTokens) AS output, sum(reasoningTokens) AS reasoning, avg(latencyMs) AS latency")

# (call as `bench query` names it, hours back, group-by columns, bucket or None, limit)
CALLS = [
    ("top endpoints 24h", 24, ["endpointTag"], None, 50),
    ("top endpoints 7d", 168, ["endpointTag"], None, 50),
    ("top tenants 24h", 24, ["tenantId"], None, 50),
    ("top tenants 30d", 720, ["tenantId"], None, 50),
    ("top users 24h", 24, ["userId"], None, 50),
    ("top prompt-versions 24h", 24, ["endpointTag", "promptVersion"], None, 50),
    ("top models 7d", 168, ["provider", "model"], None, 50),
    ("timeseries hour by endpoint 24h", 24, ["endpointTag"], "hour", 10_000),
    ("timeseries day by model 30d", 720, ["model"], "day", 10_000),
    ("prompt-versions 7d", 168, ["endpointTag", "promptVersion"], None, 10_000),
    ("concentration tenants 24h", 24, ["tenantId"], None, 10_000),
    ("query model x endpoint 7d", 168, ["model", "endpointTag"], None, 100),
]


def sql(hours, group, bucket, limit, now_ms):
    keys = list(group)
    if bucket:
        keys.insert(0, f"date_trunc('{bucket}', ts)")
    cols = ", ".join(keys)
    return (f"SELECT {cols}, {SUMS} FROM events "
            f"WHERE dataMode = 'demo' AND ts >= make_timestamp({(now_ms - hours * 3_600_000) * 1000}) "
            f"AND ts < make_timestamp({now_ms * 1000}) "
            f"GROUP BY {cols} ORDER BY requests DESC LIMIT {limit}")


def main(src, now_ms, rounds):
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE events AS SELECT *, CAST(\"timestamp\" AS TIMESTAMP) AS ts "
        f"FROM read_json_auto('{src}', format = 'newline_delimited')")
    medians = {}
    for name, hours, group, bucket, limit in CALLS:
        query = sql(hours, group, bucket, limit, now_ms)
        times = []
        for i in range(rounds + 3):
            started = time.perf_counter()
            con.execute(query).fetchall()
            if i >= 3:
                times.append((time.perf_counter() - started) * 1e3)
        medians[name] = statistics.median(times)
    print(json.dumps(medians))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
