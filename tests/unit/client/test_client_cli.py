"""bioauth-client: each command against a real loopback server, JSON out, exit codes."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from bioauth.client import cli
from bioauth.wire import transaction_hash_b64

from .conftest import ScriptedServer
from .tokens_support import AUDIENCE, ISSUER, SigningKey, claims, header, transaction

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def run(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, dict[str, Any] | None, str]:
    status = await asyncio.to_thread(cli.main, list(argv))
    out, err = capsys.readouterr()
    return status, (json.loads(out) if out.strip() else None), err


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "face.png"
    path.write_bytes(PNG)
    return path


async def test_enroll_sends_images_and_consent(
    scripted_server: ScriptedServer, image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """enroll reads the files, sends the consent, prints the response and idempotency key."""
    status, out, _ = await run(
        capsys,
        "--target", scripted_server.target, "--api-key", "k",
        "enroll", "acct-1", str(image), "--policy-version", "2026-10", "--identification",
    )  # fmt: skip
    assert status == 0
    assert out is not None
    assert out["response"]["subject_id"] == "subj-1"
    request = scripted_server.servicer.seen.requests[0]
    assert request.samples[0].encoded == PNG
    assert request.consent.identification is True
    assert request.idempotency_key == out["idempotency_key"]


async def test_verify_prints_result_and_the_transaction(
    scripted_server: ScriptedServer, image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify prints the decision and the exact transaction it bound, for `token verify`."""
    status, out, _ = await run(
        capsys,
        "--target", scripted_server.target,
        "verify", "acct-1", str(image),
        "--transaction-id", "tx-9", "--amount", "1250", "--currency", "EUR",
        "--timestamp", "2026-11-23T08:00:00.120+00:00", "--nonce", "nonce-123456",
    )  # fmt: skip
    assert status == 0
    assert out is not None
    assert out["result"]["decision"] == "DECISION_DECLINE"
    assert out["transaction"]["timestamp"] == "2026-11-23T08:00:00.120Z"
    sent = scripted_server.servicer.seen.requests[0].transaction
    assert sent.amount_minor == 1250
    assert sent.nonce == "nonce-123456"


async def test_api_key_comes_from_the_environment(
    scripted_server: ScriptedServer, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """Without --api-key, BIOAUTH_API_KEY is sent."""
    monkeypatch.setenv("BIOAUTH_API_KEY", "env-key")
    status, out, _ = await run(capsys, "--target", scripted_server.target, "subject", "acct-1")
    assert status == 0
    assert out is not None
    assert out["status"] == "ENROLMENT_STATUS_ENROLLED"
    assert scripted_server.servicer.seen.api_keys == ["env-key"]


async def test_delete_and_jwks(
    scripted_server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """delete and jwks print the server's answers."""
    status, out, _ = await run(capsys, "--target", scripted_server.target, "delete", "acct-1")
    assert (status, out and out["status"]) == (0, "DELETION_STATUS_DONE")
    status, out, _ = await run(capsys, "--target", scripted_server.target, "jwks")
    assert status == 0
    assert out is not None
    assert out["keys"][0]["kid"] == "k1"
    assert out["max_age_seconds"] == 120


async def test_server_errors_exit_1_with_the_status(
    scripted_server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused call exits 1 and names the gRPC status on stderr."""
    scripted_server.servicer.abort_with = (grpc.StatusCode.NOT_FOUND, "unknown subject")
    status, _, err = await run(capsys, "--target", scripted_server.target, "subject", "acct-x")
    assert status == 1
    assert json.loads(err)["error"] == "NOT_FOUND"


async def test_token_verify_accepts_then_rejects_a_changed_transaction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """token verify checks a token against a JWKS file and the transaction it must bind."""
    key = SigningKey.generate("k-cli")
    tx = transaction()
    now = int(time.time())
    token = key.sign(header(key.kid), claims(tx, iat=now, exp=now + 60))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.public_jwk()]}))
    decision = tmp_path / "decision.json"
    decision.write_text(
        json.dumps(
            {
                "result": {"token": token},
                "transaction": {
                    "transaction_id": tx.transaction_id,
                    "merchant_id": tx.merchant_id,
                    "terminal_id": tx.terminal_id,
                    "amount_minor": tx.amount_minor,
                    "currency": tx.currency,
                    "timestamp": tx.timestamp.ToJsonString(),
                    "nonce": tx.nonce,
                },
            }
        )
    )
    common = ["--issuer", ISSUER, "--audience", AUDIENCE, "--jwks", str(jwks)]
    status, out, _ = await run(capsys, "token", "verify", "--from", str(decision), *common)
    assert status == 0
    assert out is not None
    assert out["claims"]["transaction_hash"] == transaction_hash_b64(tx)
    status, out, _ = await run(
        capsys, "token", "verify", token, *common,
        "--transaction-id", tx.transaction_id, "--amount", str(tx.amount_minor + 1),
        "--currency", tx.currency, "--merchant", tx.merchant_id, "--terminal", tx.terminal_id,
        "--nonce", tx.nonce, "--timestamp", tx.timestamp.ToJsonString().replace("Z", "+00:00"),
    )  # fmt: skip
    assert status == 1
    assert out == {"valid": False, "reason": "transaction", "detail": out and out["detail"]}


async def test_missing_transaction_is_a_usage_error(
    image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify without a transaction exits 2 before calling anything."""
    status, _, err = await run(capsys, "--target", "127.0.0.1:1", "verify", "acct-1", str(image))
    assert status == 2
    assert "transaction" in json.loads(err)["details"]
