"""Who may pass: an allow-list of certificate identities, exact or by prefix. No I/O."""

from __future__ import annotations

from pillion.config.proxy import AuthorizationConfig

__all__ = ["Authorization"]


class Authorization:
    __slots__ = ("exact", "prefixes")

    def __init__(self, config: AuthorizationConfig) -> None:
        self.exact = frozenset(identity.encode() for identity in config.identities)
        self.prefixes = tuple(prefix.encode() for prefix in config.identity_prefixes)

    def allows(self, identity: bytes | None) -> bool:
        """Whether a caller with this identity (None: no certificate) may pass."""
        if identity is None:
            return False
        return identity in self.exact or identity.startswith(self.prefixes)
