"""The flow editor's problems follow the page's language: Vietnamese by default, English on request.

The shipped SMS flow is broken in every way below; each problem the checker reports must have its
Vietnamese wording (bot.web.flow_messages), with the names and codes it quotes kept.
"""

from __future__ import annotations

import pytest

from bot.web.flow_messages import in_language
from config.settings import PROJECT_ROOT
from flows.loading import check_source

SHIPPED = (PROJECT_ROOT / "config" / "flows" / "sipas-sms.yaml").read_text(encoding="utf-8")
LONG = " rat dai" * 30

BREAKAGES = {
    "unknown scale5 criterion": ("criterion: overall", "criterion: overal"),
    "a language twice": ("languages: [vi, en]", "languages: [vi, vi]"),
    "default language": ("default_language: vi", "default_language: fr"),
    "channels": ("channels: [sms, zalo]", "channels: [zalo, zalo]"),
    "key twice": ("key: cong_chuc", "key: overall"),
    "criterion twice": ("criterion: ket_qua", "criterion: cong_chuc"),
    "no criterion": ("    criterion: ket_qua\n", ""),
    "options on a scale": ("kind: choice", "kind: scale5"),
    "optional scale": (
        "kind: scale5\n    criterion: overall",
        "kind: scale5\n    optional: true\n    criterion: overall",
    ),
    "yes_digit": (
        "kind: scale5\n    criterion: overall",
        "kind: scale5\n    yes_digit: 1\n    criterion: overall",
    ),
    "unknown condition": ("when: {question: overall, max: 3}", "when: {question: nope, max: 3}"),
    "bound outside": ("when: {question: overall, max: 3}", "when: {question: overall, max: 9}"),
    "never holds": ("when: {question: overall, max: 3}", "when: {question: overall, min: 4, max: 3}"),
    "accented": ("Cam on Ong/Ba da tra loi", "Cảm ơn Ông/Bà đã trả lời"),
    "too long": (
        'Tu choi: tra loi TC"\n    en: "{agency} asks',
        f'Tu choi: tra loi TC{LONG}"\n    en: "{{agency}} asks',
    ),
    "placeholder": ("ho so {case_id}:", "ho so {case}:"),
    "translation": (
        '      en: "Q{number}/{total}: How satisfied with the staff (polite, clear guidance)? '
        'Reply: {scale}"\n',
        "",
    ),
    "unknown field": ("max_reprompts: 1", "max_reprompts: 1\ncolour: red"),
    "not YAML": ("id: sipas-sms", "id: [sipas-sms"),
    "required field": ("name: SIPAS - khao sat sau khi giai quyet ho so (SMS)\n", ""),
}


def _messages(source: str) -> list[str]:
    return [issue.message for issue in check_source(source, "sipas-sms").issues]


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_every_problem_has_its_vietnamese_wording(name: str) -> None:
    old, new = BREAKAGES[name]
    assert old in SHIPPED, name
    messages = _messages(SHIPPED.replace(old, new, 1))
    assert messages, name
    for message in messages:
        vietnamese = in_language(message, "vi")
        assert vietnamese != message, f"no Vietnamese wording for: {message}"
        assert in_language(message, "en") == message
        for quoted in ("'overal'", "'nope'", "'fr'", "{case}"):
            if quoted in message:
                assert quoted in vietnamese  # what the problem names is kept as it is


def test_choices_are_joined_in_vietnamese() -> None:
    wrong_kind = SHIPPED.replace("kind: scale5", "kind: scale7", 1)
    [message] = [m for m in _messages(wrong_kind) if m.startswith("must be one of")]
    assert in_language(message, "vi") == "phải là một trong 'scale5', 'choice', 'yesno' hoặc 'text'"


def test_a_mapping_and_nested_problems() -> None:
    [top] = _messages("- a\n- b\n")
    assert in_language(top, "vi").startswith("tệp kịch bản phải là")
    nested = (
        "SMS too long even with the agency name shortened (limit 160 GSM-7 characters): message is 200 "
        "GSM-7 characters, limit 160: 'x' (at question 'overall', on the path overall with overall=5)"
    )
    assert in_language(nested, "vi") == (
        "tin SMS quá dài kể cả khi rút gọn tên đơn vị (tối đa 160 ký tự GSM-7): tin dài 200 ký tự GSM-7, "
        "tối đa 160: 'x' (tại câu hỏi 'overall', trên đường đi overall với overall=5)"
    )
