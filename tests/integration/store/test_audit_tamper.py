"""``bioauth audit verify`` catches a modified, deleted, reordered or truncated audit row."""

from __future__ import annotations

import asyncio

import pytest

from bioauth.cli.main import main
from bioauth.store.protocol import AuditEntry
from tests.integration.store.conftest import Backend
from tests.integration.store.helpers import now

pytestmark = pytest.mark.integration

_ROWS = 6


async def _fill(backend: Backend) -> None:
    for i in range(_ROWS):
        await backend.store.append_audit(
            AuditEntry(
                "bank-a", "verify", now(), subject_id=f"s{i}", decision="decline",
                score_band="low", operating_point="fmr_1e-4", model_id="m", token_jti=None,
                details={"reason": "no_match", "attempt": i},
            )
        )  # fmt: skip
    await backend.store.append_audit(AuditEntry("bank-b", "enroll", now(), subject_id="x"))


async def _unprotect(backend: Backend) -> None:
    """Drop the append-only guard, as someone with write access to the database could."""
    if backend.kind == "sqlite":
        await backend.execute("DROP TRIGGER audit_log_no_update")
        await backend.execute("DROP TRIGGER audit_log_no_delete")
    else:
        await backend.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")


async def _cli_verify(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    monkeypatch.setenv("BIOAUTH_STORE__URL", backend.url)
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["audit", "verify"])
    return code, capsys.readouterr().out


async def test_audit_rows_cannot_be_changed_through_sql(backend: Backend) -> None:
    """The append-only guard refuses UPDATE and DELETE on audit rows."""
    await _fill(backend)
    with pytest.raises(Exception, match="append-only"):
        await backend.execute("UPDATE audit_log SET decision = ? WHERE seq = ?", "approve", 2)
    with pytest.raises(Exception, match="append-only"):
        await backend.execute("DELETE FROM audit_log WHERE seq = ?", 2)
    assert (await backend.store.verify_audit_chain("bank-a")).ok


@pytest.mark.parametrize(
    ("tamper", "statements", "bad_seq"),
    [
        (
            "modified",
            [
                (
                    "UPDATE audit_log SET decision = 'approve' WHERE tenant_id = 'bank-a' AND seq = 3",
                    (),
                )
            ],
            3,
        ),
        ("deleted", [("DELETE FROM audit_log WHERE tenant_id = 'bank-a' AND seq = 3", ())], 3),
        (
            "reordered",
            [
                ("UPDATE audit_log SET seq = -1 WHERE tenant_id = 'bank-a' AND seq = 2", ()),
                ("UPDATE audit_log SET seq = 2 WHERE tenant_id = 'bank-a' AND seq = 3", ()),
                ("UPDATE audit_log SET seq = 3 WHERE tenant_id = 'bank-a' AND seq = -1", ()),
            ],
            2,
        ),
        (
            "newest deleted",
            [(f"DELETE FROM audit_log WHERE tenant_id = 'bank-a' AND seq = {_ROWS}", ())],
            _ROWS,
        ),
        (
            "details edited",
            [
                (
                    "UPDATE audit_log SET details = '{\"attempt\":9}' WHERE tenant_id = 'bank-a' AND seq = 4",
                    (),
                )
            ],
            4,
        ),
    ],
)
async def test_audit_verify_names_the_tampered_row(
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tamper: str,
    statements: list[tuple[str, tuple[object, ...]]],
    bad_seq: int,
) -> None:
    """Exit 0 on an intact log; after tampering, exit 1 naming tenant and row; others stay ok."""
    await _fill(backend)
    code, out = await _cli_verify(backend, monkeypatch, capsys)
    assert code == 0, out
    assert f"tenant bank-a: ok, {_ROWS} rows" in out
    await _unprotect(backend)
    for sql, args in statements:
        await backend.execute(sql, *args)
    code, out = await _cli_verify(backend, monkeypatch, capsys)
    assert code == 1, (tamper, out)
    assert f"tenant bank-a: TAMPERED at row seq={bad_seq}:" in out, (tamper, out)
    assert "tenant bank-b: ok, 1 rows" in out
    result = await backend.store.verify_audit_chain("bank-a")
    assert not result.ok
    assert result.bad_seq == bad_seq
