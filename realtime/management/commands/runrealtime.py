"""``manage.py runrealtime``: daphne, with permessage-deflate when WEBSOCKET_COMPRESSION is on.

daphne never sets autobahn's ``perMessageCompressionAccept``, so it declines every
client's ``permessage-deflate`` offer. This command runs daphne's own command line
with a ``Server`` subclass that accepts the offer. Every argument is daphne's; the
ASGI application defaults to ``ASGI_APPLICATION``:

    python manage.py runrealtime -b 0.0.0.0 -p 8000

Compression is off by default: each connection keeps its own zlib stream, so a
publication is compressed once per recipient. In bench/README.md that cost ~6.5x the
server CPU per delivered message and ~100 KB more memory per connection, to send
~80% fewer bytes of a ~135-byte publication. Turn it on where bandwidth costs more
than CPU (mobile clients on metered links).
"""

from __future__ import annotations

import re

from daphne.cli import CommandLineInterface
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand

from realtime import conf

# daphne's last positional argument, ``package.module:attribute``.
APP_PATH_RE = re.compile(r"^[\w.]+:[\w.]+$")


def accept_deflate(offers):
    """autobahn's hook: accept the client's first permessage-deflate offer as made."""
    from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept

    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class CompressingServer(Server):
    def listen_success(self, port):
        # run() builds ws_factory and sets its options before listening; autobahn
        # copies factory options onto each protocol when a connection is made, so
        # setting this here covers every connection.
        self.ws_factory.setProtocolOptions(perMessageCompressionAccept=accept_deflate)
        super().listen_success(port)


class RealtimeCLI(CommandLineInterface):
    server_class = CompressingServer


class Command(BaseCommand):
    help = "Run daphne with the real-time settings (permessage-deflate when WEBSOCKET_COMPRESSION is on)."

    def run_from_argv(self, argv):
        # Pass daphne's own options through untouched: Django's parser would reject them.
        self.run_daphne(list(argv[2:]))

    def handle(self, *args, **options):
        self.run_daphne([])

    def run_daphne(self, args: list[str]) -> None:
        if not args or not APP_PATH_RE.match(args[-1]):
            module, _, name = settings.ASGI_APPLICATION.rpartition(".")
            args.append(f"{module}:{name}")
        cli = RealtimeCLI() if conf.get("WEBSOCKET_COMPRESSION") else CommandLineInterface()
        cli.run(args)
