"""Supervisors' nightly digest: figures of their unit (content), a chart (chart), the e-mail and
Zalo texts (message), and sending with its archive and retries (send)."""
