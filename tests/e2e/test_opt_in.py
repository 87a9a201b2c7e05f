"""Opt out, opt back in, get the next survey (issue 11), over a real Kannel gateway: the citizen's
SMS reach the service through Kannel's get-url, the web, worker and cron processes run as in
production, and every reply comes back through Kannel's sendsms to the citizen's phone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from flows.opt_in import TEXTS, OptInStep
from storage.models import AuditEntry, OptOut
from tests.e2e.conftest import Service

pytestmark = [pytest.mark.kannel, pytest.mark.slow]

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NUMBER, MSISDN = "+84912111222", "84912111222"


@pytest.fixture
def service_env() -> dict[str, str]:
    """No frequency cap: the case closed right after opting back in is surveyed at once (and a
    send lease longer than the send timeout, which the settings require)."""
    return {"SIPAS_FREQUENCY_CAP_DAYS": "0", "SIPAS_SEND_LEASE": "30"}


def _case(case_id: str) -> dict[str, object]:
    return {
        "case_id": case_id,
        "agency_code": "HN-TX-HD",
        "procedure_code": "1.001612",
        "procedure_name": "Đăng ký khai sinh",
        "phone": "0912 111 222",
        "closed_at": datetime.now(UTC).astimezone(HCM).isoformat(),
    }


def _outcome(service: Service, case_id: str) -> str:
    response = service.post_cases(_case(case_id))
    assert response.status_code == 202, response.text
    [result] = response.json()["results"]
    return str(result["outcome"])


def test_opt_out_opt_back_in_and_get_the_next_survey(
    service: Service, sessions: sessionmaker[Session]
) -> None:
    phone = service.kannel.phone
    assert _outcome(service, "HD-OPT-1") == "scheduled"
    assert "HD-OPT-1" in phone.wait_for_mt(to=NUMBER, timeout=30).text  # opening
    assert phone.wait_for_mt(to=NUMBER, timeout=30).text.startswith("Cau 1/3-5: ")

    phone.send_mo(MSISDN, "TC")
    refusal = phone.wait_for_mt(to=NUMBER, timeout=30).text
    assert refusal.startswith("Da ghi nhan Ong/Ba tu choi khao sat.")
    assert "tra loi DK" in refusal  # how to come back
    assert _outcome(service, "HD-OPT-2") == "opted_out"

    phone.send_mo(MSISDN, "DK")
    assert phone.wait_for_mt(to=NUMBER, timeout=30).text == TEXTS[OptInStep.CONFIRM_ASKED]["vi"]
    phone.send_mo(MSISDN, "DK")
    assert phone.wait_for_mt(to=NUMBER, timeout=30).text == TEXTS[OptInStep.REJOINED]["vi"]
    with sessions() as session:
        assert session.scalars(select(OptOut)).all() == []
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert [a for a in actions if a.startswith("opt_outs.")] == ["opt_outs.rejoin"]
    assert "intact" in service.sipas("audit", "verify").lower()

    assert _outcome(service, "HD-OPT-3") == "scheduled"
    assert "HD-OPT-3" in phone.wait_for_mt(to=NUMBER, timeout=30).text
    assert phone.wait_for_mt(to=NUMBER, timeout=30).text.startswith("Cau 1/3-5: ")
    phone.send_mo(MSISDN, "raats hafi lofng")  # Telex: "rất hài lòng"
    assert phone.wait_for_mt(to=NUMBER, timeout=30).text.startswith("Cau 2/3: ")

    # Staff lift a refusal too: the citizen refuses again, `sipas opt-outs remove` lifts it.
    phone.send_mo(MSISDN, "STOP")
    assert "DK" in phone.wait_for_mt(to=NUMBER, timeout=30).text
    assert "1 refusal(s)" in service.sipas("opt-outs", "list")
    assert "Refusal lifted" in service.sipas("opt-outs", "remove", "0912 111 222")
    assert "0 refusal(s)" in service.sipas("opt-outs", "list")
    assert phone.pending_mt() == []  # nothing else was sent to the citizen
