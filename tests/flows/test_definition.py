"""The shipped flows load, every message fits its channel (one unaccented GSM-7 SMS; a Zalo text),
bad flows are refused with the reason, and the text helpers behave."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from flows.checks import WORST_CASE
from flows.definition import ZALO_LIMIT, Flow, FlowError, Messages, QuestionKind, Text, texts_of, variant
from flows.loading import FLOWS_DIR, check_source, default_flow, load_flow
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
from storage.models import Channel
from tests.flows.factories import LONGEST_AGENCY, LONGEST_AGENCY_SMS, LONGEST_CASE_ID

REALISTIC = {"agency": LONGEST_AGENCY, "case_id": LONGEST_CASE_ID}
SHIPPED = ["sipas-sms", "sipas-zalo"]


def _raw(name: str = "sipas-sms") -> dict[str, Any]:
    data = yaml.safe_load((FLOWS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _render(flow: Flow, text: Text, channel: Channel, lang: str, values: dict[str, str], at: str) -> str:
    question = flow.question(at)
    number = flow.position(at) + 1
    return flow.render(
        text,
        channel=channel,
        language=lang,
        values=values,
        question=question,
        number=number,
        total=(len(flow.questions), len(flow.questions)),
    )


def _every_message(flow: Flow, channel: Channel, values: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(language, what, template, rendered text) for every message a citizen can receive."""
    out: list[tuple[str, str, str, str]] = []
    for lang in flow.languages:
        for question in flow.questions:
            texts: dict[str, Text] = {f"question {question.key}": question.text}
            if question.reprompt is not None:
                texts[f"reprompt of {question.key}"] = question.reprompt
            texts |= {
                f"{name} at {question.key}": getattr(flow.messages, name) for name in Messages.model_fields
            }
            for what, text in texts.items():
                template = variant(text, channel, lang)
                out.append((lang, what, template, _render(flow, text, channel, lang, values, question.key)))
    return out


def test_default_flows_load() -> None:
    sms = default_flow("sipas-sms")
    assert (sms.id, sms.version, sms.channel, sms.runs_on) == (
        "sipas-sms",
        None,
        Channel.SMS,
        (Channel.SMS, Channel.ZALO),
    )
    assert sms.languages == ("vi", "en")
    assert [(q.key, q.kind, q.criterion, q.when is not None) for q in sms.questions] == [
        ("overall", QuestionKind.SCALE5, "overall", False),
        ("cong_chuc", QuestionKind.SCALE5, "cong_chuc", False),
        ("ket_qua", QuestionKind.SCALE5, "ket_qua", False),
        ("worst_element", QuestionKind.CHOICE, None, True),
        ("comment", QuestionKind.TEXT, None, True),
    ]
    zalo = default_flow("sipas-zalo")
    assert (zalo.channel, zalo.runs_on) == (Channel.ZALO, (Channel.ZALO, Channel.SMS))
    assert [(q.key, q.kind, q.criterion) for q in zalo.questions] == [
        ("overall", QuestionKind.SCALE5, "overall"),
        ("cong_chuc", QuestionKind.SCALE5, "cong_chuc"),
        ("ket_qua", QuestionKind.SCALE5, "ket_qua"),
        ("worst_element", QuestionKind.CHOICE, None),
        ("comment", QuestionKind.TEXT, None),
        ("nhung_nhieu", QuestionKind.YESNO, "integrity.nhung_nhieu"),
    ]
    # "1 Khong, 2 Co" as on the official form; the value recorded is still yes = 1 (contract.md).
    assert zalo.question("nhung_nhieu").yes_digit == 2
    assert zalo.question("nhung_nhieu").yes_is_good is False
    assert sms.language_for("fr") == "vi"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_sms_fits_unshortened_with_the_longest_realistic_agency_and_case(name: str) -> None:
    flow = default_flow(name)
    for lang, what, template, text in _every_message(flow, Channel.SMS, REALISTIC):
        assert is_gsm7(text), (lang, what, text)
        assert is_unaccented(text), (lang, what, text)
        assert gsm7_length(text) <= SMS_LIMIT, (lang, what, len(text), text)
        fields = template_fields(template)
        if "agency" in fields:
            assert LONGEST_AGENCY_SMS in text, (lang, what, text)  # not shortened
        if "case_id" in fields:
            assert LONGEST_CASE_ID in text, (lang, what, text)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_sms_fits_with_impossible_lengths_by_shortening_the_agency(name: str) -> None:
    flow = default_flow(name)
    worst = {"agency": "Ủy ban nhân dân phường Thanh Xuân " * 8, "case_id": "H" * 64}
    for lang, what, _template, text in _every_message(flow, Channel.SMS, worst):
        assert gsm7_length(text) <= SMS_LIMIT, (lang, what, text)
        assert is_unaccented(text), (lang, what, text)
    opening = _render(flow, flow.messages.opening, Channel.SMS, "vi", worst, "overall")
    assert opening.startswith("UBND phuong")
    assert "H" * 64 in opening  # the case number is kept whole while the agency can give way


def test_zalo_texts_keep_diacritics_and_the_agency_name_whole() -> None:
    flow = default_flow("sipas-zalo")
    for lang, what, _template, text in _every_message(flow, Channel.ZALO, REALISTIC):
        assert len(text) <= ZALO_LIMIT, (lang, what)
        if lang == "vi":
            assert not is_unaccented(text), (what, text)  # Vietnamese with its diacritics
    thanks = _render(flow, flow.messages.thanks, Channel.ZALO, "vi", REALISTIC, "overall")
    assert thanks == (
        "Cảm ơn Ông/Bà đã dành thời gian trả lời khảo sát. Ý kiến của Ông/Bà giúp "
        f"{LONGEST_AGENCY} phục vụ người dân tốt hơn."
    )


def test_scale_labels_are_the_official_ones() -> None:
    flow = default_flow("sipas-sms")
    q1 = _render(flow, flow.first.text, Channel.SMS, "vi", REALISTIC, "overall")
    assert q1.endswith("1 Rat khong hai long, 2 Khong hai long, 3 Binh thuong, 4 Hai long, 5 Rat hai long")
    assert q1.startswith("Cau 1/5: ")
    zalo = default_flow("sipas-zalo")
    q1 = _render(zalo, zalo.first.text, Channel.ZALO, "vi", REALISTIC, "overall")
    assert q1.endswith("1 Rất không hài lòng, 2 Không hài lòng, 3 Bình thường, 4 Hài lòng, 5 Rất hài lòng")
    worst = _render(zalo, zalo.question("worst_element").text, Channel.ZALO, "vi", REALISTIC, "worst_element")
    assert worst.endswith(
        "1 Tiếp cận dịch vụ, 2 Thủ tục hành chính, 3 Công chức giải quyết công việc, 4 Kết quả, "
        "5 Tiếp nhận, xử lý góp ý, phản ánh"
    )


def test_every_text_of_the_shipped_flows_is_found_by_the_checks() -> None:
    flow = default_flow("sipas-zalo")
    paths = {path for path, _text, _question in texts_of(flow)}
    assert ("messages", "opening") in paths
    assert ("questions", 3, "options", 4) in paths
    assert ("questions", 4, "reprompt") in paths
    assert ("scales", "yesno") in paths


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: d["messages"]["thanks"].update(vi="Cảm ơn Ông/Bà"), "unaccented"),
        (lambda d: d["messages"]["thanks"].update(vi="Cam on " + "x" * 160), "too long"),
        (lambda d: d["messages"]["help"].update(vi="Goi {phone}"), "unknown placeholder"),
        (lambda d: d["messages"]["help"].update(vi="Ho so {case_id.__class__}"), "unknown placeholder"),
        (lambda d: d["messages"]["help"].update(vi="Ho so {case_id!r}"), "must be plain"),
        (lambda d: d["messages"]["help"].pop("en"), "missing translation: no en text"),
        (lambda d: d["questions"][1].update(criterion="lich_su"), "unknown criterion"),
        (lambda d: d["questions"][1].pop("criterion"), "needs a criterion"),
        (lambda d: d["questions"][3].update(criterion="overall"), "not scored"),
        (lambda d: d["questions"][2].update(key="overall"), "used twice"),
        (lambda d: d.update(default_language="en", languages=["vi"]), "default_language"),
        (lambda d: d["questions"][0].update(kind="stars"), "kind"),
        (lambda d: d["messages"]["opening"].update(vi="Ho so {case_id} `TC`"), "GSM-7"),
        (lambda d: d.pop("scales"), "scales.scale5 (its answer legend) is missing"),
        (lambda d: d.update(surprise=1), "unknown field"),
        (lambda d: d["questions"][3].pop("options"), "needs options"),
        (lambda d: d["questions"][3]["options"].append({"vi": "6", "en": "6"}), "at most 5"),
        (lambda d: d["questions"][4].update(optional="maybe"), "boolean"),
        (lambda d: d["questions"][0].update(optional=True), "only text questions can be optional"),
        (lambda d: d["questions"][2].update(next=[{"goto": "nowhere"}]), "goto unknown question"),
        (lambda d: d["questions"][2].update(next=[{"goto": "end"}, {"goto": "overall"}]), "never used"),
        (lambda d: d["questions"][3].update(when={"question": "comment"}), "not asked before"),
        (lambda d: d["questions"][3].update(when={"question": "overall", "min": 4, "max": 2}), "never hold"),
        (lambda d: d.update(channels=["zalo"]), "must be in channels"),
        (lambda d: d["messages"]["thanks"].update(fr="Merci"), "unknown language"),
        (
            lambda d: d["messages"].update(thanks={"sms": {"vi": "Cam on", "en": "Thanks"}, "vi": "x"}),
            "not both",
        ),
        (
            lambda d: d["messages"].update(thanks={"sms": {"vi": "Cam on", "en": "Thanks"}}),
            "missing the zalo text",
        ),
    ],
)
def test_bad_flows_are_refused_with_the_reason(tmp_path: Path, change: Any, error: str) -> None:
    data = copy.deepcopy(_raw())
    change(data)
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(FlowError, match=error.replace("(", r"\(").replace(")", r"\)")) as raised:
        load_flow(path)
    assert str(path) in str(raised.value)


def test_zalo_texts_have_a_length_limit() -> None:
    data = _raw("sipas-zalo")
    data["messages"]["thanks"]["zalo"]["vi"] = "Cảm ơn " + "rất nhiều " * 200
    report = check_source(yaml.safe_dump(data, allow_unicode=True), "flow.yaml")
    assert [issue.where for issue in report.issues] == ["messages.thanks.zalo.vi"]
    assert f"limit {ZALO_LIMIT}" in report.issues[0].message


def test_gsm7_brackets_count_double_and_are_accepted_when_ascii(tmp_path: Path) -> None:
    data = copy.deepcopy(_raw())
    data["messages"]["opt_out"]["vi"] = "Da ghi nhan [TC]."
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    flow = load_flow(path)
    text = _render(flow, flow.messages.opt_out, Channel.SMS, "vi", REALISTIC, "overall")
    assert gsm7_length(text) == len(text) + 2


def test_worst_case_values_are_the_largest_the_data_allows() -> None:
    assert len(WORST_CASE["agency"]) == 255  # Agency.name
    assert len(WORST_CASE["case_id"]) == 64  # case_id by contract


def test_unreadable_and_missing_flows(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed", encoding="utf-8")
    with pytest.raises(FlowError, match="not valid YAML"):
        load_flow(bad)
    bad.write_text("- a list", encoding="utf-8")
    with pytest.raises(FlowError, match="mapping"):
        load_flow(bad)
    bad.write_bytes(b"id: \xff\xfe")
    with pytest.raises(FlowError, match="not UTF-8"):
        load_flow(bad)
    with pytest.raises(FlowError, match="cannot read"):
        load_flow(tmp_path / "absent.yaml")
    with pytest.raises(FlowError, match="no shipped flow"):
        default_flow("sipas-nothing")
    with pytest.raises(FlowError, match="no shipped flow"):
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
    for name in SHIPPED:
        flow = default_flow(name)
        for lang in flow.languages:
            values = {"agency": agency, "case_id": case_id}
            text = _render(flow, flow.messages.opening, Channel.SMS, lang, values, "overall")
            assert is_gsm7(text)
            assert is_unaccented(text)
            assert gsm7_length(text) <= SMS_LIMIT
