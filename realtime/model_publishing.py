"""Model publishing in one line: ``publish_model(Order, channel=...)``.

Every save and delete of the model, from any process (a request, the admin, a
shell, a worker), publishes one message per channel::

    {"type": "order_update", "update_type": "updated", "id": "12",
     "data": {"status": "paid", ..., "changes": {"status": ["new", "paid"]}}}

``update_type`` is ``created``, ``updated`` or ``deleted``; ``changes`` holds
every tracked field whose value this save changed (``{}`` for created and
deleted). A save that changes no tracked field publishes nothing.

The rule a caller must know: the message is stored in the save's own
transaction and delivered after it commits (``publisher.publish``), which is
why the model's ``save_base`` is wrapped in ``transaction.atomic()``: Django
sends ``post_save`` after an autocommit save has committed, and a crash in
between would lose the message. Deletes already run in the collector's
transaction. Bulk writes (``QuerySet.update()``, ``bulk_create``) send no
signals and publish nothing by themselves.

For a message shape this cannot make, ``track_changes(model, fields=...,
on_change=...)`` does the same tracking and hands each change to
``on_change(instance, update_type, state, changes)``, which builds its own
messages and publishes them (Dexter's issues and comments do).
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.db.models.expressions import Combinable
from django.db.models.signals import post_delete, post_save, pre_save

from .protocol import iso
from .publisher import publish

CREATED = "created"
UPDATED = "updated"
DELETED = "deleted"

ChannelSpec = str | Sequence[str] | Callable[[models.Model], "str | Sequence[str]"]
# ``on_change(instance, update_type, state, changes)``: ``state`` the tracked fields
# as wire values (after the save; before the delete), ``changes`` {field: [old, new]}.
OnChange = Callable[[models.Model, str, dict[str, Any], dict[str, list]], Any]
_BEFORE = "_realtime_state_before_save"


def wire(value: Any) -> Any:
    """A model value as JSON: timestamps ISO 8601 UTC with Z, ids and decimals as strings."""
    if isinstance(value, datetime.datetime):
        return iso(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    return value


@dataclass(frozen=True)
class ModelPublisher:
    model: type[models.Model]
    channel: ChannelSpec
    # Wire name -> attribute name (``customer`` -> ``customer_id``).
    fields: dict[str, str]
    serializer: Callable[[models.Model], dict] | None
    message_type: str
    # Called instead of publishing the message above (track_changes).
    on_change: OnChange | None = None

    @property
    def uid(self) -> str:
        return f"realtime.publish_model.{self.model._meta.label_lower}"

    def channels(self, instance: models.Model) -> list[str]:
        spec = self.channel(instance) if callable(self.channel) else self.channel
        names = [spec] if isinstance(spec, str) else list(spec)
        return [name.format(pk=instance.pk) if "{" in name else name for name in names]

    def state_of(self, values: dict[str, Any]) -> dict[str, Any]:
        state = {}
        for name, attr in self.fields.items():
            if attr in values:
                value = wire(values[attr])
                # Foreign keys are ids, and ids are strings on the wire (docs/protocol.md).
                if value is not None and attr != name:
                    value = str(value)
                state[name] = value
        return state

    def read_state(self, pk: Any, using: str | None) -> dict[str, Any] | None:
        queryset = self.model._base_manager.using(using).filter(pk=pk)
        if transaction.get_connection(using).in_atomic_block:
            queryset = queryset.select_for_update()  # held to commit: concurrent saves diff in order
        row = queryset.values(*self.fields.values()).first()
        return None if row is None else self.state_of(row)

    def data(self, instance: models.Model, state: dict[str, Any], changes: dict[str, list]) -> dict[str, Any]:
        if self.serializer is None:
            data = dict(state)
        elif isinstance(self.serializer, type):  # a DRF serializer class
            data = dict(self.serializer(instance).data)
        else:
            data = dict(self.serializer(instance))
        data["changes"] = changes
        return data

    def publish(self, instance: models.Model, update_type: str, state: dict, changes: dict) -> Any:
        if self.on_change is not None:
            return self.on_change(instance, update_type, state, changes)
        message = {
            "type": self.message_type,
            "update_type": update_type,
            "id": str(instance.pk),
            "data": self.data(instance, state, changes),
        }
        return [publish(name, message) for name in self.channels(instance)]

    # --- signal receivers --------------------------------------------------

    def remember(self, sender, instance, raw=False, using=None, **kwargs) -> None:
        before = None if instance._state.adding or instance.pk is None else self.read_state(instance.pk, using)
        instance.__dict__[_BEFORE] = before

    def saved(self, sender, instance, created: bool, raw=False, update_fields=None, **kwargs) -> None:
        if raw:  # loaddata: fixtures are not changes
            return
        before = instance.__dict__.pop(_BEFORE, None)
        # ``order.total = F("total") + 1`` leaves an expression behind: read what was written.
        expressions = [a for a in self.fields.values() if isinstance(instance.__dict__.get(a), Combinable)]
        if expressions:
            instance.refresh_from_db(fields=expressions)
        values = dict(instance.__dict__)
        if update_fields is not None:
            written = {instance._meta.get_field(f).attname for f in update_fields}
            values = {a: v for a, v in values.items() if a in written}
        after = self.state_of(values)
        if created or before is None:
            self.publish(instance, CREATED, after, {})
            return
        changes = {name: [before.get(name), value] for name, value in after.items() if before.get(name) != value}
        if changes:
            self.publish(instance, UPDATED, {**before, **after}, changes)

    def deleted(self, sender, instance, **kwargs) -> None:
        self.publish(instance, DELETED, self.state_of(instance.__dict__), {})


_publishers: dict[type[models.Model], ModelPublisher] = {}


def _tracked_fields(model: type[models.Model], fields: Iterable[str] | None) -> dict[str, str]:
    if fields is None:
        chosen: list[Any] = [f for f in model._meta.concrete_fields if not f.primary_key]
    else:
        chosen = [model._meta.get_field(name) for name in fields]
    return {f.name: f.attname for f in chosen}


def _wrap_save_base(model: type[models.Model]) -> None:
    original = model.save_base
    if getattr(original, "_realtime_atomic", False):
        return

    def save_base(self, *args, **kwargs):
        with transaction.atomic(using=kwargs.get("using") or None):
            return original(self, *args, **kwargs)

    save_base._realtime_atomic = True  # type: ignore[attr-defined]
    model.save_base = save_base  # type: ignore[method-assign]


def publish_model(
    model: type[models.Model] | None = None,
    *,
    channel: ChannelSpec,
    fields: Iterable[str] | None = None,
    serializer: Callable[[models.Model], dict] | None = None,
    message_type: str | None = None,
):
    """Publish every save and delete of ``model`` on ``channel``; also a class decorator.

    ``channel``: a name (``"orders"``, ``"order:{pk}"``), several, or a function
    of the instance giving them; each kind must be registered
    (``realtime.registry.register_channel``). ``fields``: the model fields whose
    changes are tracked and, without a serializer, published (default: every
    concrete field but the primary key). ``serializer``: a function of the
    instance, or a DRF serializer class, giving ``data``. ``message_type``:
    default ``<model_name>_update``. Call it once per model, e.g. from
    ``AppConfig.ready()``; calling it again replaces the earlier one.
    """
    if model is None:

        def decorate(cls: type[models.Model]) -> type[models.Model]:
            publish_model(cls, channel=channel, fields=fields, serializer=serializer, message_type=message_type)
            return cls

        return decorate
    return _connect(
        ModelPublisher(
            model=model,
            channel=channel,
            fields=_tracked_fields(model, fields),
            serializer=serializer,
            message_type=message_type or f"{model._meta.model_name}_update",
        )
    )


def track_changes(model: type[models.Model], *, fields: Iterable[str] | None = None, on_change: OnChange):
    """Track ``model``'s saves and deletes as ``publish_model`` does, but hand each
    change to ``on_change`` instead of publishing one message per channel.

    The same rules: called in the save's transaction (so what it publishes is
    sent after commit), never for a save that changes no tracked field, and
    ``update_type`` is ``created``, ``updated`` or ``deleted``. One of
    ``publish_model`` and ``track_changes`` per model; the later call replaces.
    """
    return _connect(
        ModelPublisher(
            model=model,
            channel=(),
            fields=_tracked_fields(model, fields),
            serializer=None,
            message_type="",
            on_change=on_change,
        )
    )


def _connect(publisher: ModelPublisher) -> ModelPublisher:
    model = publisher.model
    unpublish_model(model)
    _wrap_save_base(model)
    pre_save.connect(publisher.remember, sender=model, weak=False, dispatch_uid=publisher.uid + ".remember")
    post_save.connect(publisher.saved, sender=model, weak=False, dispatch_uid=publisher.uid + ".saved")
    post_delete.connect(publisher.deleted, sender=model, weak=False, dispatch_uid=publisher.uid + ".deleted")
    _publishers[model] = publisher
    return publisher


def unpublish_model(model: type[models.Model]) -> None:
    """Stop publishing ``model`` (its ``save_base`` stays atomic, which costs nothing)."""
    publisher = _publishers.pop(model, None)
    if publisher is None:
        return
    pre_save.disconnect(sender=model, dispatch_uid=publisher.uid + ".remember")
    post_save.disconnect(sender=model, dispatch_uid=publisher.uid + ".saved")
    post_delete.disconnect(sender=model, dispatch_uid=publisher.uid + ".deleted")
