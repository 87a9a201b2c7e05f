"""Alembic environment: the URL comes from the caller (storage.migrate) or DATABASE_URL."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

from storage.db import make_engine
from storage.models import Base, UTCDateTime

config = context.config
url: str = config.get_main_option("sqlalchemy.url") or ""
if not url:
    from config.settings import get_settings

    url = get_settings().DATABASE_URL


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Frozen migrations must not import our models: render UTCDateTime as its DDL type."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
