"""The flow checker's problems in Vietnamese, for the flow editor page in its default language.

flows.checks, flows.loading and flows.templates word their problems in English for the `sipas
flows` commands and the English page. The editor shows them in the page's language: each English
wording is matched here and given its Vietnamese wording, with the names, codes and texts it
quotes kept as they are. A part that is itself a problem (the reason a text is too long, the path
it was found on) is translated in turn. A wording not listed stays English rather than be lost;
tests/web/test_flow_messages.py breaks flows in every way the checker knows and finds none left.
"""

from __future__ import annotations

import re

__all__ = ["in_language"]

_Q = r"(?P<q>'[^']*')"  # a quoted key or code, as the checker quotes them (repr)

# (English wording, Vietnamese wording): \g<name> repeats a quoted part; a group whose name ends
# in "_msg" is a problem of its own, translated before it is put back.
_WORDINGS: list[tuple[str, str]] = [
    # The path a problem was found on, after the problem (first: it wraps the others).
    (
        r"(?P<problem_msg>.+) \(at question (?P<q>'[^']*'), on the path (?P<steps>.+?)(?: with (?P<a>.+))?\)",
        r"\g<problem_msg> (tại câu hỏi \g<q>, trên đường đi \g<steps>\g<a>)",
    ),
    (
        r"(?P<problem_msg>.+) \(at the end, on the path (?P<steps>.+?)(?: with (?P<a>.+))?\)",
        r"\g<problem_msg> (ở cuối, trên đường đi \g<steps>\g<a>)",
    ),
    (r"a language is listed twice", r"một ngôn ngữ được liệt kê hai lần"),
    (r"(?P<v>.+) is not in languages", r"\g<v> không có trong languages"),
    (r"a channel is listed twice", r"một kênh được liệt kê hai lần"),
    (r"the flow's channel (?P<v>.+) must be in channels", r"kênh \g<v> của kịch bản phải có trong channels"),
    (r"(?P<v>'[^']*') is reserved for `goto: (?P<e>\w+)`", r"\g<v> dành riêng cho `goto: \g<e>`"),
    (rf"question key {_Q} is used twice", r"khóa câu hỏi \g<q> bị dùng hai lần"),
    (
        rf"criterion (?P<c>'[^']*') is already measured by question {_Q} \(one citizen would count twice\)",
        r"tiêu chí \g<c> đã được đo bằng câu hỏi \g<q> (một người dân sẽ bị tính hai lần)",
    ),
    (
        rf"question {_Q}: a scale5 question needs a criterion",
        r"câu hỏi \g<q>: câu hỏi thang 5 mức (scale5) cần một tiêu chí (criterion)",
    ),
    (
        r"unknown criterion (?P<c>'[^']*'): a scale5 question measures overall, an element "
        r"\(tiep_can, thu_tuc, cong_chuc, ket_qua, phan_anh\) or <element>\.<criterion>",
        r"không có tiêu chí \g<c>: câu hỏi scale5 đo overall, một yếu tố "
        r"(tiep_can, thu_tuc, cong_chuc, ket_qua, phan_anh) hoặc <yếu_tố>.<tiêu_chí>",
    ),
    (
        r"unknown criterion (?P<c>'[^']*'): a yes/no question counts only as an integrity rate "
        r"\(integrity\.<name>, yes = 1\) or is not scored \(leave criterion out\)",
        r"không có tiêu chí \g<c>: câu hỏi có/không chỉ được tính như một tỷ lệ liêm chính "
        r"(integrity.<tên>, có = 1) hoặc không tính điểm (bỏ criterion)",
    ),
    (
        r"a (?P<kind>\w+) question is not scored: remove criterion (?P<c>'[^']*')",
        r"câu hỏi loại \g<kind> không tính điểm: bỏ tiêu chí \g<c>",
    ),
    (
        rf"question {_Q}: a choice question needs options \(1 to 5\)",
        r"câu hỏi \g<q>: câu hỏi lựa chọn (choice) cần các phương án (options, từ 1 đến 5)",
    ),
    (
        r"only choice questions have options \(this one is (?P<kind>\w+)\)",
        r"chỉ câu hỏi lựa chọn (choice) mới có options (câu này là \g<kind>)",
    ),
    (
        r"only text questions can be optional",
        r"chỉ câu hỏi trả lời bằng chữ (text) mới được để không bắt buộc (optional)",
    ),
    (r"(?P<f>yes_digit|yes_is_good) is for yesno questions", r"\g<f> chỉ dùng cho câu hỏi có/không (yesno)"),
    (r"a text reply answers one question", r"một tin trả lời bằng chữ chỉ trả lời một câu hỏi"),
    (rf"condition on unknown question {_Q}", r"điều kiện theo câu hỏi không có: \g<q>"),
    (
        rf"condition on {_Q}, which is not asked before this point",
        r"điều kiện theo \g<q>, câu chưa được hỏi trước chỗ này",
    ),
    (
        rf"condition on text question {_Q} \(no number\)",
        r"điều kiện theo câu hỏi trả lời bằng chữ \g<q> (không có số)",
    ),
    (
        rf"(?P<name>\w+) (?P<bound>\S+) is outside the answers of {_Q} \((?P<r>1\.\.\d+)\)",
        r"\g<name> \g<bound> nằm ngoài các câu trả lời của \g<q> (\g<r>)",
    ),
    (
        rf"(?P<v>\S+) is not an answer of {_Q} \((?P<r>1\.\.\d+)\)",
        r"\g<v> không phải là câu trả lời của \g<q> (\g<r>)",
    ),
    (rf"the condition on {_Q} can never hold", r"điều kiện theo \g<q> không bao giờ đúng"),
    (
        r"a rule without `when` always applies: the rules after it are never used",
        r"quy tắc không có `when` luôn được áp dụng: các quy tắc sau nó không bao giờ được dùng",
    ),
    (rf"goto unknown question {_Q} \(or `(?P<e>\w+)`\)", r"goto tới câu hỏi không có \g<q> (hoặc `\g<e>`)"),
    (
        rf"question {_Q} is never asked \(unreachable: no path from the first question leads to it\)",
        r"câu hỏi \g<q> không bao giờ được hỏi (không có đường nào từ câu hỏi đầu tiên dẫn tới nó)",
    ),
    (
        r"loop without exit: (?P<loop>.+) \(no answer leads out of it to another question or `end`\)",
        r"vòng lặp không có lối ra: \g<loop> (không câu trả lời nào dẫn ra câu hỏi khác hoặc `end`)",
    ),
    (
        r"legends and options cannot use placeholders",
        r"chú giải (legends) và phương án (options) không được dùng chỗ điền",
    ),
    (
        rf"\{{scale\}} used for question {_Q}, but scales\.(?P<kind>\w+) \(its answer legend\) is missing",
        r"{scale} dùng cho câu hỏi \g<q>, nhưng thiếu scales.\g<kind> (chú giải câu trả lời của nó)",
    ),
    (r"SMS text must be unaccented \(no diacritics\): (?P<t>.+)", r"tin SMS phải viết không dấu: \g<t>"),
    (r"SMS text has characters outside GSM-7: (?P<t>.+)", r"tin SMS có ký tự ngoài bảng GSM-7: \g<t>"),
    (
        r"a text is either per language \(vi, en\) or per channel \(sms, zalo\), not both",
        r"một văn bản hoặc chia theo ngôn ngữ (vi, en) hoặc chia theo kênh (sms, zalo), không được cả hai",
    ),
    (
        r"a (?P<k>\w+) text, but the flow does not run on (?P<k2>\w+) \(channels\)",
        r"có văn bản \g<k>, nhưng kịch bản không chạy trên \g<k2> (channels)",
    ),
    (
        r"missing the (?P<c>\w+) text \(the flow runs on (?P<c2>\w+)\)",
        r"thiếu văn bản \g<c> (kịch bản chạy trên \g<c2>)",
    ),
    (r"must be texts per language \(vi, en\)", r"phải là các văn bản theo ngôn ngữ (vi, en)"),
    (
        r"unknown language or channel (?P<k>'[^']*') \(languages: vi, en\)",
        r"không có ngôn ngữ hay kênh \g<k> (ngôn ngữ: vi, en)",
    ),
    (
        r"a (?P<k>\w+) text, but (?P<k2>\w+) is not in the flow's languages",
        r"có văn bản \g<k>, nhưng \g<k2> không có trong languages của kịch bản",
    ),
    (r"missing translation: no (?P<l>\w+) text", r"thiếu bản dịch: không có văn bản \g<l>"),
    (r"must be a text", r"phải là một văn bản"),
    (
        r"more than (?P<n>\d+) points on the flow's paths: simplify the branching",
        r"hơn \g<n> điểm trên các đường đi của kịch bản: hãy rẽ nhánh đơn giản hơn",
    ),
    (
        r"SMS too long even with the agency name shortened "
        r"\(limit (?P<n>\d+) GSM-7 characters\): (?P<e_msg>.+)",
        r"tin SMS quá dài kể cả khi rút gọn tên đơn vị (tối đa \g<n> ký tự GSM-7): \g<e_msg>",
    ),
    (
        r"message is (?P<n>\d+) GSM-7 characters, limit (?P<l>\d+): (?P<t>.+)",
        r"tin dài \g<n> ký tự GSM-7, tối đa \g<l>: \g<t>",
    ),
    (r"Zalo text of (?P<n>\d+) characters, limit (?P<l>\d+)", r"văn bản Zalo dài \g<n> ký tự, tối đa \g<l>"),
    (r"malformed template: (?P<e>.+)", r"mẫu tin sai cú pháp: \g<e>"),
    (
        r"unknown placeholder (?P<p>\{\w*\}) \(known: (?P<k>.+)\)",
        r"không có chỗ điền \g<p> (các chỗ điền có: \g<k>)",
    ),
    (
        r"placeholder (?P<p>\{\w*\}) must be plain, without ':' or '!'",
        r"chỗ điền \g<p> phải viết trơn, không có ':' hay '!'",
    ),
    (r"unknown placeholder (?P<p>\{\w*\})", r"không có chỗ điền \g<p>"),
    (r"no value for placeholder (?P<p>\{\w*\})", r"không có giá trị cho chỗ điền \g<p>"),
    (r"not valid YAML: (?P<e>.+)", r"không phải YAML hợp lệ: \g<e>"),
    (
        r"a flow file must be a YAML mapping \(id, name, channel, \.\.\.\)",
        r"tệp kịch bản phải là một bảng khóa – giá trị YAML (id, name, channel, ...)",
    ),
    (r"required field is missing", r"thiếu trường bắt buộc"),
    (
        r"unknown field \(see docs/flows\.md for the fields of a flow\)",
        r"trường không có trong kịch bản (các trường: xem docs/flows.md)",
    ),
    (r"must be one of (?P<choices>.+)", r"phải là một trong \g<choices>"),
    (r"must be (?P<choices>'.+)", r"phải là \g<choices>"),
]
_COMPILED = [(re.compile(english), vietnamese) for english, vietnamese in _WORDINGS]


def in_language(message: str, lang: str) -> str:
    """`message` (the checker's English) in the page's language: Vietnamese unless "en"."""
    if lang == "en":
        return message
    for pattern, vietnamese in _COMPILED:
        match = pattern.fullmatch(message)
        if match is None:
            continue
        parts = {
            name: ("" if value is None else in_language(value, lang) if name.endswith("_msg") else value)
            for name, value in match.groupdict().items()
        }
        if parts.get("a"):
            parts["a"] = f" với {parts['a']}"
        if "choices" in parts:
            parts["choices"] = parts["choices"].replace("' or '", "' hoặc '")
        return _filled(vietnamese, parts)
    return message


def _filled(wording: str, parts: dict[str, str]) -> str:
    return re.sub(r"\\g<(\w+)>", lambda ref: parts[ref.group(1)], wording)
