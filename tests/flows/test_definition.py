"""The shipped SMS flow loads, every message fits one unaccented GSM-7 SMS, and bad flows are refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from flows.definition import FLOWS_DIR, Flow, FlowError, Messages, default_flow, load_flow
from flows.templates import (
    SMS_LIMIT,
    MessageTooLongError,
    TemplateError,
    fit_sms,
    gsm7_length,
    is_gsm7,
    is_unaccented,
    render_template,
    sms_safe,
    template_fields,
)
from flows.understanding import ReplyKind
from storage.models import Channel
from tests.flows.factories import LONGEST_AGENCY, LONGEST_AGENCY_SMS, LONGEST_CASE_ID

REALISTIC = {"agency": LONGEST_AGENCY, "case_id": LONGEST_CASE_ID}


def _raw() -> dict[str, Any]:
    data = yaml.safe_load((FLOWS_DIR / "sipas-sms.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _every_message(flow: Flow, values: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(language, what, template, rendered text) for every message a citizen can receive."""
    out = []
    for lang in flow.languages:
        for question in flow.questions:
            texts = {f"question {question.key}": question.text}
            texts |= {
                f"{name} at {question.key}": getattr(flow.messages, name) for name in Messages.model_fields
            }
            for what, text in texts.items():
                out.append((lang, what, text[lang], flow.render(text, lang, values, question)))
    return out


def test_default_sms_flow_loads() -> None:
    flow = default_flow("sipas-sms")
    assert (flow.id, flow.version, flow.channel) == ("sipas-sms", 1, Channel.SMS)
    assert flow.languages == ("vi", "en")
    assert [(q.key, q.kind, q.criterion) for q in flow.questions] == [
        ("overall", ReplyKind.SCALE5, "overall"),
        ("cong_chuc", ReplyKind.SCALE5, "cong_chuc"),
        ("ket_qua", ReplyKind.SCALE5, "ket_qua"),
    ]
    assert flow.after("overall") is flow.question("cong_chuc")
    assert flow.after("ket_qua") is None
    assert flow.language_for("fr") == "vi"


def test_every_sms_fits_unshortened_with_the_longest_realistic_agency_and_case() -> None:
    flow = default_flow("sipas-sms")
    for lang, what, template, text in _every_message(flow, REALISTIC):
        assert is_gsm7(text), (lang, what, text)
        assert is_unaccented(text), (lang, what, text)
        assert gsm7_length(text) <= SMS_LIMIT, (lang, what, len(text), text)
        fields = template_fields(template)
        if "agency" in fields:
            assert LONGEST_AGENCY_SMS in text, (lang, what, text)  # not shortened
        if "case_id" in fields:
            assert LONGEST_CASE_ID in text, (lang, what, text)


def test_every_sms_fits_with_impossible_lengths_by_shortening_the_agency() -> None:
    flow = default_flow("sipas-sms")
    worst = {"agency": "Ủy ban nhân dân phường Thanh Xuân Trung " * 7, "case_id": "H" * 64}
    for lang, what, _template, text in _every_message(flow, worst):
        assert gsm7_length(text) <= SMS_LIMIT, (lang, what, text)
        assert is_unaccented(text), (lang, what, text)
    opening = flow.render(flow.messages.opening, "vi", worst, flow.first)
    assert opening.startswith("UBND phuong")
    assert "H" * 64 in opening  # the case number is kept whole while the agency can give way


def test_scale_labels_are_the_official_ones() -> None:
    flow = default_flow("sipas-sms")
    q1 = flow.render(flow.first.text, "vi", REALISTIC, flow.first)
    assert q1.endswith("1 Rat khong hai long, 2 Khong hai long, 3 Binh thuong, 4 Hai long, 5 Rat hai long")
    assert q1.startswith("Cau 1/3: ")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: d["messages"]["thanks"].update(vi="Cảm ơn Ông/Bà"), "unaccented"),
        (lambda d: d["messages"]["thanks"].update(vi="Cam on " + "x" * 160), "too long"),
        (lambda d: d["messages"]["help"].update(vi="Goi {phone}"), "unknown placeholder"),
        (lambda d: d["messages"]["help"].update(vi="Ho so {case_id.__class__}"), "unknown placeholder"),
        (lambda d: d["messages"]["help"].update(vi="Ho so {case_id!r}"), "must be plain"),
        (lambda d: d["messages"]["help"].pop("en"), "missing text for en"),
        (lambda d: d["questions"][1].update(criterion="lich_su"), "unknown criterion"),
        (lambda d: d["questions"][1].pop("criterion"), "needs a criterion"),
        (lambda d: d["questions"][2].update(key="overall"), "used twice"),
        (lambda d: d.update(default_language="fr"), "default_language"),
        (lambda d: d["questions"][0].update(kind="stars"), "kind"),
        (lambda d: d["messages"]["opening"].update(vi="Ho so {case_id} `TC`"), "GSM-7"),
        (lambda d: d.pop("scales"), "scales.scale5 is missing"),
        (lambda d: d.update(surprise=1), "Extra inputs"),
    ],
)
def test_bad_flows_are_refused_with_the_reason(tmp_path: Path, change: Any, error: str) -> None:
    data = copy.deepcopy(_raw())
    change(data)
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(FlowError, match=error) as raised:
        load_flow(path)
    assert str(path) in str(raised.value)


def test_gsm7_brackets_count_double_and_are_accepted_when_ascii(tmp_path: Path) -> None:
    data = copy.deepcopy(_raw())
    data["messages"]["opt_out"]["vi"] = "Da ghi nhan [TC]."
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    flow = load_flow(path)
    text = flow.render(flow.messages.opt_out, "vi", REALISTIC, flow.first)
    assert gsm7_length(text) == len(text) + 2


def test_unreadable_and_missing_flows(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed", encoding="utf-8")
    with pytest.raises(FlowError, match="cannot read"):
        load_flow(bad)
    bad.write_text("- a list", encoding="utf-8")
    with pytest.raises(FlowError, match="mapping"):
        load_flow(bad)
    with pytest.raises(FlowError, match="no shipped flow"):
        default_flow("sipas-nothing")
    with pytest.raises(FlowError, match="invalid flow name"):
        default_flow("../secrets")


def test_sms_safe_folds_vietnamese_and_typography() -> None:
    assert sms_safe("Ủy ban nhân dân phường Đống Đa") == "Uy ban nhan dan phuong Dong Da"
    assert sms_safe("Sở “Tư pháp” – Hà Nội…") == 'So "Tu phap" - Ha Noi...'
    assert sms_safe("  UBND\u00a0xã  Ea\tH'leo 😊 ") == "UBND xa Ea H'leo"
    assert sms_safe("Trung tâm Phục vụ hành chính công Thành phố Hồ Chí Minh") == LONGEST_AGENCY_SMS


def test_render_template_is_plain_substitution() -> None:
    assert render_template("{agency}: {{TC}} {case_id}", {"agency": "A", "case_id": "{x}"}) == "A: {TC} {x}"
    with pytest.raises(TemplateError, match="no value"):
        render_template("{agency}", {})
    with pytest.raises(TemplateError, match="malformed"):
        template_fields("{agency")
    with pytest.raises(TemplateError, match="unknown placeholder"):
        template_fields("{0}")


def test_fit_sms_abbreviates_then_cuts_at_words_then_keeps_the_case_tail() -> None:
    template = "{agency} moi Ong/Ba gop y ve ho so {case_id}: " + "x" * 80
    assert fit_sms(template, {"agency": LONGEST_AGENCY, "case_id": "123"}).startswith("TT PVHCC TP HCM moi")
    cut = fit_sms(
        template, {"agency": "Chi nhanh Van phong dang ky dat dai quan Hoang Mai", "case_id": "1" * 40}
    )
    assert gsm7_length(cut) <= SMS_LIMIT
    assert cut.startswith("Chi nhanh")
    assert " moi Ong/Ba" in cut
    tail = fit_sms(template, {"agency": "So Tu phap tinh Lao Cai", "case_id": "X" * 40 + "-0001"})
    assert gsm7_length(tail) <= SMS_LIMIT
    assert "...XX" in tail
    assert "-0001:" in tail
    with pytest.raises(MessageTooLongError):
        fit_sms("x" * 161, {})


@given(agency=st.text(max_size=300), case_id=st.text(min_size=1, max_size=64))
def test_opening_always_fits_one_sms(agency: str, case_id: str) -> None:
    flow = default_flow("sipas-sms")
    for lang in flow.languages:
        text = flow.render(flow.messages.opening, lang, {"agency": agency, "case_id": case_id}, flow.first)
        assert is_gsm7(text)
        assert is_unaccented(text)
        assert gsm7_length(text) <= SMS_LIMIT
