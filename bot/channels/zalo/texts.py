"""What the Zalo bot says outside a survey's flow: greeting, start-code answers, messages it
cannot read. Correct Vietnamese with diacritics (Zalo carries Unicode); the survey's own questions
come from the Zalo flow (config/flows/).

Addressing follows the SMS flow ("Ông/Bà"), so a citizen who moves between channels hears one voice.
"""

from __future__ import annotations

__all__ = [
    "CODE_NOT_FOUND",
    "NOT_TEXT",
    "TOO_MANY_CODES",
    "UNSUPPORTED",
    "UNSUPPORTED_MOVED_TO_SMS",
    "WELCOME",
]

WELCOME = (
    "Xin chào Ông/Bà! Đây là kênh khảo sát mức độ hài lòng của người dân đối với dịch vụ hành chính "
    "công. Để bắt đầu, Ông/Bà vui lòng gửi mã khảo sát gồm 6 ký tự có trong tin nhắn Zalo đánh giá "
    "dịch vụ mà Ông/Bà đã nhận (ví dụ: KX7P2M)."
)
CODE_NOT_FOUND = (
    "Mã khảo sát {code} không đúng hoặc khảo sát đã kết thúc. Ông/Bà vui lòng kiểm tra lại mã gồm "
    "6 ký tự trong tin nhắn đã nhận."
)
TOO_MANY_CODES = (
    "Ông/Bà đã gửi sai mã khảo sát quá nhiều lần. Vui lòng thử lại sau 24 giờ, hoặc trả lời khảo sát "
    "qua tin nhắn SMS."
)
UNSUPPORTED = (
    "Xin lỗi, chúng tôi không đọc được tin nhắn vừa rồi (tài khoản Zalo của Ông/Bà có thể đang bật "
    "chế độ bảo vệ tin nhắn). Ông/Bà vui lòng trả lời khảo sát bằng tin nhắn SMS."
)
UNSUPPORTED_MOVED_TO_SMS = (
    "Xin lỗi, chúng tôi không đọc được tin nhắn Zalo của Ông/Bà (tài khoản có thể đang bật chế độ "
    "bảo vệ tin nhắn). Chúng tôi vừa gửi câu hỏi khảo sát qua SMS tới số điện thoại của Ông/Bà; "
    "Ông/Bà vui lòng trả lời bằng tin nhắn SMS."
)
NOT_TEXT = (
    "Xin lỗi, khảo sát chỉ nhận câu trả lời bằng chữ hoặc số. Ông/Bà vui lòng trả lời lại bằng chữ hoặc số."
)
