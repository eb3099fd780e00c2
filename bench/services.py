"""PostgreSQL and Redis for the benchmark's doorbell rows, started once per run on free loopback ports.

The same throw-away servers as the tests (``tests/services.py``: a private
``initdb`` cluster with durability off, ``redis-server`` without persistence);
the migrated template database is copied for each row (``CREATE DATABASE ... TEMPLATE``).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

from .servers import CREATE_USERS, ROOT, dexter_env

_names = itertools.count()


class Services:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.postgres = None
        self.redis = None
        self.template: str | None = None

    def fresh_database(self, label: str) -> str:
        if self.postgres is None:
            from tests.services import PostgresServer, _postgres_bindir

            self.postgres = PostgresServer(_postgres_bindir()).start()
            self.template = "bench_template"
            url = self.postgres.create_database(self.template)
            env = dexter_env(self.workdir / "unused.sqlite3", {"DATABASE_URL": url})
            for args in (["migrate", "--noinput", "-v0"], ["shell", "-c", CREATE_USERS]):
                subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)
        name = f"bench_{label.replace('-', '_')}_{next(_names)}"
        return self.postgres.create_database(name, template=self.template)

    def redis_url(self) -> str:
        if self.redis is None:
            from tests.conftest import require_program
            from tests.services import RedisServer

            self.redis = RedisServer(require_program("redis-server"), self.workdir).start()
        self.redis.flush()
        return self.redis.url

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
