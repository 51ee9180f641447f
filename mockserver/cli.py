"""The ``rokt-mock`` command (also ``python -m mockserver``): serve, validate, journal.

Options of ``serve`` are generated from :data:`mockserver.settings.FIELDS`, so each flag, its
``ROKT_MOCK_*`` variable and its help text come from one table. Exit codes: 0 success, 1 the
thing checked is wrong (a payload, an unreachable mock), 2 usage or configuration error.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from . import __version__
from .settings import CONFIG_ENV, FIELDS, ConfigError, load, parse_credentials

DEFAULT_URL = "http://127.0.0.1:8080"


def _serve_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for spec in reversed(FIELDS):
        help_text = f"{spec.help} [env: {spec.env}]"
        dest = spec.name
        if spec.parse.__name__ == "_bool":
            name = spec.flag[2:]
            decl = f"--{name}/--no-{name}"
            func = click.option(decl, dest, default=None, help=help_text)(func)
        elif spec.name in ("apps", "keys"):
            func = click.option(
                spec.flag, dest, multiple=True, metavar="ID:SECRET[:ACCOUNTS]", help=help_text
            )(func)
        elif spec.name == "scenarios":
            func = click.option(
                spec.flag, dest, multiple=True, metavar="FILE|NAME", help=help_text
            )(func)
        elif spec.parse is int:
            func = click.option(spec.flag, dest, type=int, default=None, help=help_text)(func)
        else:
            func = click.option(spec.flag, dest, default=None, help=help_text)(func)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        default=None,
        help=f"TOML config file (see docs/configuration.md). [env: {CONFIG_ENV}]",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rokt-mock")
def cli() -> None:
    """rokt-mock: a local, faithful mock of Rokt's Event API."""


@cli.command()
@_serve_options
def serve(config_file: str | None, **flags: Any) -> None:
    """Start the mock (defaults: 127.0.0.1:8080, journal in .rokt-mock/, demo credentials).

    Prints 'rokt-mock listening on http://HOST:PORT' once it accepts connections; SIGTERM or
    Ctrl-C stops it cleanly.
    """
    from .faults import ScenarioError
    from .journal import JournalError
    from .schemas import SchemaLoadError
    from .server import serve as run

    overrides: dict[str, Any] = {}
    try:
        for name, value in flags.items():
            if name in ("apps", "keys"):
                if value:
                    overrides[name] = tuple(c for item in value for c in parse_credentials(item))
            elif name == "scenarios":
                if value:
                    overrides[name] = tuple(value)
            else:
                overrides[name] = value
        settings = load(config_file, os.environ, overrides)
    except (ConfigError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    try:
        run(settings)
    except (SchemaLoadError, JournalError, ConfigError, ScenarioError) as exc:
        click.echo(f"rokt-mock: cannot start: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"rokt-mock: cannot listen on {settings.host}:{settings.port}: {exc}", err=True)
        sys.exit(2)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--now",
    default=None,
    metavar="RFC3339",
    help="Judge event times against this instant instead of the current time.",
)
@click.option("--strict", is_flag=True, help="Treat contract warnings as violations.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
@click.option("--schema-dir", default=None, help="Use this contract folder instead of schemas/.")
def validate(
    files: tuple[str, ...], now: str | None, strict: bool, as_json: bool, schema_dir: str | None
) -> None:
    """Check POST events payload files offline with the server's own rules.

    Prints each violation with its JSON pointer and rule, and the answer the mock would give.
    Exit 1 if any file would not be accepted in full.
    """
    from .errors import ApiError
    from .schemas import SchemaLoadError, load_schemas
    from .timefmt import parse_rfc3339
    from .validation import Contract, parse_json

    try:
        contract = Contract(load_schemas(schema_dir))
    except SchemaLoadError as exc:
        raise click.UsageError(str(exc)) from None
    at = time.time()
    if now is not None:
        parsed = parse_rfc3339(now)
        if parsed is None:
            raise click.BadParameter(f"not an RFC 3339 date-time: {now!r}", param_hint="--now")
        at = parsed
    failed = False
    for name in files:
        try:
            raw = Path(name).read_bytes()
        except OSError as exc:
            # a usage error (exit 2), like every other bad argument; 1 means "not accepted"
            raise click.BadParameter(f"{name}: {exc.strerror}", param_hint="FILES") from None
        report: dict[str, Any] = {"file": name}
        try:
            doc = parse_json(raw)
            verdict = contract.check(doc, at, strict=strict)
            if verdict.unmarshal:
                report.update(
                    status=400, code="RequestJsonUnmarshalError", violations=verdict.unmarshal
                )
            elif verdict.request:
                report.update(status=400, code="RequestValidationError", violations=verdict.request)
            else:
                report.update(status=200, code=None, violations=verdict.event_violations)
                report["unprocessed"] = len(verdict.events)
                report["events"] = len(doc["events"])
            report["warnings"] = [] if strict else verdict.warnings
        except ApiError as err:
            report.update(status=err.status, code=err.code, violations=err.violations, warnings=[])
        bad = bool(report["violations"])
        failed = failed or bad
        if as_json:
            out = dict(report)
            out["violations"] = [v.to_dict() for v in report["violations"]]
            out["warnings"] = [v.to_dict() for v in report["warnings"]]
            out["ok"] = not bad
            click.echo(json.dumps(out, ensure_ascii=False))
            continue
        if report["status"] != 200:
            click.echo(f"{name}: FAIL: {report['status']} {report['code']}")
        elif bad:
            click.echo(
                f"{name}: FAIL: 200 with {report['unprocessed']} of {report['events']} event(s) "
                "in unprocessedRecords"
            )
        else:
            click.echo(f"{name}: ok ({report['events']} event(s) accepted)")
        for v in report["violations"]:
            click.echo(f"  {v.pointer or '/'}  {v.rule}  {v.message}")
        for v in report["warnings"]:
            click.echo(f"  warning: {v.pointer or '/'}  {v.rule}  {v.message}")
    sys.exit(1 if failed else 0)


@cli.group()
def journal() -> None:
    """Read the journal of a running mock through its admin API.

    Sends $ROKT_MOCK_ADMIN_TOKEN as the admin token when it is set.
    """


_url_option = click.option(
    "--url",
    envvar="ROKT_MOCK_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="Base URL of the running mock. [env: ROKT_MOCK_URL]",
)
_ns_option = click.option(
    "--namespace", default="default", show_default=True, help="Namespace to read; '*' for all."
)


def _admin_get(url: str, path: str, params: dict[str, str], stream: bool = False) -> Any:
    import requests

    token = os.environ.get("ROKT_MOCK_ADMIN_TOKEN")
    headers = {"X-Rokt-Mock-Admin-Token": token} if token else {}
    try:
        response = requests.get(
            f"{url.rstrip('/')}{path}", params=params, stream=stream, timeout=30, headers=headers
        )
    except requests.RequestException as exc:
        click.echo(f"rokt-mock: cannot reach the mock at {url}: {exc}", err=True)
        sys.exit(1)
    if response.status_code != 200:
        click.echo(f"rokt-mock: {path} answered {response.status_code}: {response.text}", err=True)
        sys.exit(1)
    return response


@journal.command("export")
@_url_option
@_ns_option
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout."
)
def journal_export(url: str, namespace: str, output: str | None) -> None:
    """Stream the journal as JSON Lines (one request per line, oldest first)."""
    response = _admin_get(url, "/__admin/journal/export", {"namespace": namespace}, stream=True)
    sink = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
    try:
        for chunk in response.iter_content(chunk_size=65536):
            sink.write(chunk)
    finally:
        if output:
            sink.close()
        else:
            sink.flush()


@journal.command("summary")
@_url_option
@_ns_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def journal_summary(url: str, namespace: str, as_json: bool) -> None:
    """Requests by status and code; events accepted, rejected by rule, duplicated."""
    data = _admin_get(url, "/__admin/summary", {"namespace": namespace}).json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    req, ev = data["requests"], data["events"]
    click.echo(f"namespace {data['namespace']}: {req['total']} request(s)")
    for status, count in sorted(req["byStatus"].items()):
        click.echo(f"  {status}: {count}")
    for code, count in sorted(req["byCode"].items()):
        click.echo(f"  {code}: {count}")
    click.echo(
        f"events: {ev['received']} received, {ev['accepted']} accepted ({ev['unique']} unique), "
        f"{ev['duplicates']} duplicate deliveries, {ev['rejected']} rejected, "
        f"{ev['refused']} in refused requests"
    )
    for rule, count in sorted(ev["rejectedByRule"].items()):
        click.echo(f"  rejected {rule}: {count}")


# -- the contract kit ---------------------------------------------------------------------------


@cli.group()
def contract() -> None:
    """Judge YOUR sender against the mock: property-based runs, replay, verify, doctor."""


_sender_option = click.option(
    "--sender", "sender", required=True, metavar="CMD", help="Shell command that runs your sender."
)
_api_option = click.option(
    "--api", type=click.Choice(["v1", "v2"]), default="v1", show_default=True, help="API version."
)
_mock_url_option = click.option(
    "--mock-url",
    envvar="ROKT_MOCK_URL",
    default=None,
    help="Use this running mock instead of starting one. [env: ROKT_MOCK_URL]",
)


@contextlib.contextmanager
def _kit_mock(mock_url: str | None) -> Iterator[Any]:
    """An existing mock, or a fresh one the kit starts and stops around the command."""
    from contract_tests.mock import MockServer
    from contract_tests.runner import Mock

    server = None if mock_url else MockServer(journal=":memory:")
    mock = Mock(mock_url or server.url)  # type: ignore[union-attr]
    try:
        yield mock
    finally:
        mock.close()  # idle keep-alive connections would hold up the graceful stop
        if server is not None:
            server.stop()


def _kit_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """KitError and mock start failures are wiring problems: exit 2 with the message."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from contract_tests.mock import MockStartError
        from contract_tests.runner import KitError

        try:
            return func(*args, **kwargs)
        except (KitError, MockStartError) as exc:
            click.echo(f"rokt-mock contract: {exc}", err=True)
            sys.exit(2)

    return wrapper


@contract.command("run")
@_sender_option
@_api_option
@click.option(
    "--profile",
    type=click.Choice(["dev", "ci", "nightly"]),
    default=None,
    help="dev (default), ci (default when CI is set: fixed seed), nightly.",
)
@click.option("--seed", "seed_value", type=int, default=None, help="Seed of case generation.")
@click.option("--max-examples", type=int, default=None, help="Cases to generate (profile default).")
@click.option("--workers", type=int, default=1, show_default=True, help="Cases in parallel.")
@click.option("--junit-xml", type=click.Path(dir_okay=False), default=None, help="JUnit report.")
@_mock_url_option
@_kit_errors
def contract_run(
    sender: str,
    api: str,
    profile: str | None,
    seed_value: int | None,
    max_examples: int | None,
    workers: int,
    junit_xml: str | None,
    mock_url: str | None,
) -> None:
    """Generate cases (events + fault schedules), run SENDER on each, judge every property.

    Exit 0: every MUST property held; 1: a property failed (a minimal case, its timeline and a
    replay command are printed); 2: usage or wiring error.
    """
    from contract_tests import kit, profiles

    with _kit_mock(mock_url) as mock:
        report = kit.run_contract(
            sender,
            mock,
            api=api,
            profile_name=profile or profiles.default_profile(),
            seed_value=seed_value,
            max_examples=max_examples,
            workers=max(1, workers),
            out=sys.stdout,
        )
    if junit_xml:
        kit.write_junit(report, Path(junit_xml))
    if report.cases == 0:
        click.echo("rokt-mock contract: no case could be run", err=True)
        sys.exit(2)
    sys.exit(1 if report.failure is not None else 0)


@contract.command("replay")
@click.argument("case_ref", metavar="CASE")
@_sender_option
@_mock_url_option
@_kit_errors
def contract_replay(case_ref: str, sender: str, mock_url: str | None) -> None:
    """Re-run exactly one recorded case (a failure file or its id), without hypothesis."""
    from contract_tests import kit

    data = kit.load_failure(case_ref)
    with _kit_mock(mock_url) as mock:
        result = kit.replay(data, sender, mock, sys.stdout)
    sys.exit(1 if result.judgement.failed else 0)


@contract.command("verify")
@click.option("--namespace", required=True, help="Namespace your own tests sent to.")
@click.option(
    "--intended",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="JSON Lines: the events your sender was meant to deliver.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Optional JSON Lines outcome report of the sender.",
)
@click.option(
    "--exit-code",
    type=int,
    default=0,
    show_default=True,
    help="How your sender exited (0 = it believes everything was delivered).",
)
@_api_option
@click.option(
    "--mock-url",
    envvar="ROKT_MOCK_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The running mock. [env: ROKT_MOCK_URL]",
)
@_kit_errors
def contract_verify(
    namespace: str, intended: str, results: str | None, exit_code: int, api: str, mock_url: str
) -> None:
    """Observer mode: judge what already arrived in NAMESPACE against the intended events."""
    from contract_tests import kit
    from contract_tests.runner import Mock, _read_results

    def lines(path: str) -> list[dict[str, Any]]:
        try:
            return [json.loads(x) for x in Path(path).read_text("utf-8").splitlines() if x.strip()]
        except ValueError as exc:
            raise click.UsageError(f"{path}: not JSON Lines: {exc}") from None

    parsed = None
    if results:
        parsed, errors = _read_results(Path(results))
        if errors:
            raise click.UsageError(f"{results}: " + "; ".join(errors))
    judgement = kit.verify(
        Mock(mock_url), namespace, lines(intended), api, sys.stdout, parsed, exit_code
    )
    sys.exit(0 if judgement.ok else 1)


@contract.command("doctor")
@_sender_option
@_api_option
@_mock_url_option
@_kit_errors
def contract_doctor(sender: str, api: str, mock_url: str | None) -> None:
    """Run one clean case and say exactly what is missing in the sender's wiring."""
    from contract_tests import kit

    with _kit_mock(mock_url) as mock:
        ok = kit.doctor(sender, mock, api, sys.stdout)
    sys.exit(0 if ok else 2)


def main() -> None:
    cli(prog_name="rokt-mock")
