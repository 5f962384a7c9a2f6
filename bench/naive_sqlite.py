"""The naive baseline of `burnrate bench ingest --baselines`: what a team writes in thirty
lines to keep LLM usage events in SQLite. One table, a unique index on (workspace,
externalRequestId) so retries do not count twice, INSERT OR IGNORE, a commit per 10,000
events, Python's default durability (WAL, synchronous=FULL). No pricing, no rollups.

usage: python3 naive_sqlite.py EVENTS.ndjson DB  -> one JSON line with the rate
"""
import json
import sqlite3
import sys
import time

COLUMNS = ["externalRequestId", "timestamp", "provider", "model", "endpointTag",
           "promptVersion", "tenantId", "userId", "inputTokens", "cachedTokens",
           "outputTokens", "reasoningTokens", "latencyMs", "status"]


def main(src, db):
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE events (workspace TEXT, " + ", ".join(COLUMNS) + ", tags TEXT)")
    con.execute("CREATE UNIQUE INDEX events_id ON events (workspace, externalRequestId)")
    insert = "INSERT OR IGNORE INTO events VALUES (" + ", ".join(["?"] * (len(COLUMNS) + 2)) + ")"
    started, count, rows = time.perf_counter(), 0, []
    with open(src) as lines:
        for line in lines:
            e = json.loads(line)
            rows.append(["default"] + [e.get(c) for c in COLUMNS] + [json.dumps(e.get("tags"))])
            if len(rows) == 10_000:
                con.executemany(insert, rows)
                con.commit()
                count, rows = count + len(rows), []
    con.executemany(insert, rows)
    con.commit()
    count += len(rows)
    seconds = time.perf_counter() - started
    print(json.dumps({"events": count, "seconds": seconds, "eventsPerSecond": count / seconds}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
