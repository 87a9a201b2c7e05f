"""The migrations build exactly the schema the models describe, on both backends, and go back down."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage.db import make_engine
from storage.migrate import alembic_config, upgrade
from storage.models import Base


def test_migrated_schema_matches_the_models(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_downgrade_to_nothing_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            tables = set(engine.dialect.get_table_names(connection))
    finally:
        engine.dispose()
    assert tables == {"alembic_version"}
    upgrade(url)
