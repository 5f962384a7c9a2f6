"""Run every statement the ClickHouse backend issued against a modern ClickHouse.

The statements come from a test run with BURNRATE_CLICKHOUSE_CAPTURE=FILE (one JSON
line each: {"sql": ..., "rows": ...}, in the order they were sent; "rows" holds the
start of an insert's TabSeparated rows). They run in order on chDB (ClickHouse 26.x
in-process): the DDL, the inserts with their rows and every read. The tests' servers
are ClickHouse 18.16; this catches SQL that 18.16 takes and a modern server refuses.

A Distributed table (cluster mode) cannot exist without the cluster: its statement is
only parsed (formatQuery), and the table is created like its shard's local table, so
the inserts and reads that name it run too. A test that makes the server refuse
statements on purpose (too many parts, with merges stopped) works in a database named
refused_*: its statements are not replayed (they would be refused here too).

Usage: check-clickhouse-dialect.py CAPTURE_FILE. Exits 1 naming each failing statement
(its start) and ClickHouse's error.
"""

import json
import re
import sys

from chdb import session

CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\.(\w+) \((.*)\) ENGINE = (.*)$", re.S)
INSERT = re.compile(r"INSERT INTO \w+\.(\w+) ")
STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
NUMBER = re.compile(r"\b\d+\b")
REFUSED_ON_PURPOSE = re.compile(r"\brefused_\w*")
# Inserts run per table (whatever the database): enough rows for the reads to compute
# on; more only repeat the same statement with other values.
INSERTS_PER_TABLE = 40


def shape(sql):
    """A read with its values blanked: reads of one shape differ only in values."""
    return NUMBER.sub("0", STRING.sub("?", sql))


def literal(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def main(path):
    db = session.Session()
    local_tables = {}
    done = set()
    inserts = {}
    failures = []
    counts = {"ddl": 0, "insert": 0, "read": 0}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            statement = json.loads(line)
            sql, rows = statement["sql"], statement.get("rows")
            if REFUSED_ON_PURPOSE.search(sql):
                continue
            kind = "insert" if rows is not None else "read"
            runs = [sql]
            created = CREATE.match(sql)
            if sql.startswith("CREATE"):
                kind = "ddl"
            if created:
                database, name, _, engine = created.groups()
                if engine.startswith("Distributed("):
                    local = local_tables.get(f"{database}.{name}_local")
                    runs = [f"SELECT formatQuery({literal(sql)})"]
                    if local:
                        runs.append(local.replace(f"{database}.{name}_local", f"{database}.{name}", 1))
                else:
                    local_tables[f"{database}.{name}"] = sql
            if rows is not None:
                table = INSERT.match(sql).group(1)
                inserts[table] = inserts.get(table, 0) + 1
                if inserts[table] > INSERTS_PER_TABLE:
                    continue
                runs = [f"{sql}\n{rows}"]
            for text in runs:
                # A DDL on each shard, a read of a shape already run: nothing new.
                key = shape(text) if kind == "read" else text
                if kind != "insert" and key in done:
                    continue
                done.add(key)
                counts[kind] += 1
                try:
                    db.query(text, "Null" if kind == "read" else "CSV")
                except Exception as e:  # chDB raises its own error types
                    failures.append((text[:300], str(e).splitlines()[0][:400]))
    print(
        f"chDB {db.query('SELECT version()', 'TabSeparated').bytes().decode().strip()}: "
        f"{counts['ddl']} DDL, {counts['insert']} inserts, {counts['read']} reads"
    )
    for text, error in failures[:20]:
        print(f"FAILED: {text!r}\n  {error}")
    if failures:
        print(f"{len(failures)} statements failed on the modern dialect")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
