"""Reference server: vanilla Channels, as the tutorial writes it.

A consumer per socket joins a group, a publication is one ``group_send`` and
every consumer encodes and sends it with ``send_json``; the in-memory layer
with its default capacity. Run with daphne:

    DJANGO_SETTINGS_MODULE=bench.ref_channels.settings daphne -p 8766 bench.ref_channels.asgi:application
"""
