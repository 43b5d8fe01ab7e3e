"""`postline dkim keygen`: a key file the sender can sign with and the DNS record for it."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner

from postline.common.cli import main
from postline.common.policy import DkimAlgorithm
from postline.sender import dkim_keys, signing
from tests.sender_support import sender_policy

MESSAGE = b"From: a@example.test\r\nTo: b@x.test\r\nSubject: s\r\n\r\nbody\r\n"


@pytest.mark.parametrize("algorithm", list(DkimAlgorithm))
def test_keygen_writes_a_private_key_and_prints_the_record(
    tmp_path: Path, algorithm: DkimAlgorithm
) -> None:
    out = tmp_path / "key.pem"
    args = ["dkim", "keygen", "Example.TEST", "--selector", "mail", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--algorithm", algorithm.value])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert f"private key: {out}" in result.output
    match = re.search(r"^(\S+) 3600 IN TXT \( (.*) \)$", result.output, re.M)
    assert match is not None, result.output
    assert match[1] == "mail._domainkey.example.test."
    strings = re.findall(r'"([^"]*)"', match[2])
    assert all(len(s) <= 255 for s in strings)
    value = "".join(strings)
    kind = "rsa" if algorithm == DkimAlgorithm.RSA_SHA256 else "ed25519"
    assert value.startswith(f"v=DKIM1; k={kind}; p=")
    if kind == "ed25519":
        assert len(base64.b64decode(value.split("p=")[1])) == 32  # RFC 8463: the raw key
    assert f"key: {{file: {out}}}" in result.output

    # The key signs, and the printed record verifies the signature.
    policy = sender_policy(
        f"""
        dkim:
          - {{domain: example.test, selector: mail, algorithm: {algorithm.value},
              key: {{file: {out}}}}}
        """
    )
    key = policy.server("default").dkim_for("example.test")
    assert key is not None
    signed = signing.sign(MESSAGE, key)

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        return value.encode() if name == b"mail._domainkey.example.test." else None

    assert dkim.verify(signed, dnsfunc=txt)


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "key.pem"
    out.write_text("precious")
    result = CliRunner().invoke(main, ["dkim", "keygen", "example.test", "--out", str(out)])
    assert result.exit_code != 0
    assert "exists" in result.output
    assert out.read_text() == "precious"


def test_record_of_an_existing_key(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_bytes(dkim_keys.generate(DkimAlgorithm.ED25519_SHA256))
    result = CliRunner().invoke(
        main, ["dkim", "record", "example.test", str(key), "--algorithm", "ed25519-sha256"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith('s1._domainkey.example.test. 3600 IN TXT ( "v=DKIM1; k=ed25519')


def test_a_dkimpy_seed_file_also_signs(tmp_path: Path) -> None:
    pem = dkim_keys.generate(DkimAlgorithm.ED25519_SHA256)
    seed = tmp_path / "seed.key"
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(pem, password=None)
    seed.write_bytes(base64.b64encode(private.private_bytes_raw()) + b"\n")  # type: ignore[union-attr]
    policy = sender_policy(
        f"""
        dkim:
          - {{domain: example.test, selector: s1, algorithm: ed25519-sha256,
              key: {{file: {seed}}}}}
        """
    )
    key = policy.server("default").dkim_for("example.test")
    assert key is not None
    record = dkim_keys.dns_record("example.test", "s1", DkimAlgorithm.ED25519_SHA256, pem)

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        return record.value.encode() if name == record.name.encode() else None

    assert dkim.verify(signing.sign(MESSAGE, key), dnsfunc=txt)


def test_openssl_rsa_signatures_are_dkimpys_bytes() -> None:
    import hashlib

    import dkim.crypto

    pem = dkim_keys.generate(DkimAlgorithm.RSA_SHA256, bits=1024)
    private = dkim.crypto.parse_pem_private_key(pem)
    for data in (b"", b"header hash input"):
        ours = signing.rsassa_pkcs1_v1_5_sign(hashlib.sha256(data), private)
        theirs = dkim.crypto.RSASSA_PKCS1_v1_5_sign(hashlib.sha256(data), private)
        assert ours == theirs
    assert dkim.RSASSA_PKCS1_v1_5_sign is signing.rsassa_pkcs1_v1_5_sign  # what dkimpy calls
