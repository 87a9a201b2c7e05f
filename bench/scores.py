"""Scores at city scale on PostgreSQL: one night, a year view, the monthly workbook.

    python -m bench.scores --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        [--night-answers 300000] [--year-answers 10000000] [--units 150]

A fresh database is created on the server and dropped afterwards. Data are generated with
set-based INSERT ... SELECT generate_series, never row by row:

- night: the cases closed on one local day, each surveyed (p = 0.5), with a delivered message
  and three answers (overall, cong_chuc, ket_qua), so --night-answers / 3 surveys, spread over 20
  procedures; measured: the nightly work for that day (flows.scores.counts.compute_days, which
  also writes the per-procedure counts, + anomalies.detect_days);
- year: a year of daily counts for every unit, as the nightly job leaves them, adding up to
  --year-answers valid answers; measured: `scores show --period YEAR` for the whole city
  (build_report) and the province-month workbook (flows.scores.xlsx.build_workbook).
Figures are printed, never asserted (docs/benchmarks.md keeps them).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import text

from config.settings import Settings
from flows.scores.anomalies import detect_days
from flows.scores.counts import compute_days, roll_up
from flows.scores.periods import parse_period
from flows.scores.report import build_report
from flows.scores.xlsx import build_workbook, workbook_bytes
from storage.db import session_factory
from storage.migrate import upgrade
from tests.support.services import postgres_database

NIGHT = date(2026, 1, 15)
PROCEDURES = 20  # the night's cases are spread over this many procedures (per-procedure counts)
YEAR = 2025
_T = TypeVar("_T")


def timed(label: str, action: Callable[[], _T]) -> tuple[_T, float]:
    start = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - start
    print(f"  {label}: {seconds:.2f} s", flush=True)
    return result, seconds


def seed_units(url: str, units: int) -> None:
    with session_factory(url)() as s, s.begin():
        s.execute(
            text(
                "INSERT INTO agencies (code, name, level, created_at) "
                "VALUES ('HN', 'UBND thành phố Hà Nội', 'province', now())"
            )
        )
        s.execute(
            text(
                "INSERT INTO agencies (code, name, level, parent_id, created_at) "
                "SELECT 'HN-U' || lpad(g::text, 3, '0'), 'UBND phường ' || g, 'commune', "
                "(SELECT id FROM agencies WHERE code = 'HN'), now() FROM generate_series(1, :units) g"
            ),
            {"units": units},
        )


def seed_night(url: str, answers: int) -> None:
    """answers / 3 cases closed on NIGHT (local), all surveyed, delivered and answered."""
    surveys = answers // 3
    statements = [
        # closed between 01:00 and 13:00 UTC = 08:00-20:00 Hà Nội time on NIGHT
        """INSERT INTO cases (case_id, agency_id, procedure_code, phone_hash, closed_at, on_time,
               apology_sent, language, outcome, created_at)
           SELECT 'N' || g, u.id, '1.00' || (1600 + (g / 7) % :procedures), md5('phone' || g),
                  CAST(:day AS timestamptz) + (g % 43200) * interval '1 second',
                  (ARRAY['early', 'on_time', 'late'])[1 + g % 3], false, 'vi', 'scheduled', now()
           FROM generate_series(1, :n) g
           JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM agencies WHERE level = 'commune') u
             ON u.k = g % (SELECT count(*) FROM agencies WHERE level = 'commune')""",
        """INSERT INTO surveys (case_pk, agency_id, flow_name, flow_version, channel, language, status,
               inclusion_probability, phone_hash, state, state_version, created_at)
           SELECT id, agency_id, 'sipas-sms', 1, CASE WHEN id % 4 = 0 THEN 'zalo' ELSE 'sms' END, 'vi',
                  'completed', 0.5, phone_hash, '{}', 0, now()
           FROM cases WHERE case_id LIKE 'N%'""",
        """INSERT INTO outbound_messages (dedupe_key, survey_id, channel, recipient_enc, text, status,
               attempts, segments, created_at, next_attempt_at, sent_at, delivered_at)
           SELECT 'bench:' || s.id, s.id, s.channel, 'x', 'q', 'delivered', 1, 1, now(), now(),
                  c.closed_at + interval '1 minute', c.closed_at + interval '2 minutes'
           FROM surveys s JOIN cases c ON c.id = s.case_pk""",
        """INSERT INTO answers (survey_id, flow_name, flow_version, question_key, criterion_code, value,
               raw_text, answered_at)
           SELECT s.id, 'sipas-sms', 1, q.key, q.code, 1 + ((s.id * 7 + q.n * 3) % 5), 'x',
                  c.closed_at + (5 + q.n) * interval '1 minute'
           FROM surveys s JOIN cases c ON c.id = s.case_pk
           CROSS JOIN (VALUES ('q1', 'overall', 1), ('q2', 'cong_chuc', 2), ('q3', 'ket_qua', 3))
                AS q(key, code, n)""",
    ]
    with session_factory(url)() as s, s.begin():
        for statement in statements:
            s.execute(
                text(statement),
                {"n": surveys, "day": f"{NIGHT.isoformat()} 01:00+00", "procedures": PROCEDURES},
            )
        s.execute(text("ANALYZE"))


def seed_year(url: str, answers: int, units: int) -> None:
    """A year of daily counts: per unit and day `per` surveys with three valid answers each."""
    per = max(1, round(answers / (units * 365 * 3)))
    with session_factory(url)() as s, s.begin():
        s.execute(
            text(
                """INSERT INTO daily_counts (agency_id, day, channel, metric, n, k, w, wk, w2, computed_at)
                   SELECT a.id, d::date, ch.name, m.metric,
                          greatest(1, round(v.n * ch.share * m.n_share))::int,
                          round(v.n * ch.share * m.k_share)::int,
                          CASE WHEN m.criterion THEN 2.0 * round(v.n * ch.share) ELSE 0 END,
                          CASE WHEN m.criterion THEN 2.0 * round(v.n * ch.share * m.k_share) ELSE 0 END,
                          CASE WHEN m.criterion THEN 4.0 * round(v.n * ch.share) ELSE 0 END,
                          now()
                   FROM agencies a
                   CROSS JOIN generate_series(make_date(:year, 1, 1), make_date(:year, 12, 31),
                                              interval '1 day') d
                   CROSS JOIN LATERAL (
                       SELECT :per * (0.8 + ((a.id * 37 + extract(doy FROM d)::int) % 5) / 10.0) AS n
                   ) v
                   CROSS JOIN (VALUES ('all', 1.0), ('sms', 0.75), ('zalo', 0.25)) ch(name, share)
                   CROSS JOIN (VALUES ('surveys', 1.25, 0, false), ('surveys_sent', 1.2, 0, false),
                                      ('surveys_delivered', 1.15, 0, false),
                                      ('surveys_responded', 1.0, 0, false),
                                      ('surveys_completed', 0.9, 0, false),
                                      ('overall', 1.0, 0.86, true), ('cong_chuc', 1.0, 0.9, true),
                                      ('ket_qua', 1.0, 0.84, true)) m(metric, n_share, k_share, criterion)
                   WHERE a.level = 'commune'"""
            ),
            {"year": YEAR, "per": per},
        )
        s.execute(
            text(
                """INSERT INTO daily_counts (agency_id, day, channel, metric, n, k, w, wk, w2, computed_at)
                   SELECT dc.agency_id, dc.day, 'all', c.metric, greatest(1, round(dc.n * c.share))::int,
                          0, 0, 0, 0, now()
                   FROM daily_counts dc
                   CROSS JOIN (VALUES ('cases_closed', 2.5), ('cases_early', 0.5), ('cases_on_time', 1.7),
                                      ('cases_late', 0.3), ('cases_bad_766', 0.4)) c(metric, share)
                   WHERE dc.channel = 'all' AND dc.metric = 'surveys'
                         AND dc.day BETWEEN make_date(:year, 1, 1)
                         AND make_date(:year, 12, 31)"""
            ),
            {"year": YEAR},
        )
        roll_up(s, date(YEAR, 1, 1), date(YEAR, 12, 31))  # what the nightly job writes beside them
        s.execute(text("ANALYZE"))


def run_night(url: str, settings: Settings, answers: int) -> dict[str, Any]:
    print(f"night: {answers} answers on {NIGHT}", flush=True)
    _, seeded = timed("generate", lambda: seed_night(url, answers))

    def counts() -> int:
        with session_factory(url)() as s, s.begin():
            return compute_days(s, NIGHT, NIGHT, settings.tz).rows

    def flags() -> int:
        with session_factory(url)() as s, s.begin():
            return detect_days(s, NIGHT, NIGHT, settings)

    rows, counted = timed("the day's counts (compute_days)", counts)
    _, flagged = timed("the day's anomaly flags (detect_days)", flags)
    with session_factory(url)() as s:
        by_procedure = s.scalar(text("SELECT count(*) FROM daily_procedure_counts"))
    return {
        "seed_night_s": seeded,
        "night_counts_s": counted,
        "night_flags_s": flagged,
        "night_rows": rows,
        "night_procedure_rows": by_procedure,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL server URL")
    parser.add_argument("--night-answers", type=int, default=300_000)
    parser.add_argument("--year-answers", type=int, default=10_000_000)
    parser.add_argument("--units", type=int, default=126, help="wards and communes (Hà Nội has 126)")
    parser.add_argument("--skip-night", action="store_true", help="only the year view and the workbook")
    parser.add_argument("--skip-year", action="store_true", help="only the night")
    args = parser.parse_args()
    figures: dict[str, Any] = {"python": platform.python_version(), **vars(args)}
    figures.pop("database_url")
    with postgres_database(args.database_url) as url:
        upgrade(url)
        settings = Settings(_env_file=None, DATABASE_URL=url, SIPAS_SECRET_KEY="bench-secret-key-0123456789")  # type: ignore[call-arg]
        seed_units(url, args.units)
        if not args.skip_night:
            figures.update(run_night(url, settings, args.night_answers))

        if args.skip_year:
            print(json.dumps(figures, ensure_ascii=False))
            return
        print(f"year {YEAR}: daily counts for {args.year_answers} answers", flush=True)
        _, figures["seed_year_s"] = timed("generate", lambda: seed_year(url, args.year_answers, args.units))
        with session_factory(url)() as s:
            figures["daily_count_rows"] = s.scalar(text("SELECT count(*) FROM daily_counts"))
            figures["year_answers"] = s.scalar(
                text(
                    "SELECT sum(n) FROM daily_counts WHERE channel = 'all' "
                    "AND metric IN ('overall', 'cong_chuc', 'ket_qua') AND day < :night"
                ),
                {"night": NIGHT},
            )

        def year_view() -> int:
            with session_factory(url)() as s:
                return len(build_report(s, parse_period(str(YEAR)), settings=settings).rows)

        rows, figures["year_view_s"] = timed("scores show --period YEAR (every unit)", year_view)
        figures["year_view_units"] = rows

        def workbook() -> int:
            with session_factory(url)() as s:
                book = build_workbook(s, parse_period(f"{YEAR}-11"), "HN", settings=settings)
            return len(workbook_bytes(book))

        size, figures["xlsx_month_s"] = timed(f"export xlsx --period {YEAR}-11 --agency HN", workbook)
        figures["xlsx_bytes"] = size
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
