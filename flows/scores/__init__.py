"""SIPAS scores, the read side shared by the web pages, the API and the CLI.

counts.compute_days writes storage.models.DailyCount rows (nightly via workers.scores.tasks, or
`sipas scores compute`); report.build_report turns them into figures per unit and period (`sipas
scores show`, the dashboard, `GET /api/v1/scores`). Pure of transport and queues, like the rest of
flows, so bot and workers can both read scores without importing each other.
"""
