"""GET /api/v1/scores with tokens from `sipas api-tokens`: the JSON of `scores show`, scoped, hashed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from config.settings import Settings
from storage.db import session_factory
from storage.models import ApiToken, AuditEntry
from tests.scores.test_cli_and_tasks import env  # noqa: F401  (fixture)
from tests.scores.test_report_db import seed_tree
from tests.support.app import Client
from workers.cli import cli


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The web app's settings with the CLI's minimum (env sets SIPAS_MIN_RESPONSES=5)."""
    return settings.model_copy(update={"SIPAS_MIN_RESPONSES": 5})


@pytest.fixture
def tree(env: str, settings: Settings) -> str:  # noqa: F811
    seed_tree(env)
    return env


async def _get(client: Client, query: str, token: str | None) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = await client.get(f"/api/v1/scores?{query}", headers=headers)
    return response.status, await response.json()


async def test_scores_api_answers_the_json_of_scores_show(tree: str, client: Client) -> None:
    token = _cli("api-tokens", "add", "--agency", "D", "--name", "so-noi-vu").stdout.strip()
    assert token.startswith("sipas_")
    with session_factory(tree)() as s:
        stored = s.scalars(select(ApiToken)).one()
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()  # only the hash is kept
        actions = s.scalars(select(AuditEntry.action)).all()
    assert "api_tokens.add" in actions

    status, body = await _get(client, "agency=D&period=2026-W47", token)
    assert status == 200
    shown = json.loads(
        _cli("scores", "show", "--agency", "D", "--period", "2026-W47", "--format", "json").stdout
    )
    assert body == shown
    assert [row["agency_code"] for row in body] == ["D", "W1", "W2"]
    w1 = body[1]
    assert w1["suppressed"] is True  # 4 answers < 5: still shown, flagged
    assert w1["rank_range"] is None
    assert body[0]["elements"]["tiep_can"] is None  # no data stays null

    status, below = await _get(client, "agency=W2&period=2026-W47&channel=sms", token)
    assert status == 200
    assert below[0]["channel"] == "sms"

    # Every case of the seed is a birth registration: that procedure's figures are the totals.
    status, births = await _get(client, "agency=D&period=2026-W47&procedure=1.001612", token)
    assert status == 200
    assert {row["procedure_code"] for row in births} == {"1.001612"}
    assert [{**row, "procedure_code": None} for row in births] == body
    status, marriages = await _get(client, "agency=D&period=2026-W47&procedure=1.001193", token)
    assert status == 200
    assert [(row["agency_code"], row["n_cases_closed"]) for row in marriages] == [("D", 0)]


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("agency=P&period=2026-W47", 403, "forbidden"),  # the province is above the token's district
        ("agency=S&period=2026-W47", 403, "forbidden"),  # a sibling department
        ("agency=NOPE&period=2026-W47", 403, "forbidden"),  # unknown answers like outside
        ("agency=D&period=last-week", 400, "invalid_parameter"),
        ("agency=D", 400, "invalid_parameter"),
        ("agency=D&period=2026-11&channel=fax", 400, "invalid_parameter"),
        ("agency=D&period=2026-11&procedure=" + "1" * 65, 400, "invalid_parameter"),
    ],
)
async def test_scope_and_bad_input(tree: str, client: Client, query: str, status: int, error: str) -> None:
    token = _cli("api-tokens", "add", "--agency", "D", "--name", "district").stdout.strip()
    got_status, body = await _get(client, query, token)
    assert (got_status, body["error"]) == (status, error)


async def test_missing_wrong_and_revoked_tokens_get_401(tree: str, client: Client) -> None:
    token = _cli("api-tokens", "add", "--agency", "P", "--name", "province").stdout.strip()
    assert (await _get(client, "agency=P&period=2026-W47", None))[0] == 401
    assert (await _get(client, "agency=P&period=2026-W47", token + "x"))[0] == 401
    response = await client.get(
        "/api/v1/scores?agency=P&period=2026-W47", headers={"Authorization": f"Basic {token}"}
    )
    assert response.status == 401
    assert (await _get(client, "agency=P&period=2026-W47", token))[0] == 200

    listed = _cli("api-tokens", "list").stdout
    assert "province\tP\t" in listed
    assert token not in listed
    _cli("api-tokens", "revoke", "province")
    status, body = await _get(client, "agency=P&period=2026-W47", token)
    assert (status, body["error"]) == (401, "unauthorized")
    assert "revoked" in _cli("api-tokens", "list").stdout


def test_token_commands_refuse_clearly(tree: str) -> None:
    _cli("api-tokens", "add", "--agency", "P", "--name", "one")
    for args, message in (
        (["add", "--agency", "P", "--name", "one"], "exists already"),
        (["add", "--agency", "NOPE", "--name", "two"], "no agency with code 'NOPE'"),
        (["add", "--agency", "P", "--name", "bad name"], "a token name is"),
        (["revoke", "nobody"], "no token named 'nobody'"),
    ):
        result = CliRunner().invoke(cli, ["api-tokens", *args])
        assert result.exit_code == 2
        assert message in result.output
