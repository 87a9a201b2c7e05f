"""Models, repositories and migrations. Knows nothing of flows, bot or workers."""
