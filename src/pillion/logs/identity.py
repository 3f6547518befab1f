"""Which file is which, across renames, restarts and inode reuse. No I/O.

A file is known by its device and inode *and* a fingerprint of its first line
(up to ``FINGERPRINT_BYTES``): a rotated file keeps its identity under its new
name, and a new file that reuses a freed inode gets a new one (unless its first
line is byte for byte the same, when nothing can tell them apart). A file whose
first line is not complete yet has no identity: it is read once it has one.
"""

from __future__ import annotations

import hashlib

__all__ = ["FINGERPRINT_BYTES", "FileKey", "fingerprint"]

FINGERPRINT_BYTES = 256

FileKey = tuple[int, int, str]  # device, inode, fingerprint


def fingerprint(head: bytes) -> str | None:
    """The fingerprint of a file starting with ``head`` (its first bytes), or None
    while its first line is incomplete and shorter than ``FINGERPRINT_BYTES``."""
    end = head.find(b"\n", 0, FINGERPRINT_BYTES)
    if end >= 0:
        first = head[: end + 1]
    elif len(head) >= FINGERPRINT_BYTES:
        first = head[:FINGERPRINT_BYTES]
    else:
        return None
    return hashlib.blake2b(first, digest_size=12).hexdigest()
