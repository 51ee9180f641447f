"""Time the two ways ``Contract`` finds schema errors, on the same bodies, in the same run.

    .venv/bin/python bench/validation.py [--rounds N]

``check_slow`` is the reference (jsonschema's Draft 2020-12 validator on
``schemas/events.schema.json``); ``check`` is the fast path (``mockserver/fastcheck.py``,
compiled from the same schema). Both return the full verdict (stages, time window, warnings),
so the numbers are what one POST events body costs the server. Before timing, the script
checks that both give the same verdict for every body.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mockserver.schemas import load_schemas  # noqa: E402
from mockserver.timefmt import parse_rfc3339  # noqa: E402
from mockserver.validation import Contract, Verdict  # noqa: E402

PAYLOADS = ROOT / "fixtures" / "payloads"
#: The instant the payload fixtures were written for (fixtures/payloads/README.md).
EPOCH = parse_rfc3339("2026-11-20T12:00:00Z") or 0.0


def _load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def _invalid_batch() -> Any:
    """batch-100 with a tenth of its events broken in event-level ways (answer: 200, 10 of 100
    in unprocessedRecords), the common way a real batch is partly wrong."""
    body = copy.deepcopy(_load("valid/batch-100.json"))
    for i in range(0, 100, 10):
        event = body["events"][i]
        kind = (i // 10) % 4
        if kind == 0:
            event["clientEventId"] += "-retry"  # over maxLength
        elif kind == 1:
            event["objectData"].append({"name": "rokt.source", "value": "x"})  # reserved name
        elif kind == 2:
            event["eventTime"] = event["eventTime"].replace("T", " ")  # not RFC 3339
        else:
            event["eventTime"] = event["eventTime"].replace("Z", "+11:00")  # not UTC
    return body


def _median_seconds(call: Callable[[], Verdict], rounds: int, budget: float = 0.2) -> float:
    """Median time of one call, over ``rounds`` rounds of as many calls as fit ~``budget`` s."""
    start = time.perf_counter()
    call()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(budget / rounds / once))
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            call()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="timing rounds per measurement")
    args = parser.parse_args()

    contract = Contract(load_schemas())
    if contract.engine != "fast":
        sys.exit("the fast path is off for this schema (see the warning above); nothing to time")
    cases = {
        "valid, 1 event": _load("valid/conversion-purchase.json"),
        "valid, 100 events": _load("valid/batch-100.json"),
        "invalid, 100 events (10 bad)": _invalid_batch(),
    }
    for name, body in cases.items():
        fast, slow = contract.check(body, EPOCH), contract.check_slow(body, EPOCH)
        if fast != slow:
            sys.exit(f"{name}: the two paths disagree:\n  fast: {fast}\n  slow: {slow}")
        expect_ok = name.startswith("valid")
        if fast.ok != expect_ok:
            sys.exit(f"{name}: expected ok={expect_ok}, got {fast}")

    header = f"{'body':<30} {'jsonschema (ms)':>16} {'fast (ms)':>10} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    for name, body in cases.items():
        slow_s = _median_seconds(lambda b=body: contract.check_slow(b, EPOCH), args.rounds)
        fast_s = _median_seconds(lambda b=body: contract.check(b, EPOCH), args.rounds)
        print(f"{name:<30} {slow_s * 1e3:>16.3f} {fast_s * 1e3:>10.3f} {slow_s / fast_s:>8.1f}x")
    print(f"\nmedian of {args.rounds} rounds per cell; Contract.check_slow vs Contract.check,")
    print("full verdicts (schema errors, stages, time window, warnings) at the fixture epoch.")


if __name__ == "__main__":
    main()
