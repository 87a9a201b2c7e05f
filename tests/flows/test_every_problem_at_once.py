"""A flow with structural errors still gets its problems of meaning reported, each at its line, so
staff fix a flow in one round (the editor on /flows and `sipas flows validate`)."""

from __future__ import annotations

from config.settings import PROJECT_ROOT
from flows.loading import check_source

SHIPPED = (PROJECT_ROOT / "config" / "flows" / "sipas-sms.yaml").read_text(encoding="utf-8")


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_structural_and_semantic_problems_together() -> None:
    broken = (
        SHIPPED.replace("kind: scale5", "kind: scale7", 1)
        .replace("criterion: ket_qua", "criterion: ket_qa", 1)
        .replace("  - key: comment\n    kind: text", "  - key: comment\n    kind: text\n    colour: red")
    )
    report = check_source(broken, "sipas-sms.yaml")
    found = {(issue.line, issue.where) for issue in report.issues}
    assert found == {
        (_line(broken, "kind: scale7"), "questions.0.kind"),
        (_line(broken, "criterion: ket_qa"), "questions.2.criterion"),
        (_line(broken, "colour: red"), "questions.4.colour"),
    }
    assert report.flow is None


def test_a_set_aside_question_does_not_invent_problems() -> None:
    # The first question is broken; the others branch on it. Nothing is reported about them.
    broken = SHIPPED.replace("kind: scale5", "kind: 5", 1)
    report = check_source(broken, "sipas-sms.yaml")
    assert [issue.where for issue in report.issues] == ["questions.0.kind"]


def test_a_sound_flow_has_no_problem() -> None:
    assert check_source(SHIPPED, "sipas-sms.yaml").ok
