"""The fan-out benchmark: ``python -m bench.run`` (see bench/README.md).

It starts real server processes (Dexter under daphne or uvicorn, and two
reference servers kept here: ``ref_raw`` and ``ref_channels``), pinned to one
core, drives them from a load generator on the other core, and reports CPU,
latency, loss, bytes and memory per connection.
"""
