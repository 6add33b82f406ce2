"""Benchmark the 1:N gallery alone: identify over synthetic templates, one probe and batches.

Synthetic identities mimic the dlib ResNet's geometry (impostor distances about 0.9, genuine about
0.4): each subject has a centre and 1, 2 or 3 noisy enrolment templates (cycling); half of the
probes are new noisy samples of enrolled subjects, half are strangers. Prints one JSON document
(also written to ``--out``): latency percentiles per probe from HdrHistogram for each backend,
faiss-cpu's own IndexFlatL2/IndexFlatIP over a plain copy for reference, an optional compressed
(fp16 / int8 scalar-quantised) scan with float32 re-scoring and how often its top answer differs
from the exact one, the gallery's counted bytes and the process RSS growth while building it.

Numbers only, no assertions: the machine is shared, so run it when it is quiet.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from bioauth.matching.gallery import Gallery
from bioauth.matching.gallery.index import BackendName, make_backend

_CENTRE_SCALE = 0.056  # per-dimension std: centre-to-centre distance ~0.9 at 128 dimensions
_NOISE_SCALE = 0.025  # per-dimension std: sample-to-sample distance ~0.4
_CHUNK_SUBJECTS = 16384


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def _subject_id(index: int) -> str:
    # Same shape as the store's pseudonymous ids (token_urlsafe(16): 22 characters).
    return base64.urlsafe_b64encode((index * 2654435761).to_bytes(16, "big")).rstrip(b"=").decode()


def _trimmed_rss_bytes() -> int:
    """RSS after glibc hands freed heap pages back, so it shows live memory, not the allocator's
    cache of the data generator's temporaries."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss_bytes()


def _subjects(templates: int) -> int:
    """Subjects whose 1, 2, 3, 1, 2, 3, ... templates add up to ``templates``."""
    full, rest = divmod(templates, 6)
    return 3 * full + (0 if rest == 0 else 1 if rest == 1 else 2 if rest <= 3 else 3)


def _chunks(
    templates: int, dim: int, seed: int
) -> Iterator[tuple[int, NDArray[np.float32], NDArray[np.int64]]]:
    """(first subject, centres, template counts) chunks, then the templates come from
    ``_templates_of``; both deterministic in ``seed`` so the data can be generated twice."""
    subjects = _subjects(templates)
    left = templates
    for first in range(0, subjects, _CHUNK_SUBJECTS):
        rng = np.random.default_rng([seed, first])
        count = min(_CHUNK_SUBJECTS, subjects - first)
        centres = rng.standard_normal((count, dim), dtype=np.float32) * _CENTRE_SCALE
        per = 1 + (np.arange(first, first + count) % 3)
        per = np.minimum(per, np.maximum(left - np.concatenate([[0], np.cumsum(per)[:-1]]), 0))
        left -= int(per.sum())
        yield first, centres, per


def _templates_of(
    first: int, centres: NDArray[np.float32], per: NDArray[np.int64], seed: int
) -> NDArray[np.float32]:
    rng = np.random.default_rng([seed, first, 1])
    owner = np.repeat(np.arange(centres.shape[0]), per)
    noise = rng.standard_normal((owner.size, centres.shape[1]), dtype=np.float32)
    out: NDArray[np.float32] = centres[owner] + noise * _NOISE_SCALE
    return out


def _probes(
    count: int, dim: int, templates: int, seed: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """``count`` probes and their true subject: the even ones a fresh sample of an enrolled
    subject, the odd ones strangers (-1)."""
    rng = np.random.default_rng([seed, 2**31])
    subjects = _subjects(templates)
    wanted = np.sort(rng.choice(subjects, size=count // 2 + count % 2, replace=False))
    centres: dict[int, NDArray[np.float32]] = {}
    for first, chunk_centres, _ in _chunks(templates, dim, seed):
        for index in wanted[(wanted >= first) & (wanted < first + chunk_centres.shape[0])]:
            centres[int(index)] = chunk_centres[int(index) - first]
    probes = np.empty((count, dim), dtype=np.float32)
    truth = np.full(count, -1, dtype=np.int64)
    truth[0::2] = rng.permutation(wanted)
    probes[0::2] = np.stack([centres[int(i)] for i in truth[0::2]])
    probes[1::2] = rng.standard_normal((count // 2, dim), dtype=np.float32) * _CENTRE_SCALE
    probes += rng.standard_normal((count, dim), dtype=np.float32) * _NOISE_SCALE
    return probes, truth


def _fill(args: argparse.Namespace) -> Gallery:
    gallery = Gallery(dim=args.dim, metric="euclidean", backend=make_backend("numpy", 1))
    for first, centres, per in _chunks(args.templates, args.dim, args.seed):
        rows = _templates_of(first, centres, per, args.seed)
        ends = np.cumsum(per)
        for offset, (end, count) in enumerate(zip(ends.tolist(), per.tolist(), strict=True)):
            if count:
                gallery.upsert(_subject_id(first + offset), rows[end - count : end])
    return gallery


def _build(args: argparse.Namespace) -> tuple[Gallery, dict[str, Any]]:
    before = _trimmed_rss_bytes()
    started = time.perf_counter()
    gallery = _fill(args)  # the generator's temporaries are gone when it returns
    seconds = time.perf_counter() - started
    grown = _rss_bytes() - before
    grown_trimmed = _trimmed_rss_bytes() - before
    memory = gallery.memory()
    return gallery, {
        "subjects": memory.subjects,
        "templates": memory.rows,
        "build_s": round(seconds, 1),
        "raw_template_bytes": memory.raw_template_bytes,
        "counted_bytes": {
            "rows_with_norm_column": memory.row_bytes,
            "row_to_subject": memory.owner_bytes,
            "subject_table": memory.subject_bytes,
            "total": memory.total_bytes,
        },
        "counted_over_raw": round(memory.ratio, 4),
        "rss_delta_bytes": grown,
        "rss_delta_after_malloc_trim_bytes": grown_trimmed,
        "rss_delta_after_malloc_trim_over_raw": round(grown_trimmed / memory.raw_template_bytes, 4),
    }


def _latency(
    run: Callable[[NDArray[np.float32]], object],
    probes: NDArray[np.float32],
    batch: int,
    repeats: int,
) -> dict[str, float]:
    """Per-probe latency (batch time / batch size) over ``repeats`` calls, in milliseconds."""
    histogram = HdrHistogram(1, 600_000_000, 3)  # microseconds
    run(probes[:batch])  # warm caches and lazy set-up
    for i in range(repeats):
        start = (i * batch) % (probes.shape[0] - batch + 1)
        chunk = probes[start : start + batch]
        t0 = time.perf_counter_ns()
        run(chunk)
        histogram.record_value(max(1, (time.perf_counter_ns() - t0) // 1000 // batch))
    return {
        "calls": repeats,
        "p50_ms": histogram.get_value_at_percentile(50) / 1000,
        "p99_ms": histogram.get_value_at_percentile(99) / 1000,
        "max_ms": histogram.get_max_value() / 1000,
        "mean_ms": round(histogram.get_mean_value() / 1000, 3),
    }


def _bench_backends(
    gallery: Gallery, probes: NDArray[np.float32], args: argparse.Namespace
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    default = gallery.backend
    for spec in args.backends:
        name, *counts = spec.split(":")
        backend: BackendName = "faiss" if name == "faiss" else "numpy"
        threads = int(counts[0]) if counts else None
        single = int(counts[1]) if len(counts) > 1 else None
        # Same arrays, another kernel: no second copy of the gallery.
        gallery.backend = make_backend(backend, threads, single)
        scale = 1 if name == "numpy" else args.faiss_scale
        label = (
            f"{name}_threads_{gallery.backend.threads}"
            f"_single_{gallery.backend.single_probe_threads}"
        )
        out[label] = {
            "single": _latency(gallery.search, probes, 1, max(5, args.single // scale)),
            f"batch_{args.batch}": _latency(
                gallery.search, probes, args.batch, max(2, args.batches // scale)
            ),
        }
        gallery.backend.close()
    gallery.backend = default
    return out


def _plain_copy(args: argparse.Namespace) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    rows, owners = [], []
    for first, centres, per in _chunks(args.templates, args.dim, args.seed):
        rows.append(_templates_of(first, centres, per, args.seed))
        owners.append(np.repeat(np.arange(first, first + centres.shape[0]), per))
    return np.concatenate(rows), np.concatenate(owners)


def _best_subjects(
    distances: NDArray[np.float32], ids: NDArray[np.int64], owners: NDArray[np.int64]
) -> list[int]:
    nearest = ids[np.arange(ids.shape[0]), np.argmin(distances, axis=1)]
    return [int(owner) for owner in owners[nearest]]


def _top_k_of(index: Any, k: int) -> Callable[[NDArray[np.float32]], object]:
    def search(queries: NDArray[np.float32]) -> object:
        return index.search(queries, k)

    return search


def _bench_faiss(
    plain: NDArray[np.float32],
    owners: NDArray[np.int64],
    probes: NDArray[np.float32],
    genuine: NDArray[np.bool_],
    exact_best: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    import faiss

    # The gallery's backends pinned BLAS/OpenMP to one thread; faiss's own indexes are timed
    # the way they are normally used, with OpenMP over every core.
    threadpool_limits(limits=os.cpu_count())
    out: dict[str, Any] = {"omp_threads": faiss.omp_get_max_threads()}
    k = 4
    for label, flat in (
        ("IndexFlatL2", faiss.IndexFlatL2(args.dim)),
        ("IndexFlatIP", faiss.IndexFlatIP(args.dim)),
    ):
        flat.add(plain)
        search = _top_k_of(flat, k)
        out[label] = {
            "single": _latency(search, probes, 1, max(5, args.single // args.faiss_scale)),
            f"batch_{args.batch}": _latency(
                search, probes, args.batch, max(2, args.batches // args.faiss_scale)
            ),
        }
        del flat, search
    if not args.compressed:
        return out
    shortlist = 32
    for label, qtype in (
        ("sq_fp16", faiss.ScalarQuantizer.QT_fp16),
        ("sq_int8", faiss.ScalarQuantizer.QT_8bit),
    ):
        index = faiss.IndexScalarQuantizer(args.dim, qtype, faiss.METRIC_L2)
        index.train(plain[:: max(1, plain.shape[0] // 100_000)])
        index.add(plain)

        def rescored(q: NDArray[np.float32], i: Any = index) -> tuple[Any, Any]:
            _, ids = i.search(q, shortlist)
            exact = np.linalg.norm(plain[ids] - q[:, None, :], axis=2)
            return exact, ids

        exact, ids = rescored(probes)
        top = _best_subjects(exact, ids, owners)
        differs = np.array([_subject_id(t) != e for t, e in zip(top, exact_best, strict=True)])
        out[label] = {
            "shortlist": shortlist,
            "bytes_per_template": index.sa_code_size(),
            "single": _latency(rescored, probes, 1, max(5, args.single // 2)),
            f"batch_{args.batch}": _latency(rescored, probes, args.batch, args.batches),
            "top1_differs_from_exact": {
                "genuine_probes": float(differs[genuine].mean()),
                "stranger_probes": float(differs[~genuine].mean()),
            },
        }
        del index
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--single", type=int, default=200, help="single-probe searches")
    parser.add_argument("--batches", type=int, default=10, help="batched searches")
    parser.add_argument("--batch", type=int, default=64, help="probes per batch")
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["numpy", "numpy:2:1", "numpy:1", "faiss"],
        help="backend[:scan threads for batches[:for one probe]] (defaults: the server's) to time over the same gallery",
    )
    parser.add_argument(
        "--faiss-scale",
        type=int,
        default=4,
        help="divide faiss repeat counts by this (it is slower here)",
    )
    parser.add_argument("--no-faiss-reference", dest="faiss_reference", action="store_false")
    parser.add_argument("--no-compressed", dest="compressed", action="store_false")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--out", type=Path, default=Path(".bench") / "gallery.json")
    args = parser.parse_args()

    probes, truth = _probes(
        max(args.single, args.batch * args.batches, 256), args.dim, args.templates, args.seed
    )
    genuine = truth >= 0
    gallery, memory = _build(args)
    report: dict[str, Any] = {
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        },
        "gallery": {
            "dim": args.dim,
            "metric": "euclidean",
            "reducer": gallery.reducer.name,
            **memory,
        },
        "backends": _bench_backends(gallery, probes, args),
    }
    exact = gallery.search(probes)
    exact_best = [r.best.subject_id if r.best else "" for r in exact]
    # Sanity of the synthetic data: exact search finds a genuine probe's own subject.
    report["gallery"]["genuine_top1_is_own_subject"] = float(
        np.mean(
            [
                best == _subject_id(int(t))
                for best, t in zip(exact_best, truth, strict=True)
                if t >= 0
            ]
        )
    )
    if args.faiss_reference:
        del gallery
        plain, owners = _plain_copy(args)
        report["faiss"] = _bench_faiss(plain, owners, probes, genuine, exact_best, args)
    report["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    text = json.dumps(report, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
