"""The pure protocol module: frame parsing and channel names, no database."""

import json

import pytest

from realtime import protocol
from realtime.protocol import ProtocolError, parse_channel, parse_frame


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "invalid_json"),
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('"a string"', "invalid_json"),
        ("null", "invalid_json"),
        ("[" * 100000, "invalid_json"),
        ("{}", "invalid_message"),
        ('{"type": 5}', "invalid_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "subscribe"}', "invalid_message"),
        ('{"type": "subscribe", "channel": 7}', "invalid_message"),
        ('{"type": "subscribe", "channel": "issues", "since": -1}', "invalid_message"),
        ('{"type": "subscribe", "channel": "issues", "since": "5"}', "invalid_message"),
        ('{"type": "subscribe", "channel": "issues", "since": true}', "invalid_message"),
        ('{"type": "presence", "status": "sleeping"}', "invalid_message"),
        ('{"type": "presence", "status": "away", "activity": 5}', "invalid_message"),
        ('{"type": "history", "channel": "issues", "limit": 0}', "invalid_message"),
        ('{"type": "auth"}', "invalid_message"),
        ('{"type": "ping", "ref": 12}', "invalid_message"),
    ],
)
def test_bad_frames_raise_the_contract_error(text, code):
    with pytest.raises(ProtocolError) as exc:
        parse_frame(text)
    assert exc.value.code == code


def test_binary_frame_is_invalid_json():
    with pytest.raises(ProtocolError) as exc:
        parse_frame(None)
    assert exc.value.code == "invalid_json"


def test_activity_longer_than_200_characters_is_rejected():
    with pytest.raises(ProtocolError):
        parse_frame(json.dumps({"type": "presence", "status": "busy", "activity": "x" * 201}))
    assert parse_frame(json.dumps({"type": "presence", "status": "busy", "activity": "x" * 200})).activity


def test_ref_is_kept_for_the_error_reply():
    with pytest.raises(ProtocolError) as exc:
        parse_frame('{"type": "dance", "ref": "r9"}')
    assert exc.value.ref == "r9"


def test_history_limit_is_capped_at_1000():
    msg = parse_frame('{"type": "history", "channel": "issues", "limit": 5000}')
    assert msg.limit == 1000 and msg.since == 0


@pytest.mark.parametrize("name", ["global", "issues", "alerts", "presence", "issue:123", "alert:7", "user:42"])
def test_known_channels_parse(name):
    assert parse_channel(name).name == name


@pytest.mark.parametrize("name", ["nope", "issue:", "issue:a b", "issües", "x" * 200, "user:1:2", "global:1", ":1"])
def test_unknown_channels_are_refused(name):
    with pytest.raises(ProtocolError) as exc:
        parse_channel(name)
    assert exc.value.code == "unknown_channel"


@pytest.mark.parametrize(
    ("client_id", "ok"),
    [
        ("tab-1", True),
        ("a.b_c-D9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("", False),
        ("tab 1", False),
        ("täb", False),
    ],
)
def test_client_id_rule(client_id, ok):
    assert protocol.valid_client_id(client_id) is ok


def test_batch_frame_is_valid_json_of_the_given_messages():
    frames = [protocol.encode({"type": "a", "seq": 1}), protocol.encode({"type": "b", "seq": 2})]
    assert json.loads(protocol.batch_frame(frames)) == {
        "type": "batch",
        "messages": [{"type": "a", "seq": 1}, {"type": "b", "seq": 2}],
    }


def test_envelope_puts_channel_seq_ts_after_type():
    out = protocol.envelope({"type": "announcement", "message": "hi", "seq": 99}, channel="global", seq=3, ts="T")
    assert list(out) == ["type", "channel", "seq", "ts", "message"] and out["seq"] == 3


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"ping","timestamp":NaN}',
        '{"type":"ping","timestamp":Infinity}',
        '{"type":"ping","timestamp":-Infinity}',
        '{"type":"ping","timestamp":1e400}',
        r'{"type":"ping","timestamp":"\ud800"}',
        r'{"type":"ping","timestamp":"ok \udc00"}',
        r'{"type":"ping","\ud800":1}',
        r'{"type":"ping","nested":[{"\udfff":"x"}]}',
        '{"type":"ping","timestamp":"\ud800"}',  # a raw surrogate, as a Python caller could pass
    ],
)
def test_what_no_json_text_holds_is_invalid_json(text):
    with pytest.raises(ProtocolError) as exc:
        parse_frame(text)
    assert exc.value.code == "invalid_json"


def test_a_surrogate_pair_is_one_valid_character():
    msg = parse_frame(r'{"type":"ping","timestamp":"\ud83d\ude00"}')
    assert msg.timestamp == "\U0001f600"


def test_encode_never_writes_nan_and_replaces_lone_surrogates():
    with pytest.raises(ValueError):
        protocol.encode({"type": "pong", "timestamp": float("nan")})
    text = protocol.encode({"type": "pong", "timestamp": "a\ud800b", "\udc00": 1})
    text.encode("utf-8")  # daphne's encoder takes it
    assert json.loads(text) == {"type": "pong", "timestamp": "a\ufffdb", "\ufffd": 1}
