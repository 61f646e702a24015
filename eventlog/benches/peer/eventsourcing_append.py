"""Append throughput of Python's `eventsourcing` library on PostgreSQL, in the shapes of
kefu's append benchmark (eventlog/benches/append.rs): 1, 8 and 64 writers, batches of 1 and
10 events, each writer appending to an aggregate (stream) of its own with the next version,
payloads of the same size (a customer turn, about 230 bytes of JSON).

The recorder is `PostgresApplicationRecorder`, what an `eventsourcing` application uses on
PostgreSQL: one row per event, primary key (originator id, version) for optimistic
concurrency, a unique `notification_id` for the global order that its followers read. It
takes an EXCLUSIVE lock on the events table per insert so that notification ids commit in
order (its answer to the gap problem kefu solves with transaction-id positions).

Writers are threads (psycopg releases the GIL while it waits on the server); each takes a
connection from the library's pool per append, as kefu's writers share a pool.

    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install -r eventlog/benches/peer/requirements.txt
    /tmp/peer/bin/python eventlog/benches/peer/eventsourcing_append.py

Environment: KEFU_BENCH_PG_HOST (127.0.0.1), KEFU_BENCH_PG_PORT (5432), KEFU_BENCH_PG_USER
(postgres), KEFU_BENCH_PG_DB (kefu_bench, which must exist: kefu's benchmark creates it),
KEFU_BENCH_SECONDS (5), KEFU_BENCH_ROUNDS (3; the median round is reported). Prints a
Markdown table; the schema it creates is dropped at the end.
"""

import json
import os
import statistics
import threading
import time
import uuid

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

WRITERS = (1, 8, 64)
BATCHES = (1, 10)


def env(name, default):
    return os.environ.get(name, default)


def payload(n):
    # The same fields and text as kefu's benchmark payload.
    return json.dumps(
        {
            "conversation_id": str(uuid.uuid4()),
            "turn": n,
            "text": "我的快递三天了还没到，订单号 8812345678，能帮我查一下吗？",
            "channel": "app",
            "locale": "zh",
        },
        ensure_ascii=False,
    ).encode()


def batch(originator, first_version, size):
    return [
        StoredEvent(
            originator_id=originator,
            originator_version=first_version + i,
            topic="kefu.bench:CustomerTurnRecorded",
            state=payload(first_version + i),
        )
        for i in range(size)
    ]


def run(recorder, writers, size, seconds):
    """Events per second and the latencies of every append, for one measurement."""
    deadline = time.monotonic() + seconds
    latencies = [[] for _ in range(writers)]
    errors = []

    def writer(w):
        originator = uuid.uuid4()
        version = 1
        try:
            while time.monotonic() < deadline:
                events = batch(originator, version, size)
                t = time.perf_counter()
                recorder.insert_events(events)
                latencies[w].append(time.perf_counter() - t)
                version += size
        except Exception as e:  # reported after the run, so a failure is never a figure
            errors.append(repr(e))

    start = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} writers failed, first: {errors[0]}")
    flat = sorted(x for l in latencies for x in l)
    return len(flat) * size / elapsed, flat


def pct(sorted_latencies, p):
    return sorted_latencies[round((len(sorted_latencies) - 1) * p)] * 1000.0


def main():
    host = env("KEFU_BENCH_PG_HOST", "127.0.0.1")
    port = env("KEFU_BENCH_PG_PORT", "5432")
    user = env("KEFU_BENCH_PG_USER", "postgres")
    dbname = env("KEFU_BENCH_PG_DB", "kefu_bench")
    seconds = float(env("KEFU_BENCH_SECONDS", "5"))
    rounds = max(1, int(env("KEFU_BENCH_ROUNDS", "3")))
    schema = f"peer_{uuid.uuid4().hex}"
    with psycopg.connect(host=host, port=port, user=user, dbname=dbname, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    datastore = PostgresDatastore(
        dbname, host, port, user, "", pool_size=64, max_waiting=0, schema=schema
    )
    try:
        recorder = PostgresApplicationRecorder(datastore)
        recorder.create_table()
        # Warm the pool, as kefu's benchmark does before measuring.
        run(recorder, 64, 1, 0.5)
        print(f"eventsourcing PostgresApplicationRecorder, {seconds:g} s a measurement, {rounds} rounds\n")
        print("| writers | batch | events/s | p50 ms | p99 ms |")
        print("|---:|---:|---:|---:|---:|")
        for writers in WRITERS:
            for size in BATCHES:
                results = [run(recorder, writers, size, seconds) for _ in range(rounds)]
                rate = statistics.median(r[0] for r in results)
                _, lat = next(r for r in results if r[0] == rate)
                print(
                    f"| {writers} | {size} | {rate:.0f} | {pct(lat, 0.5):.2f} | {pct(lat, 0.99):.2f} |",
                    flush=True,
                )
    finally:
        datastore.close()
        with psycopg.connect(host=host, port=port, user=user, dbname=dbname, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
