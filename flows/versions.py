"""Flow versions: publishing, what is live for new surveys, and the exact version a survey runs.

- Publishing stores an immutable, numbered version (per flow name) of a checked flow and makes it
  live for a scope: an agency or the default (every agency without its own), on a channel. The
  same content published again is not stored twice (checksum of the definition); it is made live
  if it is not already.
- A new survey takes the version live for its agency and channel (the agency's own, else the
  default) and keeps it: `Survey.flow_name` + `Survey.flow_version`, and `load_version` gives
  exactly that version back however many versions are published later.
- Shipped defaults (config/flows/sipas-sms.yaml, sipas-zalo.yaml): when nothing is live on a
  channel, the first survey on it stores the shipped flow as a version (version 1 on a fresh
  database) and makes it the default, so even the defaults are pinned the moment they are used
  and a later release that edits the file never changes a running survey. A survey whose version
  is not stored (made before versions existed) runs the shipped file as its version 1.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flows.definition import Flow, FlowError
from flows.loading import (
    canonical_definition,
    checksum,
    default_flow,
    flow_from_definition,
    shipped_path,
)
from storage import audit
from storage.flows import (
    add_version,
    assign,
    find_by_checksum,
    find_version,
    live_assignment,
    newest_version,
    next_version_number,
)
from storage.models import Agency, Channel, FlowVersion

__all__ = [
    "SHIPPED_BY",
    "SHIPPED_BY_CHANNEL",
    "PublishResult",
    "current_user",
    "live_version",
    "load_version",
    "publish",
    "store_version",
]

SHIPPED_BY_CHANNEL: Mapping[Channel, str] = {Channel.SMS: "sipas-sms", Channel.ZALO: "sipas-zalo"}
SHIPPED_BY = "shipped default"


@dataclass(frozen=True)
class PublishResult:
    """What `publish` did: the version (new or found), and the scopes it was made live for."""

    name: str
    version: int
    created: bool
    made_live: tuple[Channel, ...]
    already_live: tuple[Channel, ...]


def current_user() -> str | None:
    """Who publishes (recorded with the version): the login name, when the system knows it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def store_version(
    session: Session, flow: Flow, source: str, *, by: str | None, now: datetime
) -> tuple[FlowVersion, bool]:
    """The stored version with `flow`'s content, adding it with the next number if new.
    Returns (row, created). Safe against a concurrent publish of the same content."""
    digest = checksum(flow)
    for _attempt in range(3):
        existing = find_by_checksum(session, flow.id, digest)
        if existing is not None:
            return existing, False
        number = next_version_number(session, flow.id)
        definition = canonical_definition(flow.model_copy(update={"version": number}))
        try:
            with session.begin_nested():
                row = add_version(
                    session,
                    name=flow.id,
                    version=number,
                    definition=definition,
                    source=source,
                    checksum=digest,
                    published_at=now,
                    published_by=by,
                )
        except IntegrityError:
            continue  # someone else stored this content or took this number: look again
        return row, True
    raise FlowError(f"could not store a new version of {flow.id}: concurrent publishing")


def publish(
    session: Session,
    flow: Flow,
    source: str,
    *,
    agency: Agency | None,
    channels: Sequence[Channel] | None,
    by: str | None,
    now: datetime,
) -> PublishResult:
    """Store `flow` (a checked flow; `source` its file text) and make it live for new surveys of
    `agency` (None: the default) on `channels` (None: the flow's own channel). A new version or a
    change of what is live is written to the audit log, by `by`."""
    wanted = tuple(channels) if channels else (flow.channel,)
    for channel in wanted:
        if channel not in flow.runs_on:
            raise FlowError(
                f"flow {flow.id} has no {channel.value} texts (its channels: "
                f"{', '.join(c.value for c in flow.runs_on)})"
            )
    row, created = store_version(session, flow, source, by=by, now=now)
    made_live: list[Channel] = []
    already: list[Channel] = []
    agency_id = agency.id if agency is not None else None
    for channel in wanted:
        current = live_assignment(session, agency_id, channel)
        if current is not None and current.flow_version_id == row.id:
            already.append(channel)
            continue
        assign(session, agency_id=agency_id, channel=channel, version=row, at=now, by=by)
        made_live.append(channel)
    if created or made_live:
        audit.append(
            session,
            by or "unknown",
            "flows.publish",
            f"flow:{row.name}",
            None,
            {
                "version": row.version,
                "new": created,
                "scope": agency.code if agency is not None else "default",
                "live_on": [channel.value for channel in made_live],
            },
            agency_id=agency_id,
        )
    return PublishResult(row.name, row.version, created, tuple(made_live), tuple(already))


def live_version(
    session: Session,
    agency_id: int | None,
    channel: Channel,
    now: datetime,
    configured_name: str | None = None,
) -> FlowVersion:
    """The version a new survey of this agency on this channel gets, in this order:

    1. the version published for the agency on the channel;
    2. `configured_name`, when the agency's channel rule names a flow other than the channel's
       shipped default (flows.channel_policy): its newest stored version, else its shipped file;
    3. the version published as the default on the channel;
    4. the shipped default for the channel, stored and made the default now.
    """
    if agency_id is not None:
        own = live_assignment(session, agency_id, channel)
        if own is not None:
            return own.flow_version
    shipped_name = SHIPPED_BY_CHANNEL[channel]
    if configured_name is not None and configured_name != shipped_name:
        newest = newest_version(session, configured_name)
        return newest or _store_shipped(session, configured_name, now)
    default = live_assignment(session, None, channel)
    if default is not None:
        return default.flow_version
    row = _store_shipped(session, shipped_name, now)
    assign(session, agency_id=None, channel=channel, version=row, at=now, by=SHIPPED_BY)
    return row


def _store_shipped(session: Session, name: str, now: datetime) -> FlowVersion:
    path = shipped_path(name)
    if path is None:
        raise FlowError(f"no published or shipped flow named {name!r}")
    row, _created = store_version(
        session, default_flow(name), path.read_text(encoding="utf-8"), by=SHIPPED_BY, now=now
    )
    return row


def load_version(session: Session | None, name: str, version: int) -> Flow:
    """Exactly version `version` of flow `name`, as stored when it was published. A version 1 that
    was never stored (surveys made before versions existed) is the shipped file."""
    row = find_version(session, name, version) if session is not None else None
    if row is not None:
        return flow_from_definition(row.definition)
    if version == 1 and shipped_path(name) is not None:
        return default_flow(name)
    raise FlowError(f"flow {name} version {version} is not stored")
