"""Traffic capture: the nat-table rules that send a pod's TCP traffic to Pillion. No I/O.

Everything lives in Pillion's own chains, reached by one jump rule each from
``PREROUTING`` (inbound) and ``OUTPUT`` (outbound), so the rules are loaded with
``iptables-restore --noflush`` next to anyone else's and removed without touching
them::

    PREROUTING -p tcp -> PILLION_INBOUND: RETURN for excluded ports, else
                         PILLION_IN_REDIRECT: REDIRECT to the inbound listener
    OUTPUT -p tcp     -> PILLION_OUTPUT: RETURN for Pillion's uid, loopback (and
                         the pod's own IP, reached over lo), excluded CIDRs and
                         excluded ports, else
                         PILLION_REDIRECT: REDIRECT to the outbound listener

Outbound capture is only installed in mode ``all``. IPv6 gets the same rules from
``ip6tables-restore`` (its loopback ``::1``, its excluded CIDRs).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ALWAYS_EXCLUDED_INBOUND_PORTS",
    "CHAINS",
    "FAMILIES",
    "CaptureMode",
    "CaptureSettings",
    "Family",
    "cleanup_commands",
    "parse_cidrs",
    "parse_ports",
    "restore_input",
]

CaptureMode = Literal["inbound", "all"]

INBOUND_CHAIN = "PILLION_INBOUND"
IN_REDIRECT_CHAIN = "PILLION_IN_REDIRECT"
OUTPUT_CHAIN = "PILLION_OUTPUT"
REDIRECT_CHAIN = "PILLION_REDIRECT"
CHAINS = (INBOUND_CHAIN, IN_REDIRECT_CHAIN, OUTPUT_CHAIN, REDIRECT_CHAIN)

# The built-in chain each of ours is jumped to from, with the jump's match.
_JUMPS = (("PREROUTING", INBOUND_CHAIN), ("OUTPUT", OUTPUT_CHAIN))

ALWAYS_EXCLUDED_INBOUND_PORTS = (15000, 15020)  # Pillion's admin and status ports
LOOPBACK = {"ipv4": "127.0.0.0/8", "ipv6": "::1/128"}
Family = Literal["ipv4", "ipv6"]
FAMILIES: tuple[Family, ...] = ("ipv4", "ipv6")


@dataclass(frozen=True)
class CaptureSettings:
    mode: CaptureMode = "inbound"
    inbound_port: int = 15006
    outbound_port: int = 15001
    proxy_uid: int = 1337
    exclude_inbound_ports: tuple[int, ...] = ()
    exclude_outbound_cidrs: tuple[str, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("inbound", "all"):
            raise ValueError(f"mode must be inbound or all, not {self.mode!r}")
        for name in ("inbound_port", "outbound_port"):
            _check_port(getattr(self, name), name)
        for port in self.exclude_inbound_ports:
            _check_port(port, "excluded inbound port")
        for port in self.exclude_outbound_ports:
            _check_port(port, "excluded outbound port")
        if self.proxy_uid < 0:
            raise ValueError(f"proxy uid must be >= 0, not {self.proxy_uid}")
        for cidr in self.exclude_outbound_cidrs:
            _network(cidr)

    def inbound_exclusions(self) -> tuple[int, ...]:
        """The ports never captured inbound: the admin and status ports, then the
        ones asked for, each once, in order."""
        return tuple(dict.fromkeys((*ALWAYS_EXCLUDED_INBOUND_PORTS, *self.exclude_inbound_ports)))

    def outbound_exclusions(self, family: Family = "ipv4") -> tuple[str, ...]:
        """The excluded destinations of one family, normalised (``10.1.2.3/8`` is
        ``10.0.0.0/8``)."""
        version = 4 if family == "ipv4" else 6
        networks = (_network(c) for c in self.exclude_outbound_cidrs)
        return tuple(dict.fromkeys(str(n) for n in networks if n.version == version))


def restore_input(settings: CaptureSettings, family: Family = "ipv4") -> str:
    """The ``iptables-restore --noflush`` input installing the capture (for
    ``ip6tables-restore`` with ``family="ipv6"``: the same rules, its loopback and
    its excluded CIDRs).

    Declaring a chain (``:NAME - [0:0]``) empties it if it exists; the jump rules
    are appended, so remove an earlier capture first (:func:`cleanup_commands`)."""
    lines = ["*nat", f":{INBOUND_CHAIN} - [0:0]", f":{IN_REDIRECT_CHAIN} - [0:0]"]
    if settings.mode == "all":
        lines += [f":{OUTPUT_CHAIN} - [0:0]", f":{REDIRECT_CHAIN} - [0:0]"]
    lines.append(f"-A {IN_REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {settings.inbound_port}")
    lines += [
        f"-A {INBOUND_CHAIN} -p tcp -m tcp --dport {port} -j RETURN"
        for port in settings.inbound_exclusions()
    ]
    lines.append(f"-A {INBOUND_CHAIN} -p tcp -j {IN_REDIRECT_CHAIN}")
    lines.append(f"-A PREROUTING -p tcp -j {INBOUND_CHAIN}")
    if settings.mode == "all":
        lines.append(f"-A {REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {settings.outbound_port}")
        lines.append(f"-A {OUTPUT_CHAIN} -m owner --uid-owner {settings.proxy_uid} -j RETURN")
        lines.append(f"-A {OUTPUT_CHAIN} -d {LOOPBACK[family]} -j RETURN")
        # the pod calling its own IP (over lo): straight to the port, as Istio does
        lines.append(f"-A {OUTPUT_CHAIN} -o lo -j RETURN")
        lines += [
            f"-A {OUTPUT_CHAIN} -d {cidr} -j RETURN"
            for cidr in settings.outbound_exclusions(family)
        ]
        lines += [
            f"-A {OUTPUT_CHAIN} -p tcp -m tcp --dport {port} -j RETURN"
            for port in dict.fromkeys(settings.exclude_outbound_ports)
        ]
        lines.append(f"-A {OUTPUT_CHAIN} -j {REDIRECT_CHAIN}")
        lines.append(f"-A OUTPUT -p tcp -j {OUTPUT_CHAIN}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def cleanup_commands(listing: str | None = None) -> list[list[str]]:
    """The ``iptables`` argument lists removing the capture: the jump rules, then
    Pillion's chains (flushed first, as they refer to each other), nothing else.

    ``listing`` is the output of ``iptables -t nat -S``: only what it shows is
    removed (every copy of a jump rule), so cleaning twice is no error. Without
    it, every jump rule and chain is assumed present (for printing)."""
    if listing is None:
        jumps = [["-A", builtin, "-p", "tcp", "-j", chain] for builtin, chain in _JUMPS]
        chains = list(CHAINS)
    else:
        rows = [line.split() for line in listing.splitlines()]
        builtins = {builtin for builtin, _ in _JUMPS}
        jumps = [
            row
            for row in rows
            if len(row) >= 2
            and row[0] == "-A"
            and row[1] in builtins
            and _jump_target(row) in CHAINS
        ]
        present = {row[1] for row in rows if len(row) == 2 and row[0] == "-N"}
        chains = [chain for chain in CHAINS if chain in present]
    commands = [["-t", "nat", "-D", *row[1:]] for row in jumps]
    commands += [["-t", "nat", "-F", chain] for chain in chains]
    commands += [["-t", "nat", "-X", chain] for chain in chains]
    return commands


def parse_ports(text: str) -> tuple[int, ...]:
    """``"15020,15000"`` (blanks and empty items ignored) as ports; ValueError if not."""
    ports = []
    for item in _items(text):
        try:
            port = int(item)
        except ValueError:
            raise ValueError(f"not a port: {item!r}") from None
        _check_port(port, "port")
        ports.append(port)
    return tuple(ports)


def parse_cidrs(text: str) -> tuple[str, ...]:
    """``"10.0.0.0/8,192.168.1.1,fd00::/8"`` as normalised CIDRs; ValueError if not."""
    return tuple(str(_network(item)) for item in _items(text))


def _items(text: str) -> Iterable[str]:
    return (item.strip() for item in text.split(",") if item.strip())


def _jump_target(row: list[str]) -> str | None:
    for index, word in enumerate(row[:-1]):
        if word == "-j":
            return row[index + 1]
    return None


def _check_port(port: int, what: str) -> None:
    if not 1 <= port <= 65535:
        raise ValueError(f"{what} must be 1-65535, not {port}")


def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not a CIDR: {cidr!r}") from None
