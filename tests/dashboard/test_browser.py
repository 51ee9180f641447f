"""The dashboard in a real browser (headless Chromium), against a real mock.

Traffic is sent with ``requests`` the way a sender would; the tests then look at the page the
way a person would: the violation highlighted in the body, a fault added through the form
reaching the next request, the funnel agreeing with ``/__admin/summary``. Every wait is
Playwright's polling ``expect`` with a deadline; nothing sleeps. Each view is saved as a
screenshot under ``.rokt-mock/artifacts/dashboard/``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from typing import Any

import pytest
import requests

from contract_tests.mock import MockServer
from mockserver.settings import Settings
from tests.conftest import (
    ACCOUNT,
    APP_SECRET,
    RPUB,
    RSEC,
    Client,
    make_body,
    make_event,
    start_mock,
)
from tests.dashboard.conftest import NARROW, WIDE, Page, browser_problem

if browser_problem() is None:
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)


def rid(response: requests.Response) -> int:
    return int(response.headers["X-Rokt-Mock-Request-Id"])


def bad_batch() -> dict[str, Any]:
    """Three events: the second not in UTC, the third with a reserved attribute name."""
    body = make_body(3)
    body["events"][1]["eventTime"] = "2026-11-20T10:00:00+10:00"
    body["events"][2]["objectData"][0]["name"] = "rokt.email"
    return body


def mixed_traffic(client: Client) -> str:
    """Every outcome once: accepted, retried (503, commit-then-500, 409), rejected, duplicate,
    refused, no answer. Returns the Idempotency-Key of the retried batch."""
    client.v1(make_body(3))
    batch = make_body(2)
    key = str(uuid.uuid4())
    client.v1(batch, key=key, headers={"X-Rokt-Mock-Fault": "status=503"})
    client.v1(batch, key=key, headers={"X-Rokt-Mock-Fault": "accept-then=500"})
    client.v1(batch, key=key)
    client.v2(bad_batch())
    again = bad_batch()
    client.v2(again)
    client.v2(again)
    client.v2({"accountId": ACCOUNT, "events": [make_event(clientEventId=None)]})
    client.v2(make_body(1), headers={"Content-Type": "text/plain"})
    with pytest.raises(requests.ConnectionError):
        client.v2(make_body(2), headers={"X-Rokt-Mock-Fault": "reset"})
    client.v2(make_body(1), headers={"X-Rokt-Mock-Fault": "status=429;retry-after=1"})
    return key


def test_bad_batch_shows_each_violation_at_its_pointer(dash: Page, client: Client) -> None:
    token = client.token()
    bad = client.v2(bad_batch())
    assert bad.status_code == 200
    too_long = client.v1({"accountId": "9" * 65, "events": [make_event()]})
    assert too_long.status_code == 400
    page = dash.open("requests")

    # The table lists the request; its link opens the drill-down.
    page.locator(f'#req-table a[data-rid="{rid(bad)}"]').click()
    detail = page.locator("#detail")
    expect(detail.locator("#detail-h")).to_have_text(f"Request #{rid(bad)}")
    body = detail.locator(".json").first
    utc = body.locator('.annot[data-pointer="/events/1/eventTime"]')
    expect(utc).to_contain_text("eventTime.utc")
    expect(utc).to_contain_text("is not UTC")
    marked = body.locator('.violation[data-rule~="eventTime.utc"]')
    expect(marked).to_contain_text('"eventTime": "2026-11-20T10:00:00+10:00"')
    prefix = body.locator('.annot[data-pointer="/events/2/objectData/0/name"]')
    expect(prefix).to_contain_text("name.reserved_prefix")
    expect(body.locator('.violation[data-rule~="name.reserved_prefix"]')).to_contain_text(
        '"name": "rokt.email"'
    )
    rules = detail.locator(".violations li.violation")
    expect(rules).to_have_count(2)
    expect(rules.first).to_contain_text("eventTime.utc")
    expect(detail.locator("table.headers")).to_contain_text("Basic <redacted>")
    dash.shot("requests-detail-1280x800")

    # A request-level 400 points at /accountId.
    page.goto(page.url.split("#")[0] + f"#requests/{rid(too_long)}")
    expect(detail.locator("#detail-h")).to_have_text(f"Request #{rid(too_long)}")
    annot = detail.locator('.json .annot[data-pointer="/accountId"]')
    expect(annot).to_contain_text("accountId.max_length")
    expect(detail.locator('.json .violation[data-rule~="accountId.max_length"]')).to_be_visible()

    # The page shows what the journal holds, and the journal holds no secret.
    html = page.content()
    basic = base64.b64encode(f"{RPUB}:{RSEC}".encode()).decode()
    for secret in (APP_SECRET, RSEC, token, basic):
        assert secret not in html


def test_fault_added_in_the_ui_reaches_the_next_request(
    dash: Page, mock: MockServer, client: Client
) -> None:
    page = dash.open("faults")
    form = page.locator("#rule-form")
    form.get_by_label("Fault", exact=True).select_option("status")
    form.get_by_label("Status", exact=True).select_option("503")
    form.get_by_label("Fires on").select_option("first")
    form.get_by_label("N", exact=True).fill("1")
    form.get_by_label("Fire at most (times)").fill("1")
    form.get_by_label("Expire after (s)").fill("600")
    form.get_by_label("Rule id (optional)").fill("ui-503")
    form.get_by_role("button", name="Add rule").click()
    row = page.locator('#rules-table tr[data-rule="ui-503"]')
    expect(row).to_contain_text("503 Service Unavailable")
    expect(row.locator(".lifetime")).to_contain_text("1 of 1 firing left")
    expect(row.locator(".lifetime")).to_contain_text("expires in 10 min")

    hit = client.v2(make_body(1))
    assert hit.status_code == 503
    assert hit.json()["data"]["details"]["fault"]["rule"] == "ui-503"
    assert client.v2(make_body(1)).status_code == 200
    expect(row.locator(".lifetime")).to_contain_text("0 of 1 firing left")
    expect(row).to_contain_text("1 / 2")
    expect(page.locator("#fault-count")).to_have_text("1")
    dash.shot("faults-with-rule-1280x800")

    # Delete it from its row; load a scenario; clear them all.
    row.get_by_role("button", name="Delete rule ui-503").click()
    expect(page.locator("#rules-empty")).to_be_visible()
    assert mock.admin("GET", "faults").json()["rules"] == []
    page.get_by_label("Scenario", exact=True).select_option("flaky-5xx")
    expect(page.locator("#scenario-desc")).to_contain_text("one batch in four")
    page.get_by_role("button", name="Load scenario").click()
    expect(page.locator("#rules-table tbody tr")).to_have_count(3)
    page.get_by_role("button", name="Clear this namespace's rules").click()
    expect(page.locator("#rules-empty")).to_be_visible()
    assert mock.admin("GET", "faults").json()["rules"] == []

    # The timeline marks the faulted request.
    page.get_by_role("link", name="Overview", exact=True).click()
    flag = page.locator(f"#tl-{rid(hit)} .fault-flag")
    expect(flag).to_have_count(1)


def test_clock_can_be_frozen_set_and_advanced(dash: Page, mock: MockServer) -> None:
    page = dash.open("faults")
    page.get_by_role("button", name="Freeze").click()
    expect(page.locator("#clock-state")).to_have_text("frozen")
    assert mock.admin("GET", "clock").json()["frozen"] is True
    page.get_by_label("Set to (RFC 3339, UTC)").fill("2026-11-20T12:00:00Z")
    page.get_by_role("button", name="Set", exact=True).click()
    expect(page.locator("#clock-now")).to_have_text("2026-11-20T12:00:00Z")
    page.get_by_label("Advance by (s)").fill("3600")
    page.get_by_role("button", name="Advance").click()
    expect(page.locator("#clock-now")).to_have_text("2026-11-20T13:00:00Z")
    assert mock.admin("GET", "clock").json()["now"] == "2026-11-20T13:00:00.000Z"

    # A namespace's own clock leaves the global one alone.
    page.get_by_label("namespace default only").check()
    page.get_by_role("button", name="Back to real time").click()
    expect(page.locator("#clock-detail")).to_contain_text("follows the global clock")
    assert mock.admin("GET", "clock").json()["frozen"] is True
    page.get_by_label("global (every namespace)").check()
    page.get_by_role("button", name="Back to real time").click()
    expect(page.locator("#clock-state")).to_have_text("real time")


def test_funnel_and_statuses_match_the_summary(
    dash: Page, mock: MockServer, client: Client
) -> None:
    key = mixed_traffic(client)
    summary = mock.summary()
    events, reqs = summary["events"], summary["requests"]
    page = dash.open("overview")

    expect(page.locator("#requests-total")).to_have_text(str(reqs["total"]))
    for name, field in (
        ("received", "received"),
        ("accepted", "accepted"),
        ("rejected", "rejected"),
        ("duplicates", "duplicates"),
    ):
        expect(page.locator(f"#funnel-{name}")).to_have_text(str(events[field]))
    for status, n in reqs["byStatus"].items():
        expect(page.locator(f'#status-list li[data-status="{status}"] .count-n')).to_have_text(
            str(n)
        )
    expect(page.locator("#status-list li")).to_have_count(len(reqs["byStatus"]))
    for rule, n in events["rejectedByRule"].items():
        expect(page.locator("#rejected-rules li", has_text=rule).locator(".num")).to_have_text(
            str(n)
        )
    account = page.locator(f'#accounts-table tr[data-account="{ACCOUNT}"]')
    for field in ("received", "accepted", "rejected", "duplicates", "refused"):
        expect(account.locator(f'td[data-k="{field}"]')).to_have_text(str(events[field]))

    # Timeline: one mark per request, the three attempts of one batch joined by their key,
    # a flag on each injected fault.
    expect(page.locator("#timeline .mark")).to_have_count(reqs["total"])
    link = page.locator(f'#timeline .retry-link[data-key="{key}"]')
    expect(link).to_have_attribute("data-attempts", "3")
    expect(page.locator("#timeline .fault-flag")).to_have_count(sum(reqs["byFault"].values()))
    expect(page.locator("#timeline .retry-link.body")).to_have_count(1)  # the v2 batch sent twice
    dash.shot("funnel-1280x800")
    dash.shot("funnel-1280x800-viewport", full_page=False)

    # Keyboard: the chart is one tab stop; arrows step through requests, Enter opens one.
    page.locator("#timeline svg").focus()
    page.keyboard.press("End")
    newest = mock.requests(limit=1)[0]["id"]
    expect(page.locator("#timeline-focus")).to_contain_text(f"Request #{newest}")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#timeline-focus")).to_contain_text(f"Request #{newest - 1}")
    page.keyboard.press("Enter")
    expect(page.locator("#detail-h")).to_have_text(f"Request #{newest - 1}")

    # Export and OpenAPI links point where they should and serve what they say.
    export = page.locator("#export-link")
    href = export.get_attribute("href")
    assert href == "/__admin/journal/export?namespace=default"
    lines = requests.get(f"{mock.url}{href}", timeout=30).text.splitlines()
    assert len(lines) == reqs["total"]
    assert json.loads(lines[0])["id"] < json.loads(lines[-1])["id"]
    assert page.get_by_role("link", name="OpenAPI (/openapi.json)").get_attribute("href") == (
        "/openapi.json"
    )


def test_requests_filters_narrow_the_table(dash: Page, client: Client) -> None:
    key = mixed_traffic(client)
    page = dash.open("requests")
    rows = page.locator("#req-table tbody tr")
    filters = page.locator("#filters")
    expect(rows).to_have_count(12)  # 11 events requests and the token request
    filters.get_by_label("Idempotency-Key").fill(key)
    filters.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(3)
    expect(page.locator("#export-filtered")).to_have_attribute(
        "href", f"/__admin/journal/export?namespace=default&idempotencyKey={key}"
    )
    filters.get_by_role("button", name="Clear", exact=True).click()
    filters.get_by_label("Status").fill("4xx")
    filters.get_by_label("Endpoint").select_option("/v2/events")
    filters.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(3)  # two 400s and the 429
    statuses = rows.evaluate_all("rows => rows.map(r => r.dataset.status)")
    assert sorted(statuses) == ["400", "400", "429"]
    filters.get_by_role("button", name="Clear", exact=True).click()
    filters.get_by_label("Fault").select_option("any")
    filters.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(4)  # 503, commit-then-500, reset, 429
    dash.shot("requests-1280x800")


def test_namespace_from_path_query_and_picker(dash: Page, mock: MockServer) -> None:
    Client(mock, "dash-a").v2(make_body(2))
    Client(mock, "dash-a").v2(make_body(3))
    Client(mock).v2(make_body(1))
    page = dash.open("overview", path="ns/dash-a/")
    expect(page.locator("#requests-total")).to_have_text("2")
    expect(page.locator("#funnel-received")).to_have_text("5")
    expect(page.locator("#h-overview")).to_have_text("Overview of dash-a")
    assert "namespace=dash-a" in page.url

    page.get_by_label("Namespace", exact=True).fill("*")
    page.get_by_role("button", name="Show", exact=True).click()
    total = mock.summary("*")["requests"]["total"]
    expect(page.locator("#requests-total")).to_have_text(str(total))
    expect(page.locator("#funnel-received")).to_have_text("6")
    expect(page.locator("#accounts-table tbody tr")).to_have_count(2)  # one per namespace
    assert "namespace=*" in page.url or "namespace=%2A" in page.url
    options = page.locator("#ns-list option").evaluate_all("os => os.map(o => o.value)")
    assert {"*", "default", "dash-a"} <= set(options)
    dash.shot("all-namespaces-1280x800")


def test_every_view_fits_a_phone_and_a_laptop(dash: Page, client: Client) -> None:
    mixed_traffic(client)
    bad = rid(client.v2(bad_batch()))
    for size, viewport in (("1280x800", WIDE), ("390x844", NARROW)):
        dash.page.set_viewport_size(viewport)
        for view in ("overview", "requests", f"requests/{bad}", "faults"):
            page = dash.open(view)
            if view == "overview":
                expect(page.locator("#timeline svg")).to_be_visible()
            elif view == "requests":
                expect(page.locator("#req-table tbody tr").first).to_be_visible()
            elif view.startswith("requests/"):
                expect(page.locator("#detail .json .violation").first).to_be_visible()
            else:
                expect(page.locator("#clock-state")).not_to_be_empty()
            dash.no_horizontal_scroll()
            name = view.replace("requests/", "detail-").replace(str(bad), "bad")
            dash.shot(f"{name}-{size}")


def test_keyboard_reaches_everything_with_a_visible_focus(dash: Page, client: Client) -> None:
    client.v2(bad_batch())
    page = dash.open("overview")
    expect(page.locator("#requests-total")).to_have_text("1")
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    seen: list[str] = []
    for _ in range(12):
        seen.append(
            page.evaluate(
                "() => { const e = document.activeElement;"
                " const s = getComputedStyle(e);"
                " if (s.outlineStyle === 'none' || parseFloat(s.outlineWidth) < 2)"
                "   return 'NO FOCUS RING: ' + e.outerHTML.slice(0, 80);"
                " return e.id || e.getAttribute('aria-label')"
                "   || e.textContent.trim().slice(0, 30) || e.tagName + ' ' + e.value; }"
            )
        )
        page.keyboard.press("Tab")
    assert not [s for s in seen if s.startswith("NO FOCUS RING")], seen
    assert seen[:4] == ["Skip to content", "ns-input", "Show", "live-toggle"], seen
    assert {"Overview", "Requests", "export-link", "INPUT time"} <= set(seen), seen
    assert any(s.startswith("Timeline of the newest 1 requests") for s in seen), seen

    page.locator(".skip").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    page.get_by_role("link", name="Requests", exact=True).focus()
    page.keyboard.press("Enter")
    first = page.locator("#req-table tbody a").first
    first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#detail")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    expect(first).to_be_focused()


def _has_admin_token() -> bool:
    return "admin_token" in {f.name for f in dataclasses.fields(Settings)}


def test_admin_token_is_asked_for_kept_per_tab_and_never_shown(browser: Any, tmp_path: Any) -> None:
    """With a token configured, the page asks for it on the first 401, keeps it in
    sessionStorage, sends it on every admin call, and never puts it in the page."""
    token = "dash-" + uuid.uuid4().hex
    if not _has_admin_token():
        pytest.skip("this build has no --admin-token yet")
    mock = start_mock("--admin-token", token, tmp_path=tmp_path)
    context = browser.new_context(viewport=WIDE, accept_downloads=True)
    try:
        Client(mock).v2(make_body(2))
        dash = Page(context.new_page(), mock)
        page = dash.open("overview")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        dash.shot("token-prompt-1280x800", full_page=False)
        page.get_by_label("Token", exact=True).fill("wrong")
        page.get_by_role("button", name="Use token").click()
        expect(page.locator("#token-msg")).to_contain_text("That token was refused")
        page.get_by_label("Token", exact=True).fill(token)
        page.get_by_role("button", name="Use token").click()
        expect(dialog).to_be_hidden()
        expect(page.locator("#requests-total")).to_have_text("1")
        assert page.evaluate("sessionStorage.getItem('rokt-mock-admin-token')") == token
        assert token not in page.content()
        with page.expect_download() as download:
            page.locator("#export-link").click()
        lines = download.value.path().read_text().splitlines()
        assert len(lines) == 1
        assert json.loads(lines[0])["status"] == 200
        unexpected = [e for e in dash.errors if "401" not in e]
        assert not unexpected, unexpected
    finally:
        context.close()
        mock.stop()
