"""The project's settings, plus a count of every database query (bench/query_counter.py)."""

from bench import query_counter
from dexter.settings import *  # noqa: F403

query_counter.install()
