"""The kit's commands as functions: run (property-based), replay, verify, doctor.

``run`` drives hypothesis: each example is one case run against the partner's sender in its
own namespace, judged from the journal; the first MUST property that fails is raised as its
own exception class so shrinking stays on that property. Two controls keep a CI job bounded:
results are memoised by case (the mock is deterministic, so re-running a known case only costs
time), and once the shrink budget is spent every unseen candidate is rejected, which ends the
shrink at the best case found so far.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from xml.sax.saxutils import escape, quoteattr

from hypothesis import assume, given, seed
from hypothesis.errors import FailedHealthCheck, Unsatisfiable

from . import profiles as kit_profiles
from .model import Case, Judgement
from .runner import CaseResult, KitError, Mock, run_case, shift_event_times

FAILURE_DIR = Path(".rokt-mock") / "failures"


def _judge() -> Callable[..., Judgement]:
    from .judge import judge

    return judge


@dataclass
class RunReport:
    seed: int
    profile: str
    api: str
    command: str = ""
    workers: int = 1
    cases: int = 0
    failure: CaseResult | None = None
    failure_file: Path | None = None
    warnings: dict[str, int] = field(default_factory=dict)
    coverage: dict[str, int] = field(default_factory=dict)
    property_failures: dict[str, str] = field(default_factory=dict)
    checked: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0


def _case_key(case: Case) -> str:
    return hashlib.sha256(
        json.dumps([case.events, case.schedule, case.token_schedule], sort_keys=True).encode()
    ).hexdigest()


def write_failure(result: CaseResult, command: str, seed_value: int, out_dir: Path) -> Path:
    """A self-contained failure file: enough to replay and to judge again, with no hypothesis."""
    from mockserver import __version__

    from .judge import format_timeline

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{result.case.case_id}.json"
    payload = {
        "kit": __version__,
        "protocol": 1,
        "seed": seed_value,
        "sender": command,
        "namespace": result.namespace,
        "case": result.case.to_json(),
        "generatedAt": time.time(),
        "findings": [f.to_json() for f in result.judgement.findings],
        "warnings": [f.to_json() for f in result.judgement.warnings],
        "exitCode": result.run.exit_code,
        "timedOut": result.run.timed_out,
        "results": result.run.results,
        "resultErrors": result.run.result_errors,
        "senderStdout": result.run.stdout[-4000:],
        "senderStderr": result.run.stderr[-4000:],
        "journal": result.journal,
        "timeline": format_timeline(result.case, result.journal, result.judgement),
    }
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def _print_failure(result: CaseResult, command: str, path: Path, out: TextIO) -> None:
    from .judge import format_timeline

    first = result.judgement.failed[0]
    out.write(
        f"\nFAILED {first.property}  (case {result.case.case_id}: {len(result.case.events)} "
        f"event(s), schedule {result.case.schedule or '[no faults]'})\n"
    )
    out.write(format_timeline(result.case, result.journal, result.judgement) + "\n")
    out.write(f"Failure file: {path}\n")
    out.write(f"Reproduce:    rokt-mock contract replay {path} --sender {quote(command)}\n")


def quote(command: str) -> str:
    return "'" + command.replace("'", "'\"'\"'") + "'"


def run_contract(
    command: str,
    mock: Mock,
    *,
    api: str,
    profile_name: str,
    seed_value: int | None,
    max_examples: int | None,
    workers: int,
    out: TextIO,
    failure_dir: Path = FAILURE_DIR,
) -> RunReport:
    """Property-based run; returns the report (``report.failure`` set when a MUST failed)."""
    from .judge import ContractViolation, raise_first
    from .strategies import cases

    profile = kit_profiles.PROFILES[profile_name]
    if seed_value is None:
        seed_value = (
            profile.fixed_seed if profile.fixed_seed is not None else random.randrange(2**32)
        )
    report = RunReport(
        seed=seed_value, profile=profile_name, api=api, command=command, workers=workers
    )
    out.write(
        f"rokt-mock contract run: api {api}, profile {profile_name}, seed {seed_value}, "
        f"mock {mock.url}\n"
    )
    out.flush()
    judge = _judge()
    started = time.monotonic()
    total = max_examples or profile.max_examples
    memo: dict[str, CaseResult] = {}
    first_failure_at: list[float] = []
    owner: list[int] = []
    lock = threading.Lock()
    tty = out.isatty()

    #: case key -> set when the thread running that case is done (with --workers, two
    #: streams can draw the same simplest case at the same moment; it runs once)
    running: dict[str, threading.Event] = {}

    def one(case: Case) -> None:
        key = _case_key(case)
        with lock:
            known = memo.get(key)
            other = running.get(key) if known is None else None
            if known is None and other is None:
                running[key] = threading.Event()
        if other is not None:
            other.wait()
            with lock:
                known = memo.get(key)
            if known is None:  # that run was abandoned: this stream stops here too
                assume(False)
        if known is None:
            try:
                known = _run_new(case, key)
            finally:
                with lock:
                    running.pop(key).set()
        _record_failure(known)

    def _run_new(case: Case, key: str) -> CaseResult:
        if owner and owner[0] != threading.get_ident():
            assume(False)  # another worker found a failure: this stream stops exploring
        if first_failure_at and time.monotonic() - first_failure_at[0] > profile.shrink_budget_s:
            assume(False)  # shrink budget spent: keep the best case found so far
        case = Case(
            api=case.api,
            events=case.events,
            schedule=case.schedule,
            seed=seed_value,
            case_id=case.case_id,
        )
        known = run_case(case, command, mock, deadline_s=profile.case_deadline_s, judge=judge)
        with lock:
            memo[key] = known
            report.cases += 1
            for prop in {w.property for w in known.judgement.warnings}:  # cases, not lines
                report.warnings[prop] = report.warnings.get(prop, 0) + 1
            for note in known.judgement.coverage:
                report.coverage[note] = report.coverage.get(note, 0) + 1
            report.checked.update(known.judgement.checked)
            report.skipped.update(known.judgement.skipped)
        status = "FAIL " + known.judgement.failed[0].property if known.judgement.failed else "ok"
        phase = "shrinking" if first_failure_at else f"of {total}"
        line = (
            f"case {report.cases:>3} {phase} {case.case_id}: {len(case.events):>3} event(s), "
            f"{sum(k != 'ok' for k in case.schedule)} fault(s), "
            f"{known.run.duration_s:5.1f}s  {status}  "
            f"[{time.monotonic() - started:5.0f}s elapsed, "
            f"{'1 failure' if first_failure_at else 'no failure'} so far]"
        )
        out.write(("\r" + line.ljust(100)) if tty else line + "\n")
        out.flush()
        return known

    def _record_failure(known: CaseResult) -> None:
        if not known.judgement.failed:
            return
        with lock:
            if not first_failure_at:
                first_failure_at.append(time.monotonic())
                owner.append(threading.get_ident())
            best = report.failure
            if best is None or _smaller(known, best):
                report.failure = known
        raise_first(known.judgement)

    def test_stream(stream_seed: int, examples: int) -> None:
        settings = kit_profiles.hypothesis_settings(profile, examples)
        strategy = cases(api, max_events=profile.max_events, max_faults=profile.max_faults)  # type: ignore[arg-type]
        test = settings(seed(stream_seed)(given(case=strategy)(one)))
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Generating overly large repr")
                test()
        except ContractViolation:
            pass  # recorded in report.failure by one()
        except (Unsatisfiable, FailedHealthCheck):
            pass  # every candidate was rejected: another worker failed or the budget ran out

    if workers <= 1:
        test_stream(seed_value, total)
    else:
        per = max(1, total // workers)
        threads = [
            threading.Thread(target=test_stream, args=(seed_value + i, per), daemon=True)
            for i in range(workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if tty:
        out.write("\n")
    report.elapsed_s = time.monotonic() - started
    if report.failure is not None:
        for finding in report.failure.judgement.failed:
            report.property_failures.setdefault(finding.property, finding.message)
        report.failure_file = write_failure(report.failure, command, seed_value, failure_dir)
        _print_failure(report.failure, command, report.failure_file, out)
    _print_summary(report, out)
    return report


def _smaller(a: CaseResult, b: CaseResult) -> bool:
    size = lambda r: (len(r.case.events), sum(k != "ok" for k in r.case.schedule))  # noqa: E731
    return size(a) < size(b)


def _print_summary(report: RunReport, out: TextIO) -> None:
    from .properties import PROPERTIES

    out.write(
        f"\n{report.cases} case(s) in {report.elapsed_s:.1f}s, seed {report.seed} "
        f"(rerun: --seed {report.seed} --profile {report.profile}"
        + (f" --workers {report.workers}" if report.workers > 1 else "")
        + ")\n"
    )
    for pid, prop in PROPERTIES.items():
        if pid in report.property_failures:
            mark = "FAIL"
        elif pid in report.warnings:
            mark = f"warn ({report.warnings[pid]} case(s))"
        elif pid in report.skipped and pid not in report.checked:
            mark = f"skipped: {report.skipped[pid]}"
        elif pid in report.checked:
            mark = "ok"
        else:
            mark = "not exercised"
        out.write(f"  {prop.level:<6} {pid:<36} {mark}\n")
    for note, count in sorted(report.coverage.items()):
        out.write(f"  coverage: {note} ({count} case(s))\n")
    verdict = "FAILED" if report.failure is not None else "PASSED"
    out.write(f"{verdict}: seed {report.seed}\n")
    out.flush()


def write_junit(report: RunReport, path: Path) -> None:
    """One <testcase> per property: failure, skipped (not exercised) or passed."""
    from .properties import PROPERTIES

    cases_xml = []
    failures = 0
    for pid, prop in PROPERTIES.items():
        body = ""
        if pid in report.property_failures:
            failures += 1
            message = report.property_failures[pid]
            replay = (
                f"rokt-mock contract replay {report.failure_file} --sender {quote(report.command)}"
                if report.failure_file
                else ""
            )
            text = escape(f"{message}\n{replay}")
            body = f"<failure message={quoteattr(message)}>{text}</failure>"
        elif pid not in report.checked:
            reason = report.skipped.get(pid, "not exercised by any case")
            body = f"<skipped message={quoteattr(reason)}/>"
        elif pid in report.warnings:
            note = escape(f"{prop.level} warning in {report.warnings[pid]} case(s)")
            body = f"<system-out>{note}</system-out>"
        cases_xml.append(
            f'  <testcase classname="rokt-mock.contract" name={quoteattr(pid)}>{body}</testcase>'
        )
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<testsuite name="rokt-mock contract" tests="{len(PROPERTIES)}" failures="{failures}" '
        f'time="{report.elapsed_s:.1f}">\n' + "\n".join(cases_xml) + "\n</testsuite>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(xml, encoding="utf-8")


def load_failure(ref: str, failure_dir: Path = FAILURE_DIR) -> dict[str, Any]:
    path = Path(ref)
    if not path.is_file():
        path = failure_dir / f"{ref}.json"
    if not path.is_file():
        raise KitError(f"no failure file {ref!r} (looked in {failure_dir})")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as exc:
        raise KitError(f"{path} is not a failure file: {exc}") from None


def replay(
    data: dict[str, Any], command: str, mock: Mock, out: TextIO, deadline_s: float = 60.0
) -> CaseResult:
    """Re-run exactly one recorded case (event times shifted to now), no hypothesis involved."""
    from .judge import format_timeline

    case = Case.from_json(data["case"])
    recorded_at = float(data.get("generatedAt", time.time()))
    case = Case(
        api=case.api,
        events=shift_event_times(case.events, time.time() - recorded_at),
        schedule=case.schedule,
        token_schedule=case.token_schedule,
        seed=case.seed,
        case_id=case.case_id,
    )
    result = run_case(case, command, mock, deadline_s=deadline_s, judge=_judge())
    out.write(format_timeline(result.case, result.journal, result.judgement) + "\n")
    if result.judgement.failed:
        for f in result.judgement.failed:
            out.write(f"FAILED {f.property}: {f.message}\n")
    else:
        out.write(f"FIXED: case {case.case_id} now passes every MUST property\n")
    return result


def doctor(command: str, mock: Mock, api: str, out: TextIO, deadline_s: float = 30.0) -> bool:
    """One clean case (three events, no faults): says exactly what is missing in the wiring."""
    now = time.time()
    from .strategies import _iso

    events = [
        {
            "clientEventId": str(uuid.uuid4()),
            "eventType": "conversion",
            "eventTime": _iso(now - 60 * i),
            "objectData": [
                {"name": "email", "value": f"doctor{i}@example.com"},
                {"name": "conversiontype", "value": "purchase"},
                {"name": "amount", "value": "10.00"},
            ],
        }
        for i in range(3)
    ]
    case = Case(api=api, events=events, case_id="doctor")  # type: ignore[arg-type]
    result = run_case(case, command, mock, deadline_s=deadline_s, judge=_judge())
    problems: list[str] = []
    hints: list[str] = []
    attempts = [r for r in result.journal if r["endpoint"] in ("/v1/events", "/v2/events")]
    if result.run.timed_out:
        problems.append(f"the sender did not exit within {deadline_s:.0f} s")
    elif result.run.exit_code == 64:
        problems.append("the sender exited 64: it does not speak ROKT_KIT_PROTOCOL=1")
    elif result.run.exit_code != 0:
        problems.append(f"the sender exited {result.run.exit_code} on a clean run (expected 0)")
    if not result.journal:
        problems.append(
            "the mock saw no request in this case's namespace: does the sender read ROKT_API_URL "
            "(it must send to that base URL, not a hard-coded one)?"
        )
    elif not attempts:
        problems.append(f"no POST {'/v1' if api == 'v1' else '/v2'}/events arrived")
    wrong_api = [r for r in attempts if r["endpoint"] != f"/{api}/events"]
    if wrong_api:
        problems.append(
            f"the sender posted to {wrong_api[0]['endpoint']} but the run is --api {api}"
        )
    if result.run.results is None:
        hints.append(
            "no result file: write JSON Lines to ROKT_KIT_RESULT_FILE to enable report checks"
        )
    for err in result.run.result_errors:
        problems.append(f"result file: {err}")
    for finding in result.judgement.failed:
        problems.append(f"{finding.property}: {finding.message}")
    for w in result.judgement.warnings:
        hints.append(f"{w.property}: {w.message}")
    accepted = sum(
        1 for r in attempts for e in r["events"] if e["outcome"] in ("accepted", "duplicate")
    )
    out.write(f"rokt-mock contract doctor: {command}\n")
    out.write(f"  requests seen: {len(result.journal)}, events accepted: {accepted} of 3\n")
    for p in problems:
        out.write(f"  PROBLEM: {p}\n")
    for h in hints:
        out.write(f"  hint: {h}\n")
    if result.run.stderr.strip():
        out.write("  sender stderr (last lines):\n")
        for line in result.run.stderr.strip().splitlines()[-8:]:
            out.write(f"    {line}\n")
    out.write("  OK: the sender is wired correctly\n" if not problems else "  NOT OK\n")
    return not problems


def verify(
    mock: Mock,
    namespace: str,
    intended: list[dict[str, Any]],
    api: str,
    out: TextIO,
    results: list[dict[str, Any]] | None = None,
    exit_code: int = 0,
) -> Judgement:
    """Observer mode: judge a namespace someone else's tests already filled."""
    from .model import SenderRun

    journal = mock.journal(namespace)
    case = Case(api=api, events=intended, case_id=namespace)  # type: ignore[arg-type]
    run = SenderRun(exit_code=exit_code, timed_out=False, duration_s=0.0, results=results)
    judgement = _judge()(case, journal, run)
    from .judge import format_timeline

    out.write(format_timeline(case, journal, judgement) + "\n")
    for f in judgement.failed:
        out.write(f"FAILED {f.property}: {f.message}\n")
    out.write("PASSED\n" if judgement.ok else "FAILED\n")
    return judgement


def stdout() -> TextIO:
    return sys.stdout
