"""``pillion certs``: a dev CA and workload certificates, checked with ``openssl``."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from tests.cli.test_cli import pillion


def test_init_then_issue_makes_a_chain_openssl_verifies(tmp_path: Path) -> None:
    ca_dir, out = tmp_path / "ca", tmp_path / "certs"
    assert pillion("certs", "init", "--dir", str(ca_dir)).returncode == 0
    result = pillion(
        "certs", "issue", "--ca-dir", str(ca_dir), "--out", str(out), "--name", "checkout",
        "--spiffe-id", "spiffe://cluster.local/ns/shop/sa/checkout", "--dns", "checkout.shop",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for key in (ca_dir / "ca.key", out / "checkout.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600  # keys readable by the owner only
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_dir / "ca.crt"), str(out / "checkout.crt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = subprocess.run(
        ["openssl", "x509", "-in", str(out / "checkout.crt"), "-noout", "-text"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "URI:spiffe://cluster.local/ns/shop/sa/checkout" in text
    assert "DNS:checkout.shop" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "ASN1 OID: prime256v1" in text


def test_init_refuses_to_replace_a_ca(tmp_path: Path) -> None:
    assert pillion("certs", "init", "--dir", str(tmp_path)).returncode == 0
    before = (tmp_path / "ca.crt").read_bytes()
    again = pillion("certs", "init", "--dir", str(tmp_path))
    assert again.returncode == 2
    assert "already has a CA; --force replaces it" in again.stderr
    assert (tmp_path / "ca.crt").read_bytes() == before
    assert pillion("certs", "init", "--dir", str(tmp_path), "--force").returncode == 0
    assert (tmp_path / "ca.crt").read_bytes() != before


def test_issue_refuses_bad_input_with_exit_2(tmp_path: Path) -> None:
    missing = pillion("certs", "issue", "--ca-dir", str(tmp_path / "none"), "--out",
                      str(tmp_path), "--name", "x", "--dns", "x")  # fmt: skip
    assert missing.returncode == 2
    assert "run `pillion certs init` first" in missing.stderr
    assert pillion("certs", "init", "--dir", str(tmp_path)).returncode == 0
    cases = [
        (["--spiffe-id", "http://not-spiffe"], "is not a SPIFFE ID"),
        ([], "needs a SPIFFE ID, a DNS name, an IP or a common name"),
        (["--ip", "999.1.1.1"], "does not appear to be an IPv4 or IPv6 address"),
    ]
    for extra, message in cases:
        result = pillion("certs", "issue", "--ca-dir", str(tmp_path), "--out", str(tmp_path),
                         "--name", "x", *extra)  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.crt").exists()
