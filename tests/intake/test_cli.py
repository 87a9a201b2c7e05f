"""`sipas agencies import|list`, `sipas staff import|list|remove` and `sipas cases import` on a
real database."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import PROJECT_ROOT, get_settings
from storage.crypto import PhoneVault
from storage.models import Agency, AgencyLevel, AuditEntry, Case, StaffPhone
from tests.conftest import SECRET_KEY
from tests.intake.conftest import counts
from workers.cli import cli

SHIPPED_AGENCIES = PROJECT_ROOT / "tests" / "fixtures" / "agencies" / "ha-noi-thanh-xuan-2023.yaml"
CURRENT_REGISTRY = PROJECT_ROOT / "config" / "agencies" / "ha-noi.yaml"
SAMPLE_CASES = PROJECT_ROOT / "config" / "samples" / "cases.csv"
Invoke = Callable[..., Result]
WARDS = [
    "Hạ Đình", "Khương Đình", "Khương Mai", "Khương Trung", "Kim Giang", "Nhân Chính",
    "Phương Liệt", "Thanh Xuân Bắc", "Thanh Xuân Nam", "Thanh Xuân Trung", "Thượng Đình",
]  # fmt: skip


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, db_url: str, redis_url: str) -> Iterator[Invoke]:
    """Invoke the real `sipas` group with the test database in the environment."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SIPAS_SECRET_KEY", SECRET_KEY)
    get_settings.cache_clear()

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def agencies(sessions: sessionmaker[Session]) -> dict[str, tuple[str, str, str | None, float | None]]:
    """code -> (name, level, parent code, sampling probability)."""
    with sessions() as session:
        rows = session.scalars(select(Agency)).all()
        code = {a.id: a.code for a in rows}
        return {
            a.code: (
                a.name,
                a.level.value,
                code.get(a.parent_id) if a.parent_id else None,
                a.sampling_probability,
            )
            for a in rows
        }


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_registry_imports_as_a_tree(run: Invoke, sessions: sessionmaker[Session]) -> None:
    result = run("agencies", "import", str(SHIPPED_AGENCIES))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("13 created, 0 updated, 0 unchanged, 0 errors")
    stored = agencies(sessions)
    assert stored["HN"] == ("UBND thành phố Hà Nội", "province", None, None)
    assert stored["HN-TX"] == ("UBND quận Thanh Xuân", "district", "HN", None)
    wards = {code: row for code, row in stored.items() if row[1] == "commune"}
    assert sorted(row[0] for row in wards.values()) == sorted(f"UBND phường {w}" for w in WARDS)
    assert {row[2] for row in wards.values()} == {"HN-TX"}
    again = run("agencies", "import", str(SHIPPED_AGENCIES))
    assert again.exit_code == 0
    assert again.stdout.strip().endswith("0 created, 0 updated, 13 unchanged, 0 errors")
    assert len(agencies(sessions)) == 13


def test_list_shows_the_tree(run: Invoke) -> None:
    assert run("agencies", "list").stdout.startswith("no agencies yet")
    run("agencies", "import", str(SHIPPED_AGENCIES))
    lines = run("agencies", "list").stdout.splitlines()
    assert lines[0] == "HN  UBND thành phố Hà Nội (province)"
    assert lines[1] == "└── HN-TX  UBND quận Thanh Xuân (district)"
    assert lines[2] == "    ├── HN-TX-HD  UBND phường Hạ Đình (commune)"
    assert lines[-1].startswith("    └── HN-TX-")
    assert len(lines) == 13


def test_children_may_come_before_parents_and_updates_are_applied(
    run: Invoke, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    first = write(
        tmp_path,
        "a.csv",
        "code,name,parent_code,level,sampling_probability\n"
        "HN-TX-HD,Phường Hạ Đình,HN-TX,commune,0.5\n"
        "HN-TX,Quận Thanh Xuân,HN,district,\n"
        "HN,Hà Nội,,province,\n",
    )
    result = run("agencies", "import", str(first))
    assert result.exit_code == 0, result.output
    assert "3 created" in result.stdout
    assert agencies(sessions)["HN-TX-HD"] == ("Phường Hạ Đình", "commune", "HN-TX", 0.5)
    # a later file renames a ward, moves it under the province and omits sampling: p is kept
    second = write(
        tmp_path, "b.csv", "code,name,parent_code,level\nHN-TX-HD,UBND phường Hạ Đình,HN,commune\n"
    )
    result = run("agencies", "import", str(second))
    assert result.stdout.strip().endswith("0 created, 1 updated, 0 unchanged, 0 errors")
    assert agencies(sessions)["HN-TX-HD"] == ("UBND phường Hạ Đình", "commune", "HN", 0.5)


def test_parent_may_already_be_in_the_registry(
    run: Invoke, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    run("agencies", "import", str(write(tmp_path, "p.csv", "code,name,level\nHN,Hà Nội,province\n")))
    child = write(
        tmp_path, "c.yaml", "- {code: HN-SNV, name: Sở Nội vụ, parent_code: HN, level: department}\n"
    )
    result = run("agencies", "import", str(child))
    assert result.exit_code == 0, result.output
    assert agencies(sessions)["HN-SNV"][2] == "HN"


def test_cycle_is_reported_with_lines_and_nothing_is_stored(
    run: Invoke, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "cycle.csv",
        "code,name,parent_code,level\nHN,Hà Nội,,province\nA,Đơn vị A,B,district\nB,Đơn vị B,A,commune\n",
    )
    result = run("agencies", "import", str(path))
    assert result.exit_code == 1
    assert "line 3: parent codes form a cycle: A → B → A" in result.stderr
    assert "line 4: parent codes form a cycle: B → A → B" in result.stderr
    assert "nothing imported" in result.stdout
    assert agencies(sessions) == {}


def test_an_agency_cannot_be_its_own_parent(run: Invoke, tmp_path: Path) -> None:
    result = run(
        "agencies",
        "import",
        str(write(tmp_path, "self.csv", "code,name,parent_code,level\nA,A,A,province\n")),
    )
    assert result.exit_code == 1
    assert "line 2: parent codes form a cycle: A → A" in result.stderr


def test_a_cycle_through_the_registry_is_found(
    run: Invoke, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    run(
        "agencies",
        "import",
        str(write(tmp_path, "a.csv", "code,name,parent_code,level\nA,A,,province\nB,B,A,district\n")),
    )
    result = run(
        "agencies", "import", str(write(tmp_path, "b.csv", "code,name,parent_code,level\nA,A,B,province\n"))
    )
    assert result.exit_code == 1
    assert "line 2: parent codes form a cycle: A → B → A" in result.stderr
    assert agencies(sessions)["A"][2] is None


def test_unknown_parent_in_yaml_names_its_line(
    run: Invoke, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "unknown.yaml",
        "# registry\nagencies:\n  - code: HN\n    name: Hà Nội\n    level: province\n"
        "  - code: HN-XX\n    name: Không rõ\n    parent_code: ZZ\n    level: district\n",
    )
    result = run("agencies", "import", str(path))
    assert result.exit_code == 1
    assert "line 6: parent_code 'ZZ' of 'HN-XX' is neither in the file nor in the registry" in result.stderr
    assert agencies(sessions) == {}


def test_every_bad_row_is_reported(run: Invoke, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.csv",
        "code,name,parent_code,level,sampling_probability\n"
        "HN,Hà Nội,,province,\n"
        "HN,Hà Nội lần hai,,province,\n"
        "Q1,,HN,quận,\n"
        "Q2,Quận 2,HN,district,1.5\n",
    )
    result = run("agencies", "import", str(path))
    assert result.exit_code == 1
    assert "line 3: code 'HN' already appears on line 2" in result.stderr
    assert "line 4: name is required" in result.stderr
    assert (
        "line 4: level must be one of province, department, district, commune (got 'quận')" in result.stderr
    )
    assert "line 5: sampling_probability must be a number from 0 to 1" in result.stderr
    assert "4 errors" in result.stdout
    assert agencies(sessions) == {}


def test_unreadable_registry_files(run: Invoke, tmp_path: Path) -> None:
    result = run("agencies", "import", str(write(tmp_path, "x.txt", "code\n")))
    assert result.exit_code != 0
    assert "use a .csv, .yaml or .yml file" in result.output
    result = run("agencies", "import", str(write(tmp_path, "x.yaml", "agencies: [unclosed\n")))
    assert result.exit_code != 0
    assert "not valid YAML" in result.output
    latin = tmp_path / "latin.csv"
    latin.write_bytes("code,name,level\nHN,H\xe0 N\xf4i,province\n".encode("latin-1"))
    result = run("agencies", "import", str(latin))
    assert result.exit_code != 0
    assert "not UTF-8" in result.output


def test_staff_import(
    run: Invoke, sessions: sessionmaker[Session], vault: PhoneVault, tmp_path: Path
) -> None:
    run("agencies", "import", str(SHIPPED_AGENCIES))
    bad = write(
        tmp_path,
        "bad.csv",
        "agency_code,phone\nHN-TX-HD,0912345678\nHN-XX,0912345678\nHN-TX-KM,024 3825 1234\n",
    )
    result = run("staff", "import", str(bad))
    assert result.exit_code == 1
    assert "line 3: agency_code 'HN-XX' is not in the registry" in result.stderr
    assert "line 4: phone:" in result.stderr
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(StaffPhone)) == 0
    good = write(tmp_path, "good.csv", "agency_code,phone\nHN-TX-HD,0912345678\nHN-TX-HD,+84 912 345 678\n")
    result = run("staff", "import", str(good))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("1 added, 1 already registered, 0 errors")
    with sessions() as session:
        row = session.scalars(select(StaffPhone)).one()
        assert row.phone_hash == vault.lookup_hash("+84912345678")
        assert row.phone_enc is not None
        assert vault.decrypt(row.phone_enc) == "+84912345678"


def test_staff_list_and_remove(
    run: Invoke, sessions: sessionmaker[Session], vault: PhoneVault, tmp_path: Path
) -> None:
    run("agencies", "import", str(SHIPPED_AGENCIES))
    with sessions() as session, session.begin():
        ward = session.scalars(select(Agency).where(Agency.code == "HN-TX-HD")).one()
        # Registered before numbers were kept encrypted: only the hash.
        session.add(StaffPhone(agency_id=ward.id, phone_hash=vault.lookup_hash("+84987000111")))
    run("staff", "import", str(write(tmp_path, "s.csv", "agency_code,phone\nHN-TX-HD,0912345678\n")))
    listed = run("staff", "list", "--agency", "HN-TX-HD")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[1] for line in lines] == ["(số cũ, chỉ có mã băm)", "091••••678"]
    assert "0912345678" not in listed.output
    assert run("staff", "remove", "--agency", "HN-TX-KM", "0912345678").exit_code == 1  # not theirs
    assert run("staff", "remove", "--agency", "HN-TX-HD").exit_code == 2  # PHONE or --id
    removed = run("staff", "remove", "--agency", "HN-TX-HD", "+84 912 345 678")
    assert removed.stdout.strip() == "removed 091••••678 from HN-TX-HD"
    old_id = lines[0].split("\t")[0]
    removed = run("staff", "remove", "--agency", "HN-TX-HD", "--id", old_id)
    assert removed.stdout.strip() == "removed (số cũ, chỉ có mã băm) from HN-TX-HD"
    with sessions() as session:
        assert session.scalars(select(StaffPhone)).all() == []
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "staff.remove").order_by(AuditEntry.id)
        ).all()
        assert [e.before for e in entries] == [{"phone": "091••••678"}, {"phone": "(số cũ, chỉ có mã băm)"}]
        assert all(e.actor.startswith("cli:") for e in entries)


def _recent(hours: int = 1) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def test_cases_import_csv(run: Invoke, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    run("agencies", "import", str(SHIPPED_AGENCIES))
    path = write(
        tmp_path,
        "cases.csv",
        "case_id,agency_code,procedure_code,phone,closed_at,due_at,apology_sent,language\n"
        f"A,HN-TX-HD,1.001612,0912345678,{_recent()},,false,vi\n"
        f"B,HN-TX-HD,1.001612,024 3825 1234,{_recent()},,,\n"
        f"C,HN-XX,1.001612,0987654321,{_recent()},,,\n"
        f"A,HN-TX-HD,1.001612,0912345678,{_recent()},,,\n"
        f"D,HN-TX-KM,1.001612,0987654321,{_recent(200)},{_recent(300)},TRUE,en\n",
    )
    result = run("cases", "import", str(path))
    assert result.exit_code == 1
    assert result.stdout.strip().endswith("5 cases: 1 scheduled, 1 not_sampled, 1 duplicate, 2 rejected")
    assert "line 3 (case B): rejected: phone:" in result.stderr
    assert "line 4 (case C): rejected: agency_code: is not in the agency registry" in result.stderr
    assert counts(sessions) == {"cases": 2, "surveys": 1, "timers": 1}
    with sessions() as session:
        late = session.scalars(select(Case).where(Case.case_id == "D")).one()
    assert (late.apology_sent, late.language, late.on_time.value if late.on_time else None) == (
        True,
        "en",
        "late",
    )


def test_cases_import_json_lines(run: Invoke, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    run("agencies", "import", str(SHIPPED_AGENCIES))
    good = {
        "case_id": "J1",
        "agency_code": "HN-TX-NC",
        "procedure_code": "1.004227",
        "phone": "0168 555 0123",
    }
    lines = [
        json.dumps({**good, "closed_at": _recent()}, ensure_ascii=False),
        "",
        '{"case_id": "J2", "agency_code": ',
        json.dumps(["not", "an", "object"]),
        json.dumps(
            {**good, "case_id": "J3", "phone": "0965000111", "closed_at": _recent(), "apology_sent": 1}
        ),
    ]
    path = write(tmp_path, "cases.jsonl", "\n".join(lines) + "\n")
    result = run("cases", "import", str(path))
    assert result.exit_code == 1
    assert "line 3: rejected: not valid JSON" in result.stderr
    assert "line 4: rejected: a line must hold one case object" in result.stderr
    assert result.stdout.strip().endswith("4 cases: 2 scheduled, 2 rejected")
    assert counts(sessions) == {"cases": 2, "surveys": 2, "timers": 2}


def test_cases_format_is_detected_by_content(
    run: Invoke, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    run("agencies", "import", str(SHIPPED_AGENCIES))
    case = {"case_id": "T1", "agency_code": "HN-TX", "procedure_code": "1.001612", "phone": "0912345678"}
    path = write(tmp_path, "export.txt", json.dumps({**case, "closed_at": _recent()}) + "\n")
    result = run("cases", "import", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("1 cases: 1 scheduled")


def test_sample_cases_file_imports_and_reimports_as_duplicates(
    run: Invoke, sessions: sessionmaker[Session]
) -> None:
    run("agencies", "import", str(CURRENT_REGISTRY))
    result = run("cases", "import", str(SAMPLE_CASES))
    assert result.exit_code == 0, result.output
    assert "rejected" not in result.output
    assert counts(sessions)["cases"] == 5
    again = run("cases", "import", str(SAMPLE_CASES))
    assert again.exit_code == 0
    assert again.stdout.strip().endswith("5 cases: 5 duplicate")


def test_cases_import_needs_the_secret_key(run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPAS_SECRET_KEY", "")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["cases", "import", str(SAMPLE_CASES)])
    assert result.exit_code != 0
    assert "SIPAS_SECRET_KEY" in str(result.exception)


def test_levels_match_the_contract() -> None:
    assert [level.value for level in AgencyLevel] == ["province", "department", "district", "commune"]
