"""SIPAS scores: daily counts from the database, formulas, roll-ups along the agency tree, reports.

counts.compute_days writes storage.models.DailyCount rows (nightly via tasks, or `sipas scores
compute`); report.build_report turns them into figures per unit and period (`sipas scores show`).
"""
