"""Create the demo admin and users (passwords printed once) for `make run`."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERS = [("admin", True), ("alice", False), ("bob", False)]


class Command(BaseCommand):
    help = "Create the demo users admin, alice and bob, printing each new password once."

    def handle(self, *args, **options):
        User = get_user_model()
        created = []
        for username, staff in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            password = secrets.token_urlsafe(9)
            User.objects.create_user(
                username=username,
                password=password,
                is_staff=staff,
                is_superuser=staff,
                email=f"{username}@example.com",
            )
            created.append((username, password))
        if created:
            self.stdout.write("Demo users (passwords are shown this once):")
            for username, password in created:
                self.stdout.write(f"  {username:6} {password}")
        else:
            self.stdout.write("Demo users exist already (admin, alice, bob); passwords were printed at first run.")
