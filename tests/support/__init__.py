"""Test-only helpers: servers we start, simulators, fake phones. Never imported by the service."""
