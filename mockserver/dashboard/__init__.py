"""The delivery-health dashboard: a static page at ``/__admin/`` and a few light JSON reads.

The page is plain HTML, CSS and JavaScript in ``static/``: no build step and no CDN, so it works
offline and from an installed wheel. It holds no data, so the admin token guard (in admin.py,
for everything under ``/__admin``) lets ``dashboard.page`` and ``dashboard.static`` through and
guards the JSON reads below like any admin call. The page polls the admin API for everything it
can; the endpoints here answer only what that API cannot answer cheaply enough to poll every
second or two:

- ``GET /__admin/dashboard/funnel``: event outcomes and statuses per namespace *and account*
  (``/__admin/summary`` counts per namespace only);
- ``GET /__admin/dashboard/requests``: the filters of ``/__admin/requests``, without headers
  and bodies, with event outcomes counted per row (for the timeline and the table);
- ``GET /__admin/dashboard/namespaces`` and ``/__admin/dashboard/scenarios``: what the pickers
  offer.

docs/dashboard.md describes the page and these shapes.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..admin import _NAMESPACE, _int_arg, _namespace, _request_filters
from ..errors import NotFound
from . import queries

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/__admin",
    static_folder="static",
    static_url_path="/dashboard/static",
)

#: Same-origin only: no inline script, nothing fetched from elsewhere (the page must work
#: offline, and a journal body rendered by mistake as HTML could not run).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _services() -> Any:
    return current_app.extensions["rokt_mock"]


@bp.after_request
def _harden(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("", endpoint="to_page")
@bp.get("/ns/<name>", endpoint="to_page")
def to_page(name: str | None = None) -> Response:
    """``/__admin`` -> ``/__admin/``: werkzeug's own redirect would answer HTML and build an
    absolute Location from the Host header; this one is a relative Location and the JSON
    envelope every other answer of the mock uses."""
    target = f"{request.path}/"
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    response = jsonify(
        {"data": {"code": "PermanentRedirect", "message": f"the dashboard is at {target}"}}
    )
    response.status_code = 308
    response.headers["Location"] = target
    response.autocorrect_location_header = False
    return response


@bp.get("/", endpoint="page")
@bp.get("/ns/<name>/", endpoint="page")
def page(name: str | None = None) -> Response:
    """The page itself. ``/__admin/ns/<name>/`` opens it on namespace ``name`` (the script
    reads the path), so a CI job can print one link to its own namespace."""
    if name is not None and not _NAMESPACE.fullmatch(name):
        raise NotFound(f"{name!r} is not a namespace name")
    return bp.send_static_file("index.html")


@bp.get("/dashboard/funnel")
def funnel() -> Any:
    """Outcomes per (namespace, account) over the newest ``window`` requests (default 5000)."""
    namespace = _namespace()
    window = _int_arg("window", 5000, 1, 50_000) or 5000
    return jsonify(queries.funnel(_services().journal, namespace, window))


@bp.get("/dashboard/requests")
def light_requests() -> Any:
    """``/__admin/requests`` without headers and bodies: same filters, same ``next``."""
    where, params = _request_filters()
    limit = _int_arg("limit", 100, 1, 1000) or 100
    return jsonify(queries.light_requests(_services().journal, where, params, limit))


@bp.get("/dashboard/namespaces")
def namespaces() -> Any:
    names, truncated = queries.namespaces(_services().journal, 500)
    return jsonify({"namespaces": names, "truncated": truncated})


@bp.get("/dashboard/scenarios")
def scenarios() -> Any:
    """The bundled scenarios ``POST /__admin/faults`` accepts by name, with their blurbs."""
    from ..faults.scenario import ScenarioError, bundled_names, find, load

    validator = _services().schemas.validators["scenario"]
    out = []
    for name in bundled_names():
        try:
            data = load(find(name), validator)
        except ScenarioError:  # a broken bundled file is the scenario tests' business
            continue
        blurb = " ".join(str(data.get("description", "")).split())
        out.append({"name": name, "description": blurb})
    return jsonify({"scenarios": out})
