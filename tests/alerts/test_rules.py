"""Threshold and match alerts firing from ingested events, the cool-down, and alert_trigger's shape."""

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from alerts import rules
from alerts.models import Alert, AlertTrigger
from issues.events import ingest_event
from issues.models import Issue
from realtime.models import Message
from tests.issues.helpers import assert_envelope, published

pytestmark = pytest.mark.django_db

TRIGGER_KEYS = {"type", "channel", "seq", "ts", "alert_id", "trigger_id", "issue_id", "data"}


@pytest.fixture(autouse=True)
def no_flush_threads(monkeypatch):
    from issues import events

    monkeypatch.setattr(events, "schedule_flush", lambda issue_id, delay: None)


def threshold_alert(**fields) -> Alert:
    return Alert.objects.create(
        **{"name": "High error rate", "condition": "threshold", "threshold": 3, "window_seconds": 60,
           "severity": "critical", "cooldown_seconds": 300, **fields}
    )  # fmt: skip


def test_threshold_alert_fires_when_count_exceeds_threshold_and_publishes():
    alert = threshold_alert()
    for _ in range(3):
        ingest_event(title="boom")
    assert not AlertTrigger.objects.exists()  # 3 is not more than 3
    result = ingest_event(title="boom")
    [trigger] = AlertTrigger.objects.all()
    assert trigger.alert == alert and trigger.issue == result.issue and trigger.value == 4
    assert trigger.severity == "critical" and "4 events" in trigger.message

    [on_all] = published("alerts")
    [on_one] = published(f"alert:{alert.pk}")
    for msg, channel in ((on_all, "alerts"), (on_one, f"alert:{alert.pk}")):
        assert set(msg) == TRIGGER_KEYS and msg["type"] == "alert_trigger"
        assert_envelope(msg, channel, seq=1)
        assert msg["alert_id"] == str(alert.pk) and msg["trigger_id"] == str(trigger.pk)
        assert msg["issue_id"] == str(result.issue.pk)
        assert msg["data"] == {
            "message": trigger.message, "severity": "critical", "condition": "threshold", "value": 4, "threshold": 3,
        }  # fmt: skip


def test_threshold_counts_only_events_inside_the_window():
    threshold_alert(threshold=2, window_seconds=60)
    issue = ingest_event(title="old").issue
    ingest_event(title="old")
    issue.events.update(received_at=timezone.now() - timedelta(seconds=120))
    ingest_event(title="old")
    ingest_event(title="old")
    assert not AlertTrigger.objects.exists()
    ingest_event(title="old")
    assert AlertTrigger.objects.get().value == 3


def test_cooldown_holds_per_alert_per_issue():
    alert = threshold_alert(threshold=1, cooldown_seconds=300)
    for _ in range(5):
        first = ingest_event(title="hot")
    assert AlertTrigger.objects.filter(issue=first.issue).count() == 1  # fired at 2, cooling down after
    for _ in range(2):
        other = ingest_event(title="another issue")
    assert AlertTrigger.objects.filter(issue=other.issue).count() == 1  # the cool-down is per issue
    AlertTrigger.objects.filter(issue=first.issue).update(triggered_at=timezone.now() - timedelta(seconds=301))
    ingest_event(title="hot")
    assert AlertTrigger.objects.filter(alert=alert, issue=first.issue).count() == 2
    assert len(published(f"alert:{alert.pk}")) == 3


def test_match_alert_fires_for_new_matching_issue_only():
    alert = Alert.objects.create(name="fatal payments", condition="match", pattern=r"payment|checkout", level="error")
    ingest_event(title="TypeError in checkout", level="fatal")  # matches title, level >= error
    ingest_event(title="TypeError in checkout", level="fatal")  # not new: no trigger
    ingest_event(title="checkout slow", level="warning")  # below the level
    ingest_event(title="KeyError in search", level="fatal")  # no pattern match
    ingest_event(title="x", fingerprint="payment-gateway-timeout", level="error")  # matches the fingerprint
    triggers = list(AlertTrigger.objects.order_by("id"))
    assert [t.issue.title for t in triggers] == ["TypeError in checkout", "x"]
    msg = published(f"alert:{alert.pk}")[0]
    assert msg["data"]["condition"] == "match" and msg["data"]["value"] == 1 and msg["data"]["threshold"] is None


def test_match_alert_fires_for_an_issue_created_without_an_event():
    # docs/protocol.md section 7: "a new issue", whatever made it: the API, the admin, a shell.
    alert = Alert.objects.create(name="checkout", condition="match", pattern="checkout", severity="critical")
    issue = Issue.objects.create(title="TypeError in checkout", level="error")
    Issue.objects.create(title="KeyError in search", level="error")
    [trigger] = AlertTrigger.objects.all()
    assert trigger.alert == alert and trigger.issue == issue and trigger.value == 1
    issue.title = "TypeError in checkout (edited)"
    issue.save()  # an edit is not a new issue
    assert AlertTrigger.objects.count() == 1
    [msg] = published(f"alert:{alert.pk}")
    assert msg["issue_id"] == str(issue.pk) and msg["data"]["condition"] == "match"


def test_match_alert_fires_once_for_an_issue_born_from_an_event():
    Alert.objects.create(name="all new", condition="match", cooldown_seconds=0)
    ingest_event(title="first of its kind")
    assert AlertTrigger.objects.count() == 1


def test_inactive_alert_never_fires():
    threshold_alert(threshold=0, is_active=False)
    Alert.objects.create(name="all new", condition="match", is_active=False)
    ingest_event(title="anything")
    assert not AlertTrigger.objects.exists()


def test_threshold_alert_honours_pattern_and_level():
    threshold_alert(threshold=1, pattern="^db", level="fatal")
    for _ in range(3):
        ingest_event(title="db down", level="error")  # the issue is "error": below fatal
        ingest_event(title="cache down", level="fatal")  # the pattern does not match
    assert not AlertTrigger.objects.exists()


def test_rolled_back_event_leaves_no_trigger_and_no_message():
    threshold_alert(threshold=0)
    with pytest.raises(RuntimeError), transaction.atomic():
        ingest_event(title="rolled back")
        assert AlertTrigger.objects.count() == 1
        raise RuntimeError
    assert not AlertTrigger.objects.exists() and not Message.objects.exists()


def test_trigger_fan_out_waits_for_commit(django_capture_on_commit_callbacks):
    alert = threshold_alert(threshold=0)
    with django_capture_on_commit_callbacks() as callbacks:
        ingest_event(title="commit me")
    channels = [cb.args[0] for cb in callbacks if getattr(cb, "func", None).__name__ == "_fan_out"]
    assert channels[-2:] == ["alerts", f"alert:{alert.pk}"]


def test_trigger_saved_directly_publishes_and_edit_does_not():
    issue = Issue.objects.create(title="x")  # before the alert: the alert's own match must not fire here
    alert = Alert.objects.create(name="manual", condition="match", severity="info")
    trigger = AlertTrigger.objects.create(alert=alert, issue=issue, message="by hand", severity="info", value=2.5)
    [msg] = published("alerts")
    assert msg["trigger_id"] == str(trigger.pk) and msg["data"]["value"] == 2.5
    trigger.message = "edited"
    trigger.save()
    assert len(published("alerts")) == 1


def test_invalid_stored_pattern_is_matched_literally():
    assert rules.compile_pattern("a[b").search("xa[by")


# --- the active rules kept per process (rules.active) -------------------------


def test_an_alert_saved_inside_the_ingesting_transaction_is_seen_and_its_rollback_forgotten():
    with pytest.raises(RuntimeError), transaction.atomic():
        threshold_alert(threshold=0)
        ingest_event(title="inside")
        assert AlertTrigger.objects.count() == 1
        raise RuntimeError
    # The rolled-back alert is not kept: the next event neither sees it nor fails on it.
    assert rules.active("threshold") == []
    ingest_event(title="after")
    assert not AlertTrigger.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_rules_are_read_once_per_window_and_a_save_or_delete_here_is_seen_at_once(django_assert_num_queries):
    ingest_event(title="warm")  # reads and keeps both conditions' rules (none)
    with django_assert_num_queries(0):
        assert rules.active("threshold") == [] and rules.active("match") == []
    alert = threshold_alert(threshold=0)
    ingest_event(title="seen")
    assert AlertTrigger.objects.filter(alert=alert).count() == 1
    alert.is_active = False
    alert.save()
    assert rules.active("threshold") == []
    alert.is_active = True
    alert.save()
    assert rules.active("threshold") == [alert]
    alert.delete()
    assert rules.active("threshold") == []


@pytest.mark.django_db(transaction=True)
def test_a_change_without_signals_is_seen_after_the_cache_seconds(settings):
    settings.ALERTS_RULES_CACHE_SECONDS = 0.2
    alert = threshold_alert(threshold=0)
    assert rules.active("threshold") == [alert]
    Alert.objects.filter(pk=alert.pk).update(is_active=False)  # as another process would: no signal here
    assert rules.active("threshold") == [alert]  # kept ...
    time.sleep(0.25)
    assert rules.active("threshold") == []  # ... for the cache's seconds only


@pytest.mark.django_db(transaction=True)
def test_a_kept_rule_deleted_elsewhere_does_not_fire():
    alert = threshold_alert(threshold=0)
    assert rules.active("threshold") == [alert]
    Alert.objects.filter(pk=alert.pk)._raw_delete("default")  # another process's DELETE: no signal here
    result = ingest_event(title="still kept")  # the rule is still in the cache; its row is gone
    assert result.event_count == 1 and not AlertTrigger.objects.exists()


def test_the_cache_off_reads_every_time(settings, django_assert_num_queries):
    settings.ALERTS_RULES_CACHE_SECONDS = 0
    rules.active("threshold")
    with django_assert_num_queries(1):
        rules.active("threshold")
