"""Published flow versions and which one is live where: rows only, no flow logic (flows.versions).

Versions are immutable and numbered per flow name; assignments are append-only, the latest row
of a scope (agency or default, channel) being the live one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Channel, FlowAssignment, FlowVersion

__all__ = [
    "add_version",
    "all_versions",
    "assign",
    "find_by_checksum",
    "find_version",
    "live_assignment",
    "live_assignments",
    "newest_version",
    "next_version_number",
]


def find_version(session: Session, name: str, version: int) -> FlowVersion | None:
    return session.scalar(select(FlowVersion).where(FlowVersion.name == name, FlowVersion.version == version))


def find_by_checksum(session: Session, name: str, checksum: str) -> FlowVersion | None:
    return session.scalar(
        select(FlowVersion).where(FlowVersion.name == name, FlowVersion.checksum == checksum)
    )


def newest_version(session: Session, name: str) -> FlowVersion | None:
    return session.scalar(
        select(FlowVersion).where(FlowVersion.name == name).order_by(FlowVersion.version.desc()).limit(1)
    )


def next_version_number(session: Session, name: str) -> int:
    highest = session.scalar(select(func.max(FlowVersion.version)).where(FlowVersion.name == name))
    return (highest or 0) + 1


def add_version(
    session: Session,
    *,
    name: str,
    version: int,
    definition: dict[str, Any],
    source: str,
    checksum: str,
    published_at: datetime,
    published_by: str | None,
) -> FlowVersion:
    row = FlowVersion(
        name=name,
        version=version,
        definition=definition,
        source=source,
        checksum=checksum,
        published_at=published_at,
        published_by=published_by,
    )
    session.add(row)
    session.flush()
    return row


def assign(
    session: Session,
    *,
    agency_id: int | None,
    channel: Channel,
    version: FlowVersion,
    at: datetime,
    by: str | None,
) -> FlowAssignment:
    row = FlowAssignment(
        agency_id=agency_id, channel=channel, flow_version_id=version.id, assigned_at=at, assigned_by=by
    )
    session.add(row)
    session.flush()
    return row


def live_assignment(session: Session, agency_id: int | None, channel: Channel) -> FlowAssignment | None:
    """The latest assignment of exactly this scope (no fallback to the default here)."""
    scope = FlowAssignment.agency_id.is_(None) if agency_id is None else FlowAssignment.agency_id == agency_id
    return session.scalar(
        select(FlowAssignment)
        .where(scope, FlowAssignment.channel == channel)
        .order_by(FlowAssignment.id.desc())
        .limit(1)
    )


def live_assignments(session: Session) -> list[FlowAssignment]:
    """The live assignment of every scope that has one."""
    latest = (
        select(func.max(FlowAssignment.id))
        .group_by(FlowAssignment.agency_id, FlowAssignment.channel)
        .scalar_subquery()
    )
    return list(session.scalars(select(FlowAssignment).where(FlowAssignment.id.in_(latest))).all())


def all_versions(session: Session) -> Sequence[FlowVersion]:
    return session.scalars(select(FlowVersion).order_by(FlowVersion.name, FlowVersion.version)).all()
