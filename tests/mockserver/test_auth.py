"""The token endpoint and the credentials of both API versions."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import APP_ID, APP_SECRET, RPUB, RSEC, Client, basic, error_of, set_clock


def test_token_success_shape(client: Client) -> None:
    response = client.token_response()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].count(".") == 2  # JWT-shaped
    assert response.headers["Cache-Control"] == "no-store"


def test_content_type_is_case_insensitive(client: Client) -> None:
    response = client.token_response(headers={"Content-Type": "application/X-www-form-urlencoded"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"headers": {"Content-Type": "application/json"}}, 400, "invalid_request"),
        ({"data": ""}, 400, "invalid_request"),
        ({"data": "grant_type=password"}, 400, "unsupported_grant_type"),
        ({"password": "wrong"}, 401, "invalid_client"),
        ({"user": "nobody"}, 401, "invalid_client"),
        ({"headers": {"Authorization": None}}, 401, "invalid_client"),
        ({"headers": {"Authorization": "Bearer abc"}}, 401, "invalid_client"),
        ({"headers": {"Authorization": "Basic !!!notbase64"}}, 401, "invalid_client"),
    ],
)
def test_token_errors(client: Client, kwargs: dict, status: int, error: str) -> None:
    response = client.token_response(**kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_token_error_order_content_type_before_credentials(client: Client) -> None:
    response = client.token_response(password="wrong", headers={"Content-Type": "text/plain"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_missing_grant_before_bad_credentials(client: Client) -> None:
    response = client.token_response(password="wrong", data="")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_bad_credentials_before_unsupported_grant(client: Client) -> None:
    response = client.token_response(password="wrong", data="grant_type=password")
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_credentials_in_body_are_refused_with_a_hint(client: Client) -> None:
    response = client.token_response(
        headers={"Authorization": None},
        data=f"grant_type=client_credentials&client_id={APP_ID}&client_secret={APP_SECRET}",
    )
    assert response.status_code == 401
    assert "Authorization header" in response.json()["error_description"]


def test_v1_token_works_and_expires_on_the_mock_clock(client: Client) -> None:
    set_clock(client.mock, frozen=True)
    assert client.v1().status_code == 200
    set_clock(client.mock, advance=3599)
    assert client.v1().status_code == 200
    set_clock(client.mock, advance=1)
    response = client.v1()
    assert error_of(response) == (401, "UnauthorizedError")
    assert "expired" in response.json()["data"]["message"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-token",
        "Bearer a.b.c",
        basic(APP_ID, APP_SECRET),
        "Token abc",
    ],
)
def test_v1_rejects_bad_bearer(client: Client, authorization: str | None) -> None:
    response = client.v1(headers={"Authorization": authorization})
    assert error_of(response) == (401, "UnauthorizedError")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_v1_rejects_tampered_token(client: Client) -> None:
    header, payload, signature = client.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["exp"] += 10**6
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = client.v1(headers={"Authorization": f"Bearer {header}.{forged}.{signature}"})
    assert error_of(response) == (401, "UnauthorizedError")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        basic(RPUB, "rsec-wrong"),
        basic("rpub-unknown", RSEC),
        f"Bearer {RPUB}:{RSEC}",
        "Basic " + base64.b64encode(RPUB.encode()).decode(),
        "Basic %%%",
    ],
)
def test_v2_rejects_bad_key_pairs(client: Client, authorization: str | None) -> None:
    response = client.v2(headers={"Authorization": authorization})
    assert error_of(response) == (401, "UnauthorizedError")
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_v2_key_pair_is_not_a_v1_app(client: Client) -> None:
    response = client.token_response(user=RPUB, password=RSEC)
    assert response.status_code == 401


def test_journal_never_holds_secrets(client: Client) -> None:
    client.v1()
    client.v2()
    client.token_response(password="wrong")
    exported = client.mock.admin("GET", "journal/export").text
    assert exported.count("\n") >= 4
    for secret in (APP_SECRET, RSEC, client.token(), basic(APP_ID, APP_SECRET).split()[1]):
        assert secret not in exported
    assert "Bearer <redacted>" in exported
    assert "Basic <redacted>" in exported
