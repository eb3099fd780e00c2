"""The channel registry: the one place that knows which channel kinds exist.

A kind is registered once, from an ``AppConfig.ready()``, with everything the
server needs to know about its channels: whether a name carries an object id
(``order:<id>``) or not (``orders``), who may subscribe, whether the object
must exist, whether history is served, and whether the channel has channel
presence and signals (docs/protocol.md sections 2, 10 and 11). ``realtime``
registers ``global``, ``presence`` and ``user:<id>``; every other kind comes
from the project's own apps, so ``realtime`` never names a domain.

The rule a caller must know: ids are canonical. A kind whose ids are integers
(``ids=INT_IDS``) accepts only decimal without leading zeros, so ``issue:0001``
is ``unknown_channel`` and never a second name of ``issue:1``.

Plain data and plain functions, no Django: parsing (realtime.protocol) and the
default policy (realtime.policy) read it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .ids import parse_id

# docs/protocol.md section 2: a kind is 1-32 of a-z 0-9 _ - starting with a
# letter; an id 1-64 of A-Z a-z 0-9 _ . -. 32 + 1 + 64 = 97 characters fit the
# 100-character channel columns of realtime.models.
KIND_RE = re.compile(r"[a-z][a-z0-9_\-]{0,31}")
ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
MAX_NAME_LENGTH = 32 + 1 + 64


# What an id of a kind may look like, as a test of the id text.


def STR_IDS(object_id: str) -> bool:
    """Any id of section 2, compared as written."""
    return ID_RE.fullmatch(object_id) is not None


def INT_IDS(object_id: str) -> bool:
    """An integer primary key in canonical decimal: positive, no sign, no leading
    zeros, within a signed 64-bit column (realtime.ids, as the HTTP API reads ids)."""
    return parse_id(object_id) is not None


# ``can_subscribe(user, object_id)``: may this (authenticated, or anonymous when
# the kind allows it) user subscribe? ``object_id`` is None for a plain kind.
SubscribePolicy = Callable[[Any, "str | None"], bool]


@dataclass(frozen=True)
class ChannelKind:
    """Everything the server knows about the channels of one kind."""

    kind: str
    # ``order:<id>`` when True, plain ``orders`` when False; never both.
    object_id: bool = False
    ids: Callable[[str], bool] = STR_IDS
    # Anonymous connections may subscribe (only ``global`` in Dexter).
    anonymous: bool = False
    can_subscribe: SubscribePolicy | None = None
    # ``exists(object_id)``: False answers ``not_found``. Called only for users
    # the kind admits, so an anonymous client cannot probe which objects exist.
    exists: Callable[[str], bool] | None = None
    # False: ``history`` (socket and REST) answers ``history_unavailable``.
    history: bool = True
    presence: bool = False
    signals: bool = False


_kinds: dict[str, ChannelKind] = {}


def _full_match(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda object_id: pattern.fullmatch(object_id) is not None


def register_channel(
    kind: str,
    *,
    object_id: bool = False,
    ids: Callable[[str], bool] | re.Pattern[str] | str = STR_IDS,
    anonymous: bool = False,
    can_subscribe: SubscribePolicy | None = None,
    exists: Callable[[str], bool] | None = None,
    history: bool = True,
    presence: bool = False,
    signals: bool = False,
) -> ChannelKind:
    """Register a channel kind (call it from ``AppConfig.ready()``); returns its entry.

    ``ids`` is ``INT_IDS``, ``STR_IDS`` (the default), a regular expression
    matched in full, or a test of your own; an id must pass it and be an id of
    section 2. Make it accept one spelling per object: that is what keeps ids
    canonical. Registering a kind again replaces it (tests and projects may
    override Dexter's rows).
    """
    if not isinstance(kind, str) or not KIND_RE.fullmatch(kind):
        raise ValueError(f"channel kind {kind!r} must be 1-32 characters of a-z 0-9 _ - starting with a letter")
    if isinstance(ids, str):
        ids = re.compile(ids)
    test: Callable[[str], bool] = _full_match(ids) if isinstance(ids, re.Pattern) else ids
    if (exists is not None or test is not STR_IDS) and not object_id:
        raise ValueError(f"channel kind {kind!r}: exists and ids only apply to kinds with an object id")
    entry = ChannelKind(
        kind=kind,
        object_id=object_id,
        ids=test,
        anonymous=anonymous,
        can_subscribe=can_subscribe,
        exists=exists,
        history=history,
        presence=presence,
        signals=signals,
    )
    _kinds[kind] = entry
    return entry


def unregister_channel(kind: str) -> None:
    """Forget a kind (for tests, and for a project that does not want one of Dexter's)."""
    _kinds.pop(kind, None)


def get(kind: str) -> ChannelKind | None:
    return _kinds.get(kind)


def kinds() -> dict[str, ChannelKind]:
    """A snapshot of every registered kind, by name."""
    return dict(_kinds)


def lookup(name: str) -> tuple[ChannelKind, str | None] | None:
    """The registered kind and canonical object id of a channel name, or None.

    None for anything that is not a registered kind with an id of its format:
    the caller answers ``unknown_channel``.
    """
    if len(name) > MAX_NAME_LENGTH or not name.isascii():
        return None
    kind, sep, object_id = name.partition(":")
    entry = _kinds.get(kind)
    if entry is None or entry.object_id != bool(sep):
        return None
    if not sep:
        return entry, None
    if not ID_RE.fullmatch(object_id) or not entry.ids(object_id):
        return None
    return entry, object_id
