"""Reading the anomaly flags of a period (the detection is flows.scores.anomalies)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flows.scores.periods import Period
from storage.models import AnomalyFlag

FLAG_NAMES = {
    "fast_answers": "Trả lời quá nhanh sau khi gửi",
    "identical_answers": "Nhiều câu trả lời giống hệt nhau từ ít số điện thoại",
    "index_jump": "Chỉ số thay đổi vượt khoảng tin cậy",
    "repeat_phone": "Một số điện thoại trả lời nhiều hồ sơ trong tháng",
}


def load_flags(session: Session, period: Period) -> Mapping[int, Sequence[Mapping[str, Any]]]:
    """Per agency id, the flags of the period's days, oldest first: {"day", "kind", ...detail}."""
    flags: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
    for flag in session.scalars(
        select(AnomalyFlag)
        .where(AnomalyFlag.day >= period.start, AnomalyFlag.day <= period.end)
        .order_by(AnomalyFlag.day, AnomalyFlag.kind)
    ):
        flags[flag.agency_id].append({"day": flag.day.isoformat(), "kind": flag.kind, **flag.detail})
    return flags
