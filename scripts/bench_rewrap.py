"""Benchmark key rotation + rewrap: templates/s for each store and each key provider.

For each key provider (local file, SoftHSM2 through PKCS#11, OpenBao Transit) the script creates
``--subjects`` subject keys, seals ``--per-subject`` templates each (descriptors from the face set
plus noise), and rotates every key once. For each store (SQLite file, PostgreSQL database) it then
enrols those sealed templates and re-wraps all of them to the new key versions with
``bioauth.service.rewrap.rewrap_templates`` while ``--readers`` tasks list and decrypt random
subjects' templates, counting reads and failed reads. Prints one JSON document (also written to
``--out``) and a Markdown table for docs/benchmarks.md.

SoftHSM2 and OpenBao come from the test helpers (a private token in a temporary directory, a
``bao server -dev`` on a loopback port); PostgreSQL is the server at ``BIOAUTH_TEST_PG_DSN``
(default 127.0.0.1:5432, user postgres), in a database created and dropped here. A part that is
not installed is reported as skipped. Numbers only: run it when the machine is quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the SoftHSM2/OpenBao/PostgreSQL helpers live in tests/support

from bioauth.crypto.envelope import SealedTemplate, open_template, seal_template  # noqa: E402
from bioauth.crypto.local_provider import LocalKeyProvider  # noqa: E402
from bioauth.crypto.provider import KeyProvider  # noqa: E402
from bioauth.service.rewrap import rewrap_templates  # noqa: E402
from bioauth.store.postgres import PostgresTemplateStore  # noqa: E402
from bioauth.store.protocol import (  # noqa: E402
    AuditEntry,
    Consent,
    Enrolment,
    TemplateStore,
    new_subject_id,
)
from bioauth.store.sqlite import SqliteTemplateStore  # noqa: E402

_TENANT = "bench"
_MODEL = "dlib_resnet_v1"


@dataclass
class Row:
    store: str
    provider: str
    subjects: int
    templates: int
    setup_s: float
    """Provider side, once per provider: create keys, seal, rotate."""
    enrol_s: float
    rewrap_s: float
    templates_per_s: float
    reads_during: int
    failed_reads: int
    rewrapped: int
    failed: int


@dataclass
class Population:
    subjects: list[tuple[str, str, list[SealedTemplate]]]
    setup_s: float


async def _bounded(limit: int, coros: list[Any]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(c)) for c in coros]
    return [t.result() for t in tasks]


async def _populate(
    provider: KeyProvider, subjects: int, per_subject: int, concurrency: int
) -> Population:
    faces = json.loads((_faces_dir() / "faces.json").read_text())["faces"]
    base = [np.asarray(f["dlib_descriptor"], dtype=np.float64) for f in faces]
    rng = np.random.default_rng(11)
    started = time.perf_counter()

    async def one(i: int) -> tuple[str, str, list[SealedTemplate]]:
        subject_id = new_subject_id()
        key = await provider.create_subject_key(_TENANT, subject_id)
        sealed = []
        for j in range(per_subject):
            vector = base[(i + j) % len(base)] + rng.normal(0, 0.01, 128)
            sealed.append(
                await seal_template(
                    provider, tenant_id=_TENANT, subject_id=subject_id,
                    template_id=f"{subject_id}-{j}", model_id=_MODEL, key=key.key_id,
                    embedding=vector, quality=0.9,
                )
            )  # fmt: skip
        return subject_id, key.key_id, sealed

    built = await _bounded(concurrency, [one(i) for i in range(subjects)])
    await _bounded(concurrency, [provider.rotate_subject_key(key_id) for _, key_id, _ in built])
    return Population(built, time.perf_counter() - started)


def _enrolment(i: int, subject_id: str, key_id: str, sealed: list[SealedTemplate]) -> Enrolment:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return Enrolment(
        tenant_id=_TENANT, external_ref=f"card-{i}", subject_id=subject_id, key_id=key_id,
        consent=Consent("bench", now, "bench", "bench", True), templates=sealed,
        idempotency_key=f"idem-{subject_id}", request_digest=b"\x00" * 32, response=b"",
        audit=AuditEntry(_TENANT, "enroll", now, subject_id), created_at=now,
    )  # fmt: skip


async def _measure(
    store: TemplateStore, provider: KeyProvider, population: Population, args: argparse.Namespace
) -> Row:
    started = time.perf_counter()
    await _bounded(
        8, [store.enroll(_enrolment(i, *subject)) for i, subject in enumerate(population.subjects)]
    )
    enrol_s = time.perf_counter() - started
    ids = [s for s, _, _ in population.subjects]
    done = asyncio.Event()
    reads = {"during": 0, "failed": 0}

    async def reader(seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 (load pattern, not crypto)
        while not done.is_set():
            try:
                for template in await store.list_templates(_TENANT, rng.choice(ids)):
                    await open_template(provider, template)
                    reads["during"] += not done.is_set()
            except Exception:  # counted and reported: the benchmark's correctness number
                reads["failed"] += 1

    async with asyncio.TaskGroup() as group:
        for i in range(args.readers):
            group.create_task(reader(i))
        report = await rewrap_templates(
            store, provider, batch_size=args.batch_size, concurrency=args.concurrency
        )
        done.set()
    return Row(
        store=store.backend, provider=provider.name, subjects=len(ids),
        templates=report.seen, setup_s=round(population.setup_s, 2), enrol_s=round(enrol_s, 2),
        rewrap_s=round(report.elapsed_s, 3), templates_per_s=round(report.templates_per_s, 1),
        reads_during=reads["during"], failed_reads=reads["failed"], rewrapped=report.rewrapped,
        failed=report.failed,
    )  # fmt: skip


def _faces_dir() -> Path:
    return Path(os.environ.get("BIOAUTH_FACES_DIR", REPO_ROOT.parent / "shared" / "faces"))


@contextlib.asynccontextmanager
async def _provider(kind: str, workdir: Path) -> AsyncIterator[KeyProvider]:
    if kind == "local":
        local = await LocalKeyProvider.open(workdir / "bench-keys.json")
        try:
            yield local
        finally:
            await local.close()
    elif kind == "pkcs11":
        from bioauth.crypto.pkcs11_provider import Pkcs11KeyProvider
        from tests.support.softhsm import process_token

        token = process_token()
        hsm = await Pkcs11KeyProvider.open(
            library=token.library, token_label=token.label, user_pin=token.user_pin,
            signing_key_label="bench-signing",
        )  # fmt: skip
        try:
            yield hsm
        finally:
            await hsm.close()
    else:
        from bioauth.crypto.vault_provider import VaultKeyProvider
        from tests.support.openbao import start_openbao

        server = start_openbao()
        try:
            vault = await VaultKeyProvider.open(
                url=server.url, token=server.token, mount=server.mount
            )
            try:
                yield vault
            finally:
                await vault.close()
        finally:
            server.stop()


@contextlib.asynccontextmanager
async def _store(kind: str, workdir: Path, tag: str) -> AsyncIterator[TemplateStore]:
    if kind == "sqlite":
        sqlite = await SqliteTemplateStore.open(workdir / f"bench-{tag}.sqlite3")
        try:
            yield sqlite
        finally:
            await sqlite.close()
        return
    from tests.support.postgres import fresh_database

    with fresh_database("bioauth_bench") as dsn:
        pg = await PostgresTemplateStore.open(dsn, max_size=8)
        try:
            yield pg
        finally:
            await pg.close()


def _markdown(rows: list[Row], skipped: dict[str, str]) -> str:
    lines = [
        "| store | key provider | subjects | templates | rewrap s | templates/s | reads beside it | failed reads |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.store} | {r.provider} | {r.subjects} | {r.templates} | {r.rewrap_s} | "
            f"{r.templates_per_s:.0f} | {r.reads_during} | {r.failed_reads} |"
        )
    lines += [f"\nSkipped {name}: {why}" for name, why in skipped.items()]
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[Row] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bioauth-bench-rewrap-") as tmp:
        workdir = Path(tmp)
        for provider_kind in args.providers:
            try:
                async with _provider(provider_kind, workdir) as provider:
                    population = await _populate(
                        provider, args.subjects, args.per_subject, args.concurrency
                    )
                    print(
                        f"{provider_kind}: {args.subjects} keys, "
                        f"{args.subjects * args.per_subject} templates sealed, keys rotated in "
                        f"{population.setup_s:.1f} s",
                        file=sys.stderr,
                    )
                    for store_kind in args.stores:
                        try:
                            async with _store(store_kind, workdir, provider_kind) as store:
                                row = await _measure(store, provider, population, args)
                        except BaseException as exc:  # pytest's skip is a BaseException
                            if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
                                raise
                            skipped[f"{store_kind}+{provider_kind}"] = (
                                f"{type(exc).__name__}: {exc}"
                            )
                            continue
                        rows.append(row)
                        print(json.dumps(asdict(row)), file=sys.stderr)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
                    raise
                skipped[provider_kind] = f"{type(exc).__name__}: {exc}"
    return {
        "benchmark": "rewrap",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "subjects": args.subjects,
        "templates_per_subject": args.per_subject,
        "readers": args.readers,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "rows": [asdict(r) for r in rows],
        "skipped": skipped,
        "markdown": _markdown(rows, skipped),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--per-subject", type=int, default=10)
    parser.add_argument("--readers", type=int, default=4, help="concurrent decrypting readers")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8, help="provider calls in flight")
    parser.add_argument(
        "--providers",
        nargs="+",
        default=["local", "pkcs11", "vault"],
        choices=["local", "pkcs11", "vault"],
    )
    parser.add_argument(
        "--stores", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".bench" / "rewrap.json")
    args = parser.parse_args()
    result = asyncio.run(_main(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "markdown"}, indent=2))
    print(result["markdown"])
    return 1 if any(r["failed_reads"] or r["failed"] for r in result["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
