"""The open channel registry (realtime.registry): a project's own kinds, canonical ids, the policy on top."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async

from realtime import policy, registry
from realtime.protocol import ProtocolError, parse_channel
from realtime.publisher import publish
from tests.conftest import access_token
from tests.realtime.helpers import Client

ANONYMOUS = SimpleNamespace(is_authenticated=False, pk=None)
ALICE = SimpleNamespace(is_authenticated=True, pk=7)


@pytest.fixture
def kinds():
    """Register kinds for one test only; Dexter's own are restored afterwards."""
    saved = registry.kinds()
    yield registry
    registry._kinds.clear()
    registry._kinds.update(saved)


def test_realtime_registers_only_its_own_kinds_and_the_apps_register_theirs():
    entries = registry.kinds()
    assert {"global", "presence", "user", "issues", "issue", "alerts", "alert"} <= set(entries)
    assert entries["global"].anonymous and not entries["presence"].anonymous
    assert entries["issue"].object_id and entries["issue"].presence and entries["issue"].signals
    assert not entries["issues"].presence and not entries["global"].signals


def test_a_kind_nobody_registered_is_an_unknown_channel():
    with pytest.raises(ProtocolError) as exc:
        parse_channel("orders")
    assert exc.value.code == "unknown_channel" and exc.value.channel == "orders"


def test_a_registered_kind_parses_and_is_publishable(kinds, db):
    kinds.register_channel("orders")
    kinds.register_channel("order", object_id=True, ids=registry.INT_IDS)
    assert parse_channel("orders").name == "orders"
    assert parse_channel("order:12").object_id == "12"
    assert publish("order:12", {"type": "order_update"})["seq"] == 1


@pytest.mark.parametrize(
    "name",
    ["order:0012", "order:+1", "order:1.0", "order:-1", "order:", "order", "orders:1", "order:1:2", "order:" + "9" * 19]
    + ["order:ab", "order:0", "order:9223372036854775808", "order:²"],
)
def test_integer_ids_are_canonical_decimal_and_nothing_else(kinds, name):
    kinds.register_channel("order", object_id=True, ids=registry.INT_IDS)
    with pytest.raises(ProtocolError) as exc:
        parse_channel(name)
    assert exc.value.code == "unknown_channel"


@pytest.mark.parametrize("object_id", ["a", "A-b_c.9", "x" * 64, "0", "007"])
def test_string_ids_are_any_id_of_the_protocol(kinds, object_id):
    kinds.register_channel("project", object_id=True)
    assert parse_channel(f"project:{object_id}").object_id == object_id


@pytest.mark.parametrize("object_id", ["x" * 65, "a b", "a/b", "ä", "a:b"])
def test_string_ids_outside_the_protocol_are_refused(kinds, object_id):
    kinds.register_channel("project", object_id=True)
    with pytest.raises(ProtocolError) as exc:
        parse_channel(f"project:{object_id}")
    assert exc.value.code == "unknown_channel"


@pytest.mark.parametrize("kind", ["", "Orders", "1orders", "_x", "a" * 33, "or:ders", "or ders", "ördersä", 5])
def test_kind_names_outside_the_protocol_cannot_be_registered(kinds, kind):
    with pytest.raises(ValueError, match="channel kind"):
        kinds.register_channel(kind)


def test_the_longest_names_fit(kinds):
    kind = "k" + "-" * 31
    kinds.register_channel(kind, object_id=True)
    name = f"{kind}:{'i' * 64}"
    assert len(name) == registry.MAX_NAME_LENGTH and parse_channel(name).name == name


def test_a_lookup_is_only_for_kinds_with_ids(kinds):
    with pytest.raises(ValueError, match="object id"):
        kinds.register_channel("orders", exists=lambda object_id: True)


def test_the_default_policy_reads_the_registry_in_order(kinds):
    looked_up = []

    def exists(object_id):
        looked_up.append(object_id)
        return object_id == "1"

    kinds.register_channel(
        "order", object_id=True, ids=registry.INT_IDS, exists=exists, can_subscribe=lambda user, oid: user.pk == 7
    )
    assert policy.default_policy(ANONYMOUS, parse_channel("order:2")) == "forbidden"
    assert looked_up == []  # an anonymous client cannot probe which orders exist
    assert policy.default_policy(ALICE, parse_channel("order:2")) == "not_found"
    assert policy.default_policy(ALICE, parse_channel("order:1")) is None
    bob = SimpleNamespace(is_authenticated=True, pk=8)
    assert policy.default_policy(bob, parse_channel("order:1")) == "forbidden"


def test_anonymous_kinds_admit_anonymous_users(kinds):
    kinds.register_channel("status", anonymous=True)
    assert policy.default_policy(ANONYMOUS, parse_channel("status")) is None
    assert policy.default_policy(ANONYMOUS, parse_channel("presence")) == "forbidden"
    assert policy.default_policy(ANONYMOUS, parse_channel("global")) is None


def test_user_channels_are_for_their_user_only():
    assert policy.default_policy(ALICE, parse_channel("user:7")) is None
    assert policy.default_policy(ALICE, parse_channel("user:8")) == "forbidden"
    with pytest.raises(ProtocolError) as exc:
        parse_channel("user:007")
    assert exc.value.code == "unknown_channel"


def test_a_kind_registered_without_history_serves_none(kinds):
    kinds.register_channel("ticker", history=False)
    with pytest.raises(ProtocolError) as exc:
        policy.check_history(parse_channel("ticker"))
    assert exc.value.code == "history_unavailable" and exc.value.channel == "ticker"
    policy.check_history(parse_channel("global"))  # history kept: no error


def test_the_no_history_setting_still_applies(settings):
    settings.REALTIME_NO_HISTORY = ["presence"]
    with pytest.raises(ProtocolError):
        policy.check_history(parse_channel("presence"))


@pytest.mark.django_db(transaction=True)
async def test_a_project_kind_works_end_to_end_on_the_socket(kinds, alice):
    kinds.register_channel("order", object_id=True, ids=registry.INT_IDS, exists=lambda object_id: object_id == "5")
    client = Client(token=access_token(alice))
    await client.connect()
    reply = await client.request({"type": "subscribe", "channel": "order:5"})
    assert reply["type"] == "subscribed" and reply["seq"] == 0
    await database_sync_to_async(publish)("order:5", {"type": "order_update", "status": "paid"})
    update = await client.recv()
    assert update["type"] == "order_update" and update["channel"] == "order:5" and update["seq"] == 1
    missing = await client.request({"type": "subscribe", "channel": "order:6"})
    assert missing["code"] == "not_found"
    second_name = await client.request({"type": "subscribe", "channel": "order:05"})
    assert second_name["code"] == "unknown_channel"
    await client.close()


@pytest.mark.django_db(transaction=True)
async def test_history_of_a_kind_without_history_is_unavailable_on_the_socket(kinds, alice):
    kinds.register_channel("ticker", history=False)
    client = Client(token=access_token(alice))
    await client.connect()
    reply = await client.request({"type": "history", "channel": "ticker", "ref": "h1"})
    assert reply["code"] == "history_unavailable" and reply["ref"] == "h1"
    await client.close()


def test_history_of_a_kind_without_history_is_404_over_http(kinds, api, alice):
    kinds.register_channel("ticker", history=False)
    api.force_authenticate(alice)
    assert api.get("/api/realtime/channels/ticker/history/").status_code == 404
    assert api.get("/api/realtime/channels/global/history/").status_code == 200


def test_publishing_on_a_second_name_is_refused(db):
    with pytest.raises(ProtocolError) as exc:
        publish("issue:0001", {"type": "issue_update"})
    assert exc.value.code == "unknown_channel"


def test_the_largest_integer_id_parses(kinds):
    kinds.register_channel("order", object_id=True, ids=registry.INT_IDS)
    assert parse_channel("order:9223372036854775807").object_id == "9223372036854775807"


def test_a_kind_may_give_its_own_id_format(kinds):
    kinds.register_channel("sku", object_id=True, ids=r"[A-Z]{3}-[0-9]{4}")
    assert parse_channel("sku:ABC-0001").object_id == "ABC-0001"
    with pytest.raises(ProtocolError):
        parse_channel("sku:abc-0001")
