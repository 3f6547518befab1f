"""The ``pillion`` command line (click). The top layer: parse, load, hand over.

Exit codes (the public contract): 0 ok, 1 runtime failure, 2 bad configuration
or usage (click's own usage errors are 2 as well).
"""

from pillion.cli.main import main

__all__ = ["main"]
