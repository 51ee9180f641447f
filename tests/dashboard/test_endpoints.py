"""The dashboard's server side over HTTP, no browser: the page, its assets, and the light reads
the page polls (funnel per account, light request rows, namespaces, scenarios)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import requests

from contract_tests.mock import MockServer
from tests.conftest import ACCOUNT, Client, make_body

STATIC = Path(__file__).resolve().parents[2] / "mockserver" / "dashboard" / "static"


def get(mock: MockServer, path: str, **params: object) -> requests.Response:
    return requests.get(f"{mock.url}{path}", params=params, timeout=30)


def traffic(client: Client) -> str:
    """A mix with every outcome: accepted, duplicate, rejected, refused, 409, faults."""
    client.v1(make_body(3))
    body = make_body(2)
    key = str(uuid.uuid4())
    client.v1(body, key=key, headers={"X-Rokt-Mock-Fault": "status=503"})
    client.v1(body, key=key, headers={"X-Rokt-Mock-Fault": "accept-then=500"})
    client.v1(body, key=key)  # 409: the accept-then-fail committed it
    bad = make_body(3)
    bad["events"][1]["eventTime"] = "2026-11-20T10:00:00+10:00"
    client.v2(bad)
    client.v2(bad)  # one duplicate, the same two rejections
    client.v2(make_body(1), headers={"Content-Type": "text/plain"})  # 400, event refused
    return key


def test_page_is_served_at_admin_root_and_per_namespace(mock: MockServer) -> None:
    for path in ("/__admin/", "/__admin/ns/ci-42/"):
        response = get(mock, path)
        assert response.status_code == 200, path
        assert response.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert '<main id="main"' in response.text
    assert get(mock, "/__admin/ns/bad name/").status_code == 404
    redirect = requests.get(f"{mock.url}/__admin", allow_redirects=False, timeout=30)
    assert redirect.status_code in (301, 308)
    assert redirect.headers["Location"].endswith("/__admin/")


def test_admin_without_slash_redirects_in_the_envelope(mock: MockServer) -> None:
    """Not werkzeug's HTML redirect with a Location built from the Host header: a relative
    Location that keeps the query, and a JSON body like every other answer."""
    for path, query, target in (
        ("/__admin", "", "/__admin/"),
        ("/__admin", "?namespace=ci-42", "/__admin/?namespace=ci-42"),
        ("/__admin/ns/ci-42", "", "/__admin/ns/ci-42/"),
    ):
        response = requests.get(
            f"{mock.url}{path}{query}",
            headers={"Host": "evil.example"},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 308, response.text
        assert response.headers["Location"] == target
        assert response.json()["data"]["code"] == "PermanentRedirect"


def test_assets_are_local_and_served() -> None:
    """Offline means no CDN: no asset may name another origin."""
    for name in ("index.html", "dashboard.css", "dashboard.js"):
        text = (STATIC / name).read_text(encoding="utf-8")
        foreign = [
            url
            for url in re.findall(r"https?://[^\s'\"<>)]+", text)
            if url != "http://www.w3.org/2000/svg"  # the SVG namespace, not a fetch
        ]
        assert not foreign, f"{name} refers to {foreign}"


def test_static_files_have_their_types(mock: MockServer) -> None:
    js = get(mock, "/__admin/dashboard/static/dashboard.js")
    css = get(mock, "/__admin/dashboard/static/dashboard.css")
    assert js.status_code == css.status_code == 200
    assert "javascript" in js.headers["Content-Type"]
    assert css.headers["Content-Type"].startswith("text/css")
    assert js.headers["X-Content-Type-Options"] == "nosniff"


def test_funnel_per_account_adds_up_to_the_summary(mock: MockServer, client: Client) -> None:
    traffic(client)
    Client(mock, "dash-other").v2(make_body(4))
    summary = mock.summary()
    funnel = get(mock, "/__admin/dashboard/funnel").json()
    assert funnel["complete"] is True
    assert {row["namespace"] for row in funnel["rows"]} == {"default"}
    accounts = {row["accountId"]: row for row in funnel["rows"]}
    assert set(accounts) == {ACCOUNT, None}  # None: the token request has no account
    for field in ("received", "accepted", "duplicates", "rejected", "refused"):
        assert sum(r["events"][field] for r in funnel["rows"]) == summary["events"][field], field
    assert accounts[ACCOUNT]["events"]["rejectedByRule"] == summary["events"]["rejectedByRule"]
    by_status: dict[str, int] = {}
    for row in funnel["rows"]:
        for status, n in row["requests"]["byStatus"].items():
            by_status[status] = by_status.get(status, 0) + n
    assert by_status == summary["requests"]["byStatus"]

    everywhere = get(mock, "/__admin/dashboard/funnel", namespace="*").json()
    assert {row["namespace"] for row in everywhere["rows"]} == {"default", "dash-other"}


def test_funnel_window_says_when_it_is_partial(mock: MockServer, client: Client) -> None:
    for _ in range(3):
        client.v2(make_body(1))
    funnel = get(mock, "/__admin/dashboard/funnel", window=2).json()
    assert funnel["complete"] is False
    assert funnel["requestsScanned"] == 2
    assert sum(r["events"]["received"] for r in funnel["rows"]) == 2
    assert get(mock, "/__admin/dashboard/funnel", window=0).status_code == 400


def test_light_requests_filter_and_page_like_the_admin_api(
    mock: MockServer, client: Client
) -> None:
    key = traffic(client)
    light = get(mock, "/__admin/dashboard/requests", idempotencyKey=key).json()
    full = mock.requests(idempotencyKey=key)
    assert [r["id"] for r in light["requests"]] == [r["id"] for r in full]
    assert [r["status"] for r in light["requests"]] == [409, 500, 503]
    assert "headers" not in light["requests"][0]
    assert "body" not in light["requests"][0]
    assert light["requests"][1]["fault"] == {
        "kind": "acceptThen",
        "rule": "header",
        "source": "header",
        "committed": True,
    }
    assert light["requests"][1]["outcomes"] == {"accepted": 2}

    first = get(mock, "/__admin/dashboard/requests", limit=3).json()
    second = get(mock, "/__admin/dashboard/requests", limit=3, before=first["next"]).json()
    ids = [r["id"] for r in first["requests"] + second["requests"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 6
    assert get(mock, "/__admin/dashboard/requests", status="4xx").json()["requests"]
    assert get(mock, "/__admin/dashboard/requests", status="nope").status_code == 400


def test_namespaces_lists_names_with_requests_rules_or_clocks(
    mock: MockServer, client: Client
) -> None:
    Client(mock, "dash-b").v2(make_body(1))
    Client(mock, "dash-a").v2(make_body(1))
    reset_rule = {"fault": {"reset": True}}
    mock.admin("POST", "faults", params={"namespace": "dash-rules"}, json=reset_rule)
    mock.admin("POST", "clock", params={"namespace": "dash-clock"}, json={"frozen": True})
    names = get(mock, "/__admin/dashboard/namespaces").json()
    assert names["namespaces"] == ["default", "dash-a", "dash-b", "dash-clock", "dash-rules"]
    assert names["truncated"] is False


def test_scenarios_lists_the_bundled_ones(mock: MockServer) -> None:
    scenarios = get(mock, "/__admin/dashboard/scenarios").json()["scenarios"]
    names = [s["name"] for s in scenarios]
    assert "flaky-5xx" in names
    assert names == sorted(names)
    assert all(s["description"] for s in scenarios)
