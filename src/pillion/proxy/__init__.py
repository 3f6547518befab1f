"""The inbound reverse proxy: ``asyncio.Protocol`` classes that move bytes.

HTTP parsing and serialisation live in ``pillion.http`` (no I/O); header
rewriting rules in ``forwarding`` (pure); the rest is the event-driven plumbing:
``downstream`` (a client connection), ``exchange`` (one request and its
response), ``upstream`` (the pool of connections to the app), ``listener`` (the
component), ``accesslog`` and ``metrics``.
"""
