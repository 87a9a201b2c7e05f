"""config/flows/flow.schema.json is the models' schema, the shipped flows follow it, and it never
refuses a flow the models accept nor accepts a badly shaped one they refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from flows.definition import json_schema
from flows.loading import FLOWS_DIR, check_source
from workers.cli import cli

SCHEMA_FILE = FLOWS_DIR / "flow.schema.json"
DATA = Path(__file__).parent / "data"
VALID = [*sorted(FLOWS_DIR.glob("*.yaml")), DATA / "valid-branching.yaml", DATA / "valid-multi.yaml"]


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _data(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_committed_schema_is_the_models_schema() -> None:
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == json_schema()
    printed = CliRunner().invoke(cli, ["flows", "schema"])
    assert printed.exit_code == 0
    assert json.loads(printed.stdout) == json_schema()


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_flows_follow_the_schema(validator: Draft202012Validator, path: Path) -> None:
    errors = [error.message for error in validator.iter_errors(_data(path))]
    assert errors == []


@pytest.mark.parametrize(
    ("change", "schema_words"),
    [
        (lambda d: d["questions"][0].update(kind="stars"), "'stars' is not one of"),
        (lambda d: d.update(channel="fax"), "'fax' is not one of"),
        (lambda d: d.update(surprise=1), "Additional properties"),
        (lambda d: d["messages"].pop("thanks"), "'thanks' is a required property"),
        (lambda d: d["messages"]["thanks"].update(fr="Merci"), "is not valid under any of the given schemas"),
        (lambda d: d["questions"][0].update(max_answers=9), "greater than the maximum"),
        (lambda d: d["questions"][0].update(key="Q 1"), "does not match"),
        (lambda d: d["questions"][3].update(when={"question": "overall", "maximum": 3}), "is not valid"),
        (
            lambda d: d["questions"][3]["options"].append({"vi": "Khac", "en": "Other"}),
            "is not valid under any",
        ),
        (lambda d: d.update(languages=["vi", "fr"]), "'fr' is not one of"),
    ],
)
def test_badly_shaped_flows_are_refused_by_both(
    validator: Draft202012Validator, change: Any, schema_words: str
) -> None:
    data = _data(FLOWS_DIR / "sipas-sms.yaml")
    change(data)
    messages = [error.message for error in validator.iter_errors(data)]
    assert any(schema_words in message for message in messages), messages
    report = check_source(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "changed.yaml")
    assert report.flow is None
    assert report.issues


def test_every_invalid_fixture_that_the_schema_refuses_is_refused_by_the_models(
    validator: Draft202012Validator,
) -> None:
    """The schema may be looser than the checks (reachability, SMS length are not in it), never
    stricter: whatever it refuses, the models refuse too."""
    refused = []
    for path in sorted((DATA / "invalid").glob("*.yaml")):
        try:
            data = _data(path)
        except yaml.YAMLError:
            continue
        if list(validator.iter_errors(data)):
            refused.append(path.stem)
            assert check_source(path.read_text(encoding="utf-8"), path.name).flow is None, path
    assert "bad-kind" in refused
