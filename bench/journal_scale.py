"""The journal at scale: fill it with a million events, then time the admin queries on it.

    .venv/bin/python bench/journal_scale.py                 # 1,000,000 events, ~2-3 minutes
    .venv/bin/python bench/journal_scale.py --events 200000 --keep /tmp/j.sqlite3

1. Fills a fresh journal file with ``--events`` events in 100-event requests, straight through
   :meth:`mockserver.journal.Journal.commit_batch` (what POST /v1/events commits, minus HTTP and
   validation), with realistic 57 KB bodies, fresh event ids and Idempotency-Keys. It reports
   the commit time and the process's RSS for every tenth of the fill: how the cost of a commit
   and the memory grow with the journal.
2. Prints SQLite's plan (EXPLAIN QUERY PLAN) for each admin query.
3. Starts ``rokt-mock serve --workers 2`` on the file (timing start-up to healthy), times each
   admin query over HTTP (first call and median of 5): ``/__admin/requests?clientEventId=``,
   ``?idempotencyKey=``, ``/__admin/events?clientEventId=``, ``/__admin/summary`` and a few more.
4. Reads the workers' RSS from /proc, runs a 10 s wrk burst of 100-event batches (the same
   generator as bench/run), and reads the RSS again.

Results: stdout and bench/results/journal_scale.{json,md}. Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import bodies  # noqa: E402
import compare as bench  # noqa: E402

from mockserver.journal import EventRecord, Journal, RequestRecord  # noqa: E402

HEADERS = {
    "Host": "127.0.0.1:8080",
    "User-Agent": "python-requests/2.32.3",
    "Accept-Encoding": "gzip, deflate",
    "Accept": "*/*",
    "Connection": "keep-alive",
    "Authorization": "Bearer <redacted>",
    "Content-Type": "application/json",
    "Charset": "utf-8",
    "Rokt-Version": "2020-05-21",
}


def self_rss_mb() -> float:
    return float(bench.rss_mb(os.getpid()) or 0.0)


def fill(path: Path, events: int, batch: int) -> dict[str, Any]:
    """Commit ``events`` events in ``batch``-event requests; keep a few ids to look up."""
    journal = Journal(str(path))
    templates = [bodies.template(batch, seed=k).split(bodies.MARKER) for k in range(8)]
    requests = events // batch
    step = max(1, requests // 10)
    rng = random.Random(7)
    samples: dict[str, list[str]] = {"ceid": [], "key": []}
    marks = {0, requests // 2, requests - 1}
    progress = []
    times: list[float] = []
    started = time.perf_counter()
    for i in range(requests):
        parts = templates[i % len(templates)]
        ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(batch)]
        body = parts[0] + "".join(cid + part for cid, part in zip(ids, parts[1:], strict=True))
        raw = body.encode()
        key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        now = time.time()
        rec = RequestRecord(
            at=now,
            wall=now,
            namespace="default",
            method="POST",
            path="/v1/events",
            endpoint="/v1/events",
            api_version="v1",
            credential="demo-app-id",
            account_id=bodies.ACCOUNT_ID,
            idempotency_key=key,
            body_sha256=hashlib.sha256(raw).hexdigest(),
            body_size=len(raw),
            event_count=batch,
            headers={**HEADERS, "Content-Length": str(len(raw)), "Idempotency-Key": key},
            body=raw,
        )
        records = [EventRecord(k, ids[k], "conversion") for k in range(batch)]
        t0 = time.perf_counter()
        journal.commit_batch(rec, records, retention=10800, reject_invalid=False)
        times.append(time.perf_counter() - t0)
        if i in marks:
            samples["ceid"].append(ids[batch // 2])
            samples["key"].append(key)
        if (i + 1) % step == 0 or i + 1 == requests:
            times.sort()
            progress.append(
                {
                    "events": (i + 1) * batch,
                    "commit_mean_ms": round(statistics.mean(times) * 1000, 2),
                    "commit_p50_ms": round(times[len(times) // 2] * 1000, 2),
                    "commit_p99_ms": round(times[int(len(times) * 0.99)] * 1000, 2),
                    "rss_mb": round(self_rss_mb(), 1),
                    "file_mb": round(journal_mb(path), 1),
                }
            )
            print(f"  {progress[-1]}", flush=True)
            times = []
    elapsed = time.perf_counter() - started
    journal.close()
    return {
        "events": requests * batch,
        "requests": requests,
        "batch": batch,
        "seconds": round(elapsed, 1),
        "events_per_s": round(requests * batch / elapsed),
        "progress": progress,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "samples": samples,
    }


def journal_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20


QUERIES = {
    "requests?clientEventId": (
        "SELECT * FROM requests WHERE namespace = ? AND id IN (SELECT request_id FROM events"
        " WHERE client_event_id = ? AND namespace = ?) ORDER BY id DESC LIMIT 51",
        lambda s: ["default", s["ceid"][1], "default"],
    ),
    "requests?idempotencyKey": (
        "SELECT * FROM requests WHERE namespace = ? AND idempotency_key = ?"
        " ORDER BY id DESC LIMIT 51",
        lambda s: ["default", s["key"][1]],
    ),
    "events?clientEventId": (
        "SELECT e.request_id, (SELECT count(*) FROM events AS d WHERE d.client_event_id ="
        " e.client_event_id AND d.namespace = e.namespace AND d.account_id IS e.account_id"
        " AND d.outcome IN ('accepted', 'duplicate')) FROM events AS e"
        " WHERE e.outcome = 'accepted' AND e.namespace = ? AND e.client_event_id = ?"
        " ORDER BY e.request_id, e.idx LIMIT 100",
        lambda s: ["default", s["ceid"][1]],
    ),
    "summary (tallies)": (
        "SELECT kind, key, sum(n) FROM tallies WHERE namespace = ? GROUP BY kind, key",
        lambda s: ["default"],
    ),
    "health (counts)": ("SELECT count(*) FROM events", lambda s: []),
}


def plans(path: Path, samples: dict[str, list[str]]) -> dict[str, list[str]]:
    db = sqlite3.connect(path)
    out = {}
    for name, (sql, params) in QUERIES.items():
        rows = db.execute("EXPLAIN QUERY PLAN " + sql, params(samples)).fetchall()
        out[name] = [row[-1] for row in rows]
    db.close()
    return out


def time_get(url: str, repeat: int = 5) -> dict[str, Any]:
    times = []
    status = 0
    size = 0
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        status, body = bench.http("GET", url, timeout=120)
        times.append((time.perf_counter() - t0) * 1000)
        size = len(body)
    return {
        "status": status,
        "first_ms": round(times[0], 1),
        "median_ms": round(statistics.median(times[1:]), 1),
        "bytes": size,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--burst", type=int, default=10, help="seconds of load after the queries")
    parser.add_argument("--keep", type=Path, default=None, help="journal path to keep")
    parser.add_argument("--reuse", action="store_true", help="use --keep as it is, no fill")
    parser.add_argument("--out", type=Path, default=bench.RESULTS)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="rokt-mock-journal-"))
    path = args.keep or workdir / "journal.sqlite3"
    report: dict[str, Any] = {"machine": bench.machine()}
    server = None
    try:
        samples_file = path.parent / (path.name + ".samples.json")
        if args.reuse:
            report["fill"] = json.loads(samples_file.read_text())
        else:
            for old in path.parent.glob(path.name + "*"):
                old.unlink()
            print(f"filling {path} with {args.events:,} events ...", flush=True)
            report["fill"] = fill(path, args.events, args.batch)
            samples_file.write_text(json.dumps(report["fill"]))
        samples = report["fill"]["samples"]
        report["journal_mb"] = round(journal_mb(path), 1)
        report["plans"] = plans(path, samples)
        for name, plan in report["plans"].items():
            print(f"plan {name}: {' / '.join(plan)}")

        server = bench.start_unready(workdir, args.workers, path)
        report["startup_s"] = round(server.wait_ready("/__admin/health", timeout=120), 2)
        print(f"start-up to healthy on this journal: {report['startup_s']} s")
        base = server.url + "/__admin"
        ceid = [urllib.parse.quote(x) for x in samples["ceid"]]
        key = [urllib.parse.quote(x) for x in samples["key"]]
        urls = {
            "requests?clientEventId (middle)": f"{base}/requests?clientEventId={ceid[1]}",
            "requests?clientEventId (oldest)": f"{base}/requests?clientEventId={ceid[0]}",
            "requests?idempotencyKey (middle)": f"{base}/requests?idempotencyKey={key[1]}",
            "requests?idempotencyKey (oldest)": f"{base}/requests?idempotencyKey={key[0]}",
            "events?clientEventId": f"{base}/events?clientEventId={ceid[1]}",
            "summary": f"{base}/summary",
            "health": f"{base}/health",
            "requests (newest page of 50)": f"{base}/requests",
            "events (first page of 100)": f"{base}/events",
            "events?minDeliveries=2": f"{base}/events?minDeliveries=2",
        }
        report["queries"] = {}
        for name, url in urls.items():
            result = time_get(url)
            report["queries"][name] = result
            print(f"{name}: {result}", flush=True)

        pids = server.pids()[1:]
        report["rss_before_mb"] = [round(bench.rss_mb(p) or 0, 1) for p in pids]
        if args.burst:
            token = bench.get_token(server.url)
            templates = bodies.write_templates(workdir / "bodies", 100)
            load = bench.Load(2, 16, args.burst, 0)
            data = bench.wrk(server.url, templates, token, args.burst, load, workdir / "w.json")
            seconds = data["duration_us"] / 1e6
            report["burst"] = {
                "seconds": round(seconds, 1),
                "requests_per_s": round(data["requests"] / seconds, 1),
                "p50_ms": round(data["latency_us"]["p50"] / 1000, 1),
                "p99_ms": round(data["latency_us"]["p99"] / 1000, 1),
                "statuses": data["statuses"],
            }
            print(f"burst on the big journal: {report['burst']}")
        report["rss_after_mb"] = [round(bench.rss_mb(p) or 0, 1) for p in pids]
        print(f"worker RSS before {report['rss_before_mb']} MB, after {report['rss_after_mb']} MB")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(
            workdir, ignore_errors=True
        )  # the journal too, unless --keep put it elsewhere

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "journal_scale.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, args.out / "journal_scale.md")
    print(f"wrote {args.out}/journal_scale.md and journal_scale.json")
    return 0


def write_markdown(report: dict[str, Any], path: Path) -> None:
    fill_ = report["fill"]
    lines = [
        "# Journal at scale",
        "",
        f"{fill_['events']:,} events in {fill_['requests']:,} requests of {fill_['batch']} "
        f"events ({report['journal_mb']:,} MB on disk), filled through Journal.commit_batch in "
        f"{fill_['seconds']} s ({fill_['events_per_s']:,} events/s, one thread).",
        "",
        "| events journaled | commit mean ms | commit p50 ms | commit p99 ms | filler RSS MB |"
        " file MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for p in fill_.get("progress", []):
        lines.append(
            f"| {p['events']:,} | {p['commit_mean_ms']} | {p['commit_p50_ms']} | "
            f"{p['commit_p99_ms']} | {p['rss_mb']} | {p['file_mb']:,} |"
        )
    lines += [
        "",
        f"`rokt-mock serve --workers 2` on this journal: healthy after {report['startup_s']} s.",
        "",
        "| admin query (HTTP, client side) | status | first ms | median of 5 ms | under 50 ms |",
        "|---|---:|---:|---:|---|",
    ]
    for name, q in report["queries"].items():
        ok = "yes" if q["median_ms"] < 50 else "NO"
        lines.append(f"| `{name}` | {q['status']} | {q['first_ms']} | {q['median_ms']} | {ok} |")
    lines += ["", "Query plans:", ""]
    for name, plan in report["plans"].items():
        lines.append(f"- {name}: `{' / '.join(plan)}`")
    burst = report.get("burst")
    lines += [
        "",
        f"Worker RSS before the load burst: {report['rss_before_mb']} MB; after "
        f"{burst['seconds'] if burst else 0} s of 100-event batches: {report['rss_after_mb']} MB.",
    ]
    if burst:
        lines.append(
            f"The burst on the big journal: {burst['requests_per_s']} requests/s, p50 "
            f"{burst['p50_ms']} ms, p99 {burst['p99_ms']} ms, statuses {burst['statuses']}."
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
