"""Traffic capture: the rule builder, the CLI, and real capture between two
network namespaces (a client, and a pod with its app and Pillion)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from pillion.cli.main import cli
from pillion.kube.iptables import (
    CaptureSettings,
    cleanup_commands,
    parse_cidrs,
    parse_ports,
    restore_input,
)
from tests.helpers import PillionProcess, running_pillion, wait_until

# -- the rule builder ---------------------------------------------------------


def _rules(text: str) -> list[str]:
    return text.splitlines()


def test_inbound_rules_default() -> None:
    assert _rules(restore_input(CaptureSettings())) == [
        "*nat",
        ":PILLION_INBOUND - [0:0]",
        ":PILLION_IN_REDIRECT - [0:0]",
        "-A PILLION_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "-A PILLION_INBOUND -p tcp -m tcp --dport 15000 -j RETURN",
        "-A PILLION_INBOUND -p tcp -m tcp --dport 15020 -j RETURN",
        "-A PILLION_INBOUND -p tcp -j PILLION_IN_REDIRECT",
        "-A PREROUTING -p tcp -j PILLION_INBOUND",
        "COMMIT",
    ]


def test_inbound_mode_leaves_output_alone() -> None:
    text = restore_input(CaptureSettings(mode="inbound", exclude_outbound_cidrs=("10.0.0.0/8",)))
    assert "OUTPUT" not in text
    assert "PILLION_REDIRECT" not in text
    assert "uid-owner" not in text
    assert "10.0.0.0/8" not in text


def test_all_mode_rules() -> None:
    settings = CaptureSettings(
        mode="all",
        inbound_port=16006,
        outbound_port=16001,
        proxy_uid=4242,
        exclude_inbound_ports=(22, 15020),
        exclude_outbound_cidrs=("10.1.2.3/8", "192.168.0.0/16"),
        exclude_outbound_ports=(5432, 3306, 5432),
    )
    assert _rules(restore_input(settings)) == [
        "*nat",
        ":PILLION_INBOUND - [0:0]",
        ":PILLION_IN_REDIRECT - [0:0]",
        ":PILLION_OUTPUT - [0:0]",
        ":PILLION_REDIRECT - [0:0]",
        "-A PILLION_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006",
        "-A PILLION_INBOUND -p tcp -m tcp --dport 15000 -j RETURN",
        "-A PILLION_INBOUND -p tcp -m tcp --dport 15020 -j RETURN",
        "-A PILLION_INBOUND -p tcp -m tcp --dport 22 -j RETURN",
        "-A PILLION_INBOUND -p tcp -j PILLION_IN_REDIRECT",
        "-A PREROUTING -p tcp -j PILLION_INBOUND",
        "-A PILLION_REDIRECT -p tcp -j REDIRECT --to-ports 16001",
        "-A PILLION_OUTPUT -m owner --uid-owner 4242 -j RETURN",
        "-A PILLION_OUTPUT -d 127.0.0.0/8 -j RETURN",
        "-A PILLION_OUTPUT -o lo -j RETURN",
        "-A PILLION_OUTPUT -d 10.0.0.0/8 -j RETURN",
        "-A PILLION_OUTPUT -d 192.168.0.0/16 -j RETURN",
        "-A PILLION_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN",
        "-A PILLION_OUTPUT -p tcp -m tcp --dport 3306 -j RETURN",
        "-A PILLION_OUTPUT -j PILLION_REDIRECT",
        "-A OUTPUT -p tcp -j PILLION_OUTPUT",
        "COMMIT",
    ]


def test_own_uid_and_loopback_return_before_the_redirect() -> None:
    rules = _rules(restore_input(CaptureSettings(mode="all")))
    redirect = rules.index("-A PILLION_OUTPUT -j PILLION_REDIRECT")
    assert rules.index("-A PILLION_OUTPUT -m owner --uid-owner 1337 -j RETURN") < redirect
    assert rules.index("-A PILLION_OUTPUT -d 127.0.0.0/8 -j RETURN") < redirect
    assert rules.index("-A PILLION_OUTPUT -o lo -j RETURN") < redirect


def test_exclusions_are_deduplicated_and_the_status_ports_always_excluded() -> None:
    settings = CaptureSettings(exclude_inbound_ports=(8443, 15000, 8443))
    assert settings.inbound_exclusions() == (15000, 15020, 8443)
    settings = CaptureSettings(mode="all", exclude_outbound_cidrs=("10.0.0.1/8", "10.0.0.0/8"))
    assert settings.outbound_exclusions() == ("10.0.0.0/8",)


def test_only_pillion_chains_and_jumps_are_written() -> None:
    for line in _rules(restore_input(CaptureSettings(mode="all", exclude_inbound_ports=(1,)))):
        if line.startswith("-A "):
            chain = line.split()[1]
            assert chain.startswith("PILLION_") or line.endswith(
                ("-j PILLION_INBOUND", "-j PILLION_OUTPUT")
            )
        if line.startswith(":"):
            assert line.startswith(":PILLION_")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "none"}, "mode must be"),
        ({"inbound_port": 0}, "inbound_port must be 1-65535"),
        ({"outbound_port": 70000}, "outbound_port must be 1-65535"),
        ({"exclude_inbound_ports": (0,)}, "excluded inbound port"),
        ({"proxy_uid": -1}, "proxy uid"),
        ({"exclude_outbound_cidrs": ("not-a-cidr",)}, "not a CIDR"),
        ({"exclude_outbound_ports": (65536,)}, "excluded outbound port"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CaptureSettings(**kwargs)  # type: ignore[arg-type]


def test_parse_lists() -> None:
    assert parse_ports(" 15020, 15000,,8080 ") == (15020, 15000, 8080)
    assert parse_ports("") == ()
    assert parse_cidrs("10.0.0.0/8, 192.168.1.1") == ("10.0.0.0/8", "192.168.1.1/32")
    with pytest.raises(ValueError, match="not a port"):
        parse_ports("80,http")
    with pytest.raises(ValueError, match="1-65535"):
        parse_ports("99999")
    with pytest.raises(ValueError, match="not a CIDR"):
        parse_cidrs("10.0.0.0/33")


def test_cleanup_without_listing_removes_everything_of_ours() -> None:
    assert cleanup_commands() == [
        ["-t", "nat", "-D", "PREROUTING", "-p", "tcp", "-j", "PILLION_INBOUND"],
        ["-t", "nat", "-D", "OUTPUT", "-p", "tcp", "-j", "PILLION_OUTPUT"],
        ["-t", "nat", "-F", "PILLION_INBOUND"],
        ["-t", "nat", "-F", "PILLION_IN_REDIRECT"],
        ["-t", "nat", "-F", "PILLION_OUTPUT"],
        ["-t", "nat", "-F", "PILLION_REDIRECT"],
        ["-t", "nat", "-X", "PILLION_INBOUND"],
        ["-t", "nat", "-X", "PILLION_IN_REDIRECT"],
        ["-t", "nat", "-X", "PILLION_OUTPUT"],
        ["-t", "nat", "-X", "PILLION_REDIRECT"],
    ]


def test_cleanup_follows_the_listing_and_keeps_other_rules() -> None:
    listing = "\n".join(
        [
            "-P PREROUTING ACCEPT",
            "-P OUTPUT ACCEPT",
            "-N OTHER",
            "-N PILLION_INBOUND",
            "-N PILLION_IN_REDIRECT",
            "-A PREROUTING -p tcp -j OTHER",
            "-A PREROUTING -p tcp -j PILLION_INBOUND",
            "-A PREROUTING -p tcp -j PILLION_INBOUND",
            "-A OUTPUT -d 10.0.0.0/8 -j RETURN",
            "-A PILLION_INBOUND -p tcp -j PILLION_IN_REDIRECT",
        ]
    )
    assert cleanup_commands(listing) == [
        ["-t", "nat", "-D", "PREROUTING", "-p", "tcp", "-j", "PILLION_INBOUND"],
        ["-t", "nat", "-D", "PREROUTING", "-p", "tcp", "-j", "PILLION_INBOUND"],
        ["-t", "nat", "-F", "PILLION_INBOUND"],
        ["-t", "nat", "-F", "PILLION_IN_REDIRECT"],
        ["-t", "nat", "-X", "PILLION_INBOUND"],
        ["-t", "nat", "-X", "PILLION_IN_REDIRECT"],
    ]


def test_cleanup_of_nothing_is_nothing() -> None:
    assert cleanup_commands("-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n") == []


# -- the command --------------------------------------------------------------


def test_cli_dry_run_prints_the_rules_of_the_injected_args() -> None:
    from pillion.kube.containers import init_container

    args = init_container("image", "all")["args"]
    result = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    settings = CaptureSettings(mode="all")
    assert result.output == (
        "# iptables-restore --noflush\n" + restore_input(settings)
        + "# ip6tables-restore --noflush\n" + restore_input(settings, "ipv6")
    )  # fmt: skip
    only_v4 = CliRunner().invoke(cli, [*args, "--dry-run", "--no-ipv6"])
    assert only_v4.output == "# iptables-restore --noflush\n" + restore_input(settings)


def test_ipv6_rules_have_their_own_loopback_and_exclusions() -> None:
    settings = CaptureSettings(
        mode="all", exclude_outbound_cidrs=("10.0.0.0/8", "fd00::1/8", "2001:db8::/32")
    )
    v4, v6 = _rules(restore_input(settings)), _rules(restore_input(settings, "ipv6"))
    assert "-A PILLION_OUTPUT -d 127.0.0.0/8 -j RETURN" in v4
    assert "-A PILLION_OUTPUT -d ::1/128 -j RETURN" in v6
    assert [r for r in v4 if r.startswith("-A PILLION_OUTPUT -d ")] == [
        "-A PILLION_OUTPUT -d 127.0.0.0/8 -j RETURN",
        "-A PILLION_OUTPUT -d 10.0.0.0/8 -j RETURN",
    ]
    assert [r for r in v6 if r.startswith("-A PILLION_OUTPUT -d ")] == [
        "-A PILLION_OUTPUT -d ::1/128 -j RETURN",
        "-A PILLION_OUTPUT -d fd00::/8 -j RETURN",
        "-A PILLION_OUTPUT -d 2001:db8::/32 -j RETURN",
    ]
    # everything else is the same
    rest = [r for r in v4 if not r.startswith("-A PILLION_OUTPUT -d ")]
    assert rest == [r for r in v6 if not r.startswith("-A PILLION_OUTPUT -d ")]


def test_cli_dry_run_cleanup() -> None:
    result = CliRunner().invoke(cli, ["iptables", "--cleanup", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "iptables -t nat -D PREROUTING -p tcp -j PILLION_INBOUND"
    assert "ip6tables -t nat -D PREROUTING -p tcp -j PILLION_INBOUND" in lines


@pytest.mark.parametrize(
    "args",
    [
        ["--capture", "sideways"],
        ["--inbound-port", "0"],
        ["--exclude-inbound-ports", "80,http"],
        ["--exclude-outbound-cidrs", "nowhere"],
        ["--exclude-outbound-ports", "5432,-1"],
    ],
)
def test_cli_bad_options_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["iptables", *args, "--dry-run"])
    assert result.exit_code == 2, result.output


def test_cli_exits_1_when_iptables_fails(tmp_path: Path) -> None:
    """An ``iptables`` that refuses, first on PATH (as without NET_ADMIN)."""
    fake = tmp_path / "iptables"
    fake.write_text("#!/bin/sh\necho 'Permission denied (you must be root)' >&2\nexit 4\n")
    fake.chmod(0o755)
    done = subprocess.run(
        [sys.executable, "-m", "pillion", "iptables"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        check=False,
    )
    assert done.returncode == 1, done
    assert "Permission denied" in done.stderr
    assert done.stderr.startswith("error: ")


# -- real capture in network namespaces ---------------------------------------


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=30)


@dataclass
class Pod:
    pod: str  # namespace names
    client: str
    pod_ip: str

    def in_pod(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _sh("ip", "netns", "exec", self.pod, *argv, check=check)

    def pillion_iptables(self, *args: str) -> None:
        done = self.in_pod(sys.executable, "-m", "pillion", "iptables", *args, check=False)
        assert done.returncode == 0, done

    def curl_from_client(self, url: str) -> str:
        done = _sh("ip", "netns", "exec", self.client, "curl", "-s", "-m", "5", url, check=False)
        return done.stdout if done.returncode == 0 else ""

    def nat_rules(self) -> list[str]:
        return self.in_pod("iptables", "-t", "nat", "-S").stdout.splitlines()


@pytest.fixture
def pod() -> Iterator[Pod]:
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (CI runs as root)")
    tag = f"{random.randrange(16**6):06x}"
    subnet = random.randrange(1, 255)
    made = Pod(f"pod-{tag}", f"client-{tag}", f"10.123.{subnet}.2")
    created: list[str] = []
    try:
        for name in (made.pod, made.client):
            _sh("ip", "netns", "add", name)
            created.append(name)
            _sh("ip", "-n", name, "link", "set", "lo", "up")
        veth = f"vp{tag}"
        _sh("ip", "link", "add", veth, "netns", made.client, "type", "veth",
            "peer", "name", f"{veth}b", "netns", made.pod)  # fmt: skip
        _sh("ip", "-n", made.client, "addr", "add", f"10.123.{subnet}.1/30", "dev", veth)
        _sh("ip", "-n", made.pod, "addr", "add", f"{made.pod_ip}/30", "dev", f"{veth}b")
        _sh("ip", "-n", made.client, "link", "set", veth, "up")
        _sh("ip", "-n", made.pod, "link", "set", f"{veth}b", "up")
        yield made
    finally:
        for name in created:
            _sh("ip", "netns", "del", name, check=False)


def _inbound_requests(pod: Pod, status_port: int) -> float:
    done = pod.in_pod(
        "curl", "-s", "-m", "5", f"http://127.0.0.1:{status_port}/metrics", check=False
    )
    total = 0.0
    for row in done.stdout.splitlines():
        name, _, value = row.rpartition(" ")
        if name.startswith("pillion_requests_total{") and 'listener="inbound"' in name:
            total += float(value)
    return total


def test_inbound_capture_between_namespaces(pod: Pod, tmp_path: Path) -> None:
    status = 15020  # and admin 15000: the pod's own loopback, nothing else is there
    proxy = "proxy: {inbound: [{name: inbound, listen: 0.0.0.0:15006}]}\n"
    in_pod = ["ip", "netns", "exec", pod.pod]
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("hello from the app\n")
    app = subprocess.Popen(
        ["ip", "netns", "exec", pod.pod, sys.executable, "-m", "http.server", "8080",
         "--bind", "0.0.0.0", "--directory", str(site)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with running_pillion(
            tmp_path, proxy, 8080, ports=(15000, status), wrapper=in_pod, ready=False
        ) as pillion:  # its status port is inside the pod: waited on below
            url = f"http://{pod.pod_ip}:8080/"
            # Before capture: the app answers directly, and Pillion comes up.
            wait_until(lambda: pod.curl_from_client(url) == "hello from the app\n")
            wait_until(lambda: _is_up(pod, status, pillion), timeout=20)
            assert _inbound_requests(pod, status) == 0

            pod.pillion_iptables("--mode", "inbound")
            pod.pillion_iptables("--capture", "inbound")  # again: replaces, not duplicates
            rules = pod.nat_rules()
            assert rules.count("-A PREROUTING -p tcp -j PILLION_INBOUND") == 1, rules
            assert not [r for r in rules if r.startswith("-A OUTPUT")], rules

            assert pod.curl_from_client(url) == "hello from the app\n"
            wait_until(lambda: _inbound_requests(pod, status) == 1)

            pod.pillion_iptables("--cleanup")
            pod.pillion_iptables("--cleanup")  # nothing left to remove: still fine
            assert not [r for r in pod.nat_rules() if "PILLION" in r]
            assert pod.curl_from_client(url) == "hello from the app\n"
            assert pod.curl_from_client(url) == "hello from the app\n"
            assert _inbound_requests(pod, status) == 1
    finally:
        app.terminate()
        app.wait(timeout=10)


def _is_up(pod: Pod, status_port: int, pillion: PillionProcess) -> bool:
    if pillion.proc.poll() is not None:
        raise AssertionError(f"pillion exited {pillion.proc.returncode}: {pillion.output()}")
    done = pod.in_pod(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2",
        f"http://127.0.0.1:{status_port}/healthz/ready", check=False,
    )  # fmt: skip
    return done.stdout == "200"


def test_ipv6_listeners_are_skipped_where_the_pod_has_no_ipv6(tmp_path: Path) -> None:
    """The generated config listens on both families; in a namespace with IPv6 turned
    off, the IPv6 listeners are skipped with a warning and Pillion serves IPv4."""
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (CI runs as root)")
    name = f"nov6-{random.randrange(16**6):06x}"
    _sh("ip", "netns", "add", name)
    try:
        _sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        _sh("ip", "-n", name, "link", "set", "lo", "up")
        proxy = (
            "proxy:\n  inbound: [{name: inbound}, {name: inbound-ipv6, listen: '[::]:15006'}]\n"
            "  outbound:\n    - {name: outbound, original_destination: {}}\n"
            "    - {name: outbound-ipv6, listen: '[::1]:15001', original_destination: {}}\n"
        )
        in_namespace = ["ip", "netns", "exec", name]
        with running_pillion(
            tmp_path, proxy, ports=(15000, 15020), wrapper=in_namespace, ready=False
        ) as pillion:
            skipped = pillion.wait_for_log("no IPv6 here: listener not started")
            assert skipped["listener"] == "outbound-ipv6"
            status = _sh(
                "ip",
                "netns",
                "exec",
                name,
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://127.0.0.1:15020/healthz/ready",
                check=False,
            )
            assert status.stdout == "200"
        assert pillion.proc.returncode == 0
    finally:
        _sh("ip", "netns", "del", name, check=False)
