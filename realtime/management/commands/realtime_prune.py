"""``manage.py realtime_prune``: prune what the servers would prune, by hand or from cron.

Servers prune on their own (every heartbeat, and history every few minutes), so
this is for a deployment with no server running, or to see the counts.
"""

from django.core.management.base import BaseCommand

from realtime import conf, instances, publisher


class Command(BaseCommand):
    help = (
        "Drop connections of servers that stopped heartbeating (their users go offline), "
        "end expired presence grace periods, and delete history past retention."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--stale-after",
            type=float,
            default=None,
            help="Seconds without a heartbeat after which a server is dead (default: WEBSOCKET_HEARTBEAT_INTERVAL).",
        )
        parser.add_argument("--no-history", action="store_true", help="Leave stored messages alone.")

    def handle(self, *args, stale_after=None, no_history=False, **options):
        if stale_after is None:
            stale_after = float(conf.get("WEBSOCKET_HEARTBEAT_INTERVAL"))
        pruned = instances.prune_dead_servers(stale_after)
        self.stdout.write(
            f"servers pruned: {pruned.servers}\n"
            f"connections pruned: {pruned.connections}\n"
            f"users set offline: {pruned.offline}"
        )
        if not no_history:
            self.stdout.write(f"messages deleted: {publisher.prune_history()}")
