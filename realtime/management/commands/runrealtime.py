"""``manage.py runrealtime``: daphne with the real-time server (``realtime/server.py``).

It runs daphne's own command line with a ``Server`` subclass that gives each
socket a lighter input queue, and accepts permessage-deflate when
WEBSOCKET_COMPRESSION is on. Every argument is daphne's; the ASGI application
defaults to ``ASGI_APPLICATION`` and ``--websocket_timeout`` to -1 (daphne's
own default closes every socket after 24 h, with a code clients read as final):

    python manage.py runrealtime -b 0.0.0.0 -p 8000

It runs the system checks first (a bad setting stops it in one line), and
serves static files itself (realtime/asgi_static.py) when the project has no
WhiteNoise, so the JavaScript client is never a 404.

Compression is off by default: each connection keeps its own zlib stream, so a
publication is compressed once per recipient. In bench/README.md that cost ~6.5x the
server CPU per delivered message and ~100 KB more memory per connection, to send
~80% fewer bytes of a ~135-byte publication. Turn it on where bandwidth costs more
than CPU (mobile clients on metered links).
"""

from __future__ import annotations

import re
import sys

from daphne.cli import CommandLineInterface
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, SystemCheckError

from realtime.server import RealtimeServer

# daphne's last positional argument, ``package.module:attribute``.
APP_PATH_RE = re.compile(r"^[\w.]+:[\w.]+$")


def serves_static_itself() -> bool:
    """Serve static files (the JS client) here when nothing else in the project does."""
    if not apps.is_installed("django.contrib.staticfiles"):
        return False
    return not any("whitenoise" in middleware.lower() for middleware in settings.MIDDLEWARE)


class RealtimeCLI(CommandLineInterface):
    server_class = RealtimeServer


class Command(BaseCommand):
    help = "Run daphne with the real-time server (realtime/server.py): lean per-socket queues, optional deflate."

    def run_from_argv(self, argv):
        # Pass daphne's own options through untouched: Django's parser would reject them.
        try:
            self.run_daphne(list(argv[2:]))
        except SystemCheckError as exc:
            # As Django's own commands end on a failed check: the lines, no traceback.
            self.stderr.write(str(exc))
            sys.exit(1)

    def handle(self, *args, **options):
        self.run_daphne([])

    def run_daphne(self, args: list[str]) -> None:
        # Like runserver: a bad setting stops the start with one line naming it.
        self.check(display_num_errors=False)
        if not any(a.startswith("--websocket_timeout") for a in args):
            # daphne's default closes every socket after 24 h with 1000 ("stay closed").
            args = ["--websocket_timeout", "-1", *args]
        if not args or not APP_PATH_RE.match(args[-1]):
            if serves_static_itself():
                args.append("realtime.asgi_static:application")
            else:
                module, _, name = settings.ASGI_APPLICATION.rpartition(".")
                args.append(f"{module}:{name}")
        RealtimeCLI().run(args)
