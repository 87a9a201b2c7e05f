"""The nightly scoring job (tasks); the scoring domain itself lives in flows.scores."""
