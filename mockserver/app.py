"""The app factory: wiring only. No module-level app exists; see ``wsgi.py`` for servers."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from flask import Flask, jsonify, request

from . import admin, auth, dashboard, events, faults, logs, recording
from .auth import TokenIssuer
from .clock import Clock
from .errors import NotFound, register_error_handlers
from .faults import FaultEngine
from .journal import Journal
from .schemas import SchemaSet, load_schemas
from .settings import Credential, Settings
from .validation import Contract

_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


@dataclass
class Services:
    """What the views share, built once per app and kept in ``app.extensions``."""

    settings: Settings
    schemas: SchemaSet
    contract: Contract
    journal: Journal
    clock: Clock
    tokens: TokenIssuer
    apps: dict[str, Credential]
    keys: dict[str, Credential]
    faults: FaultEngine


def create_app(
    settings: Settings | None = None,
    journal: Journal | None = None,
    *,
    install_scenarios: bool = True,
) -> Flask:
    """Build a mock from explicit settings. Raises ``SchemaLoadError``, ``JournalError`` or
    ``ScenarioError`` before serving anything if the contract, the journal or a scenario cannot
    be loaded. Worker processes pass ``install_scenarios=False``: their parent did it once."""
    settings = settings or Settings()
    schemas = load_schemas(settings.schema_dir)
    journal = journal or Journal(settings.journal)
    clock = Clock(journal)
    key = bytes.fromhex(journal.state_default("token_key", lambda: secrets.token_hex(32)))
    services = Services(
        settings=settings,
        schemas=schemas,
        contract=Contract(
            schemas,
            max_age_days=settings.event_max_age_days,
            max_future_seconds=settings.event_max_future_seconds,
        ),
        journal=journal,
        clock=clock,
        tokens=TokenIssuer(key, settings.apps, settings.token_ttl, journal),
        faults=FaultEngine(journal, schemas.validators["rule"], settings.seed),
        apps={c.ident: c for c in settings.apps},
        keys={c.ident: c for c in settings.keys},
    )
    if install_scenarios:
        faults.install_scenarios(
            services.faults, settings.scenarios, schemas.validators["scenario"], clock.now()
        )

    app = Flask(__name__, static_folder=None)
    app.config["ROKT_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # No 308 redirects with HTML bodies (werkzeug's answer to '/v2//events'): an API client
    # gets the JSON 404 naming the real endpoints instead.
    app.url_map.merge_slashes = False
    app.extensions["rokt_mock"] = services

    register_error_handlers(app)
    faults.register(app)
    logs.init_app(app, settings)  # before recording: it logs the journal's id
    recording.init_app(app)
    app.wsgi_app = faults.NetworkFaults(app.wsgi_app)  # type: ignore[method-assign]

    @app.before_request
    def _check_namespace() -> None:
        if request.path.startswith("/ns/"):
            name = request.path[4:].partition("/")[0]
            if not _NAMESPACE.match(name):
                raise NotFound(
                    f"namespace {name!r} is not valid: 1-64 of A-Z a-z 0-9 . _ - "
                    "starting with a letter or digit"
                )

    for blueprint in (auth.bp, events.bp):
        app.register_blueprint(blueprint)
        app.register_blueprint(blueprint, url_prefix="/ns/<namespace>", name=f"{blueprint.name}_ns")
    app.register_blueprint(admin.bp)
    app.register_blueprint(dashboard.bp)  # the page at /__admin/ (docs/dashboard.md)

    @app.get("/openapi.json")
    def openapi() -> Any:
        return jsonify(schemas.openapi)

    return app
