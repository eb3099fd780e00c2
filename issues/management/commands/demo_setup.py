"""Create the demo admin and users (passwords printed once), issues, comments and alerts for `make run`.

Idempotent: issues are keyed by fingerprint, alerts by name, and comments are
only added to an issue that has none; each new row publishes like any save.
"""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERS = [("admin", True), ("alice", False), ("bob", False)]
# (fingerprint, title, culprit, level, status, assignee username, comment)
DEMO_ISSUES = [
    (
        "demo-typeerror-checkout",
        "TypeError in checkout",
        "shop/checkout.py in total",
        "error",
        "unresolved",
        "alice",
        "Started after the 2.3 deploy.",
    ),
    (
        "demo-timeout-search",
        "Timeout talking to search",
        "search/client.py in query",
        "warning",
        "unresolved",
        None,
        "Only under load, it seems.",
    ),
    ("demo-keyerror-profile", "KeyError: 'avatar'", "accounts/views.py in profile", "error", "resolved", "bob", None),
    (
        "demo-oom-worker",
        "MemoryError in report worker",
        "reports/tasks.py in render",
        "fatal",
        "unresolved",
        None,
        None,
    ),
]
DEMO_ALERTS = [
    {
        "name": "High error rate",
        "condition": "threshold",
        "threshold": 100,
        "window_seconds": 60,
        "severity": "critical",
        "cooldown_seconds": 300,
    },
    {
        "name": "New fatal issue",
        "condition": "match",
        "level": "fatal",
        "severity": "critical",
        "cooldown_seconds": 300,
    },
]


class Command(BaseCommand):
    help = (
        "Create the demo users admin, alice and bob, printing each new password once; "
        "--reset-passwords gives the existing ones new passwords, printed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Set and print new passwords for admin, alice and bob (when the first run's are lost).",
        )

    def handle(self, *args, **options):
        User = get_user_model()
        shown = []
        for username, staff in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is not None and not options["reset_passwords"]:
                continue
            password = secrets.token_urlsafe(9)
            if user is None:
                User.objects.create_user(
                    username=username,
                    password=password,
                    is_staff=staff,
                    is_superuser=staff,
                    email=f"{username}@example.com",
                )
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            shown.append((username, password))
        if shown:
            self.stdout.write("Demo users (passwords are shown this once):")
            for username, password in shown:
                self.stdout.write(f"  {username:6} {password}")
        else:
            self.stdout.write(
                "Demo users exist already (admin, alice, bob); their passwords were printed at first run.\n"
                "  New ones: make passwords (or: python manage.py demo_setup --reset-passwords)"
            )
        self.create_issues_and_alerts()

    def create_issues_and_alerts(self):
        from alerts.models import Alert
        from issues.models import Comment, Issue

        users = {u.username: u for u in get_user_model().objects.filter(username__in=[n for n, _ in DEMO_USERS])}
        # Alerts first: the new fatal issue below then fires "New fatal issue", so a
        # first run's alert feed shows a real trigger (match alerts fire for any new issue).
        new_alerts = 0
        for spec in DEMO_ALERTS:
            _, created = Alert.objects.get_or_create(name=spec["name"], defaults=spec)
            new_alerts += created
        new_issues = 0
        for fingerprint, title, culprit, level, status, assignee, comment in DEMO_ISSUES:
            issue, created = Issue.objects.get_or_create(
                fingerprint=fingerprint,
                defaults={
                    "title": title,
                    "culprit": culprit,
                    "level": level,
                    "status": status,
                    "assignee": users.get(assignee),
                    "event_count": 1,
                },
            )
            new_issues += created
            if comment and not issue.comments.exists():
                Comment.objects.create(issue=issue, author=users.get("admin"), body=comment)
        self.stdout.write(f"Demo data: {new_issues} new issues, {new_alerts} new alerts.")
