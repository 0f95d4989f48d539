"""Keys: rotation by key_id, Ed25519 verification with the public key only, key loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aegis.core import (
    EXIT_INTACT,
    EXIT_TAMPERED,
    EXIT_USAGE,
    ConfigError,
    Ed25519Signer,
    Ed25519Verifier,
    FileReceiptSink,
    HmacSha256Signer,
    Keyring,
    ManualClock,
    Signer,
    canonical_bytes,
    verify_trail,
)

K2_SECRET = b"the-second-receipt-secret-456789"


async def write_with(directory: Path, kit: Any, signer: Signer, clock: ManualClock, n: int) -> None:
    """One writer's life: open the trail (resuming its chain), write ``n`` receipts, close."""
    sink = FileReceiptSink(directory, checkpoint_signer=signer, checkpoint_every=2)
    gate = kit.make_gate(signer, sink, clock)
    for i in range(n):
        await kit.ok_call(gate, "acme", f"{signer.key_id}-{i}")
    await sink.close()


@pytest.fixture
async def rotated(tmp_path: Path, kit: Any, clock: ManualClock) -> Path:
    """Three receipts signed with k1, then (after a restart with a new key) three with k2."""
    directory = tmp_path / "trail"
    await write_with(directory, kit, HmacSha256Signer(key_id="k1", secret=kit.SECRET), clock, 3)
    await write_with(directory, kit, HmacSha256Signer(key_id="k2", secret=K2_SECRET), clock, 3)
    return directory


def k1(kit: Any) -> HmacSha256Signer:
    return HmacSha256Signer(key_id="k1", secret=kit.SECRET)


def k2() -> HmacSha256Signer:
    return HmacSha256Signer(key_id="k2", secret=K2_SECRET)


def test_a_rotated_trail_verifies_with_both_keys(rotated: Path, kit: Any) -> None:
    records = [
        json.loads(line) for line in next(rotated.glob("receipts-*")).read_bytes().splitlines()
    ]
    assert [r["signature"]["key_id"] for r in records] == ["k1"] * 3 + ["k2"] * 3
    assert [r["seq"] for r in records] == list(range(6))  # one chain across the restart
    report = verify_trail([rotated], Keyring([k1(kit), k2()]))
    assert report.problems == ()
    assert report.summary.receipts == 6


def test_a_retired_key_left_out_is_named_per_line(rotated: Path, kit: Any) -> None:
    report = verify_trail([rotated], Keyring([k2()]))
    segment = next(rotated.glob("receipts-*"))
    receipt_problems = [(p.kind, p.where) for p in report.problems if "checkpoints" not in p.where]
    assert receipt_problems == [("unknown_key", f"{segment}:{n}") for n in (1, 2, 3)]
    assert "signed with key_id 'k1', which is not among the verification keys (k2)" in (
        report.problems[0].message
    )
    assert report.exit_code == EXIT_TAMPERED


async def test_a_wrong_secret_for_a_key_id_fails_its_signatures(rotated: Path, kit: Any) -> None:
    wrong = HmacSha256Signer(key_id="k1", secret=b"not-the-secret-of-k1-at-all!")
    report = verify_trail([rotated], Keyring([wrong, k2()]))
    assert {p.kind for p in report.problems} == {"signature", "checkpoint"}
    assert report.summary.receipts == 3


async def test_the_cli_takes_rotated_keys_from_env_and_key_files(
    rotated: Path, kit: Any, tmp_path: Path
) -> None:
    env = kit.cli_env(f"k1:env:{kit.SECRET_ENV}")
    env["K2_SECRET"] = K2_SECRET.decode()
    env["AEGIS_RECEIPT_KEYS"] += ",k2:env:K2_SECRET"
    assert kit.run_cli("verify", str(rotated), env=env).returncode == EXIT_INTACT
    secret_file = tmp_path / "k2.secret"
    secret_file.write_bytes(K2_SECRET + b"\n")
    key_file = tmp_path / "keys.json"
    key_file.write_text(json.dumps({"keys": [{"key_id": "k2", "secret_file": str(secret_file)}]}))
    env = kit.cli_env(f"k1:env:{kit.SECRET_ENV}")
    result = kit.run_cli("verify", "--key-file", str(key_file), str(rotated), env=env)
    assert result.returncode == EXIT_INTACT, result.stdout
    only_k1 = kit.run_cli("verify", str(rotated), env=kit.cli_env())
    assert only_k1.returncode == EXIT_TAMPERED
    assert "[unknown_key] signed with key_id 'k2'" in only_k1.stdout
    for output in (result.stdout + result.stderr, only_k1.stdout + only_k1.stderr):
        assert K2_SECRET.decode() not in output
        assert kit.SECRET.decode() not in output


async def test_the_cli_refuses_to_run_without_keys(rotated: Path, kit: Any) -> None:
    env = kit.cli_env("")
    result = kit.run_cli("verify", str(rotated), env=env)
    assert result.returncode == EXIT_USAGE
    assert "no verification keys: set AEGIS_RECEIPT_KEYS or pass --key-file" in result.stderr
    missing = kit.run_cli("verify", str(rotated), env=kit.cli_env("k1:env:NOT_SET_ANYWHERE"))
    assert missing.returncode == EXIT_USAGE
    assert "environment variable NOT_SET_ANYWHERE is not set" in missing.stderr


async def test_ed25519_receipts_verify_with_the_public_key_only(
    tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    signer = Ed25519Signer.generate(key_id="ed-2026")
    directory = tmp_path / "trail"
    sink = FileReceiptSink(directory, checkpoint_signer=signer, checkpoint_every=3)
    gate = kit.make_gate(signer, sink, clock)
    await kit.write_mixed_calls(gate, clock)
    await sink.close()
    public = signer.verifier().public_key_b64()
    auditor = Keyring([Ed25519Verifier(key_id="ed-2026", public_key=public)])
    assert not hasattr(auditor.get("ed-2026"), "sign")  # the auditor cannot forge
    report = verify_trail([directory], auditor)
    assert report.problems == ()
    assert (report.summary.receipts, report.summary.checkpoints) == (8, 3)
    # The PEM form, and the CLI with the public key inline in the environment.
    pem_ring = Keyring([Ed25519Verifier(key_id="ed-2026", public_key=signer.public_key_pem())])
    assert verify_trail([directory], pem_ring).problems == ()
    result = kit.run_cli("verify", str(directory), env=kit.cli_env(f"ed-2026:ed25519:{public}"))
    assert result.returncode == EXIT_INTACT, result.stdout + result.stderr
    # A receipt re-signed by another Ed25519 key under the same key_id does not verify.
    segment = next(directory.glob("receipts-*"))
    lines = segment.read_bytes().splitlines()
    record = json.loads(lines[2])
    record["actual_usd"] = "0"
    del record["signature"]
    impostor = Ed25519Signer.generate(key_id="ed-2026")
    sig = impostor.sign(canonical_bytes(record))
    record["signature"] = {"alg": "EdDSA", "key_id": "ed-2026", "sig": sig}
    lines[2] = canonical_bytes(record)
    segment.write_bytes(b"\n".join(lines) + b"\n")
    tampered = verify_trail([directory], auditor)
    assert [(p.kind, p.where) for p in tampered.problems][:2] == [
        ("signature", f"{segment}:3"),
        ("chain", f"{segment}:4"),
    ]


def test_ed25519_keys_round_trip_and_reject_garbage() -> None:
    signer = Ed25519Signer.generate(key_id="e1")
    again = Ed25519Signer(key_id="e1", private_key=signer.public_key_bytes())
    assert again.public_key_bytes() != signer.public_key_bytes()  # a seed, not a public key
    payload = b'{"a":1}'
    sig = signer.sign(payload)
    assert signer.verify(payload, sig)
    assert not signer.verify(b'{"a":2}', sig)
    assert not signer.verifier().verify(payload, "not base64url!")
    assert "private_key=<redacted>" in repr(signer)
    with pytest.raises(ConfigError, match="32 bytes"):
        Ed25519Verifier(key_id="e1", public_key=b"short")


def test_keyring_specs_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KEY_ID:KIND:VALUE"):
        Keyring.from_spec("k1")
    with pytest.raises(ConfigError, match="unknown key source 'vault'"):
        Keyring.from_spec("k1:vault:x")
    with pytest.raises(ConfigError, match="two verification keys have key_id 'k1'"):
        Keyring.from_spec("k1:env:A,k1:env:A", {"A": "a" * 32})
    with pytest.raises(ConfigError, match="at least 16 bytes") as short:
        Keyring.from_spec("k1:env:A", {"A": "tiny-secret"})
    assert "tiny-secret" not in str(short.value)
    ring = Keyring.from_spec("k1:env:A, k2:env:B", {"A": "a" * 32, "B": "base64url:" + "Yg" * 16})
    assert ring.key_ids() == ["k1", "k2"]
    bad = tmp_path / "keys.json"
    bad.write_text('{"keys": [{"key_id": "k1", "alg": "RS256"}]}')
    with pytest.raises(ConfigError, match="alg must be HS256 or EdDSA"):
        Keyring.from_key_file(bad)


async def test_an_auditor_with_the_checkpoint_public_key_only(
    tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    # The hybrid: cheap HMAC on every receipt, Ed25519 on the checkpoints.
    checkpoint_key = Ed25519Signer.generate(key_id="cp-2026")
    directory = tmp_path / "trail"
    sink = FileReceiptSink(directory, checkpoint_signer=checkpoint_key, checkpoint_every=4)
    gate = kit.make_gate(k1(kit), sink, clock)
    await kit.write_mixed_calls(gate, clock)  # 8 receipts: checkpoints at 4 and 8
    await kit.ok_call(gate, "acme", "after")  # the 9th: covered only by the close checkpoint
    await sink.close()
    auditor = Keyring([checkpoint_key.verifier()])
    assert {p.kind for p in verify_trail([directory], auditor).problems} == {"unknown_key"}
    report = verify_trail([directory], auditor, receipt_signatures=False)
    assert report.problems == ()
    assert report.summary.covered == 9
    assert "9 of 9 receipt(s) are authenticated by a signed checkpoint" in report.notes[0]
    public = f"cp-2026:ed25519:{checkpoint_key.verifier().public_key_b64()}"
    result = kit.run_cli("verify", "--chain-only", str(directory), env=kit.cli_env(public))
    assert result.returncode == EXIT_INTACT, result.stdout
    # Editing a covered receipt breaks the chain to the signed head, even unsigned-checked.
    segment = next(directory.glob("receipts-*"))
    lines = segment.read_bytes().splitlines()
    lines[1] = canonical_bytes({**json.loads(lines[1]), "actual_usd": "0"})
    segment.write_bytes(b"\n".join(lines) + b"\n")
    tampered = verify_trail([directory], auditor, receipt_signatures=False)
    assert [(p.kind, p.where) for p in tampered.problems] == [("chain", f"{segment}:3")]


@pytest.mark.parametrize("length", [16, 32, 63, 64, 65, 200])
def test_hs256_is_rfc_2104_hmac_sha256(length: int) -> None:
    import base64
    import hmac
    import pickle

    secret = bytes(range(length)) if length < 256 else b"k" * length
    signer = HmacSha256Signer(key_id="k", secret=secret)
    for payload in (b"", b'{"a":1}', b"x" * 5000):
        expected = base64.urlsafe_b64encode(hmac.digest(secret, payload, "sha256")).rstrip(b"=")
        assert signer.sign(payload) == expected.decode()
        assert signer.verify(payload, expected.decode())
        assert not signer.verify(payload + b" ", expected.decode())
    copy = pickle.loads(pickle.dumps(signer))  # as handed to the verifier's worker processes
    assert copy.sign(b"abc") == signer.sign(b"abc")
    assert "secret=<redacted>" in repr(copy)
