"""Face-model throughput in one run: raw ONNX Runtime by batch size, the dynamic batcher under
concurrent callers, and dlib itself, all on the same face chips; prints one JSON document.

Usage: .venv/bin/python scripts/bench_model.py [--seconds S] [--rounds R] [--callers N]
       [--batch-sizes 1,8,32,64] [--threads 1,2] [--no-dlib] [--out FILE]

Method. Inputs are the aligned chips of ``$BIOAUTH_FACES_DIR/chips`` (decoded and preprocessed
once, outside the timed loops, tiled to fill large batches). Every configuration is measured
for ``--seconds`` once per round, rounds interleave the configurations so that load from other
processes on a shared machine falls on all of them alike, and the figure reported is the median
over rounds (the best round is reported too). dlib runs single-threaded
(``compute_face_descriptor`` on one chip at a time, and on the whole list). The batcher runs in
this process with ``--callers`` asyncio tasks, each awaiting one embedding at a time, and is
compared with direct ONNX Runtime calls at its ``max_batch_size`` and the same thread count,
measured just before it in the same round (the median of the per-round ratios is reported).
Latency percentiles come from HdrHistogram. The script reports numbers and whether the issue's
targets were met; it never fails on a timing.
"""

from __future__ import annotations

import os

# Before numpy and dlib load: dlib is measured single-threaded, and BLAS must not add threads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import functools  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import onnxruntime as ort  # noqa: E402
from hdrh.histogram import HdrHistogram  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from bioauth.config import ImageSettings, InferenceSettings, load_settings  # noqa: E402
from bioauth.inference.batcher import DynamicBatcher  # noqa: E402
from bioauth.inference.decode import decode_image  # noqa: E402
from bioauth.inference.engine import OnnxEngine  # noqa: E402
from bioauth.inference.manifest import ModelManifest, load_manifest  # noqa: E402
from bioauth.inference.metrics import DeviceMetrics, InferenceMetrics  # noqa: E402
from bioauth.inference.preprocess import to_model_input  # noqa: E402
from bioauth.modelbuild import ensure_built  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET_ORT_VS_DLIB = 15.0
TARGET_BATCHER_VS_DIRECT = 0.90

Floats = npt.NDArray[np.float32]
Pixels = npt.NDArray[np.uint8]


@dataclass
class Series:
    """One configuration's throughput per round and its latency histogram (microseconds).

    Throughput is reported per wall-clock second and per CPU second of this process (all its
    threads): on a machine shared with other work the second is the steadier measure of what
    the code costs per core.
    """

    rounds: list[float] = field(default_factory=list)
    cpu_rounds: list[float] = field(default_factory=list)
    latency_us: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 600_000_000, 3))

    def add_round(self, items: int, wall_s: float, cpu_s: float) -> None:
        self.rounds.append(items / wall_s)
        self.cpu_rounds.append(items / max(cpu_s, 1e-9))

    def record_latency(self, seconds: float) -> None:
        self.latency_us.record_value(max(1, int(seconds * 1e6)))

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_rounds)

    def summary(self, latency_name: str) -> dict[str, Any]:
        hist = self.latency_us
        return {
            "faces_per_s": round(self.median, 2),
            "best_faces_per_s": round(max(self.rounds), 2),
            "rounds_faces_per_s": [round(r, 2) for r in self.rounds],
            "faces_per_cpu_s": round(self.cpu_median, 2),
            latency_name: {
                f"p{p}": round(hist.get_value_at_percentile(p) / 1000, 3) for p in (50, 90, 99)
            },
        }


def _timed_loop(call: Callable[[], object], items: int, seconds: float, series: Series) -> None:
    calls = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        series.record_latency(t1 - t0)
        calls += 1
        if t1 - start >= seconds and calls >= 2:
            break
    series.add_round(calls * items, time.perf_counter() - start, time.process_time() - cpu_start)


def _tile(inputs: Floats, n: int) -> Floats:
    reps = -(-n // len(inputs))
    return np.ascontiguousarray(np.concatenate([inputs] * reps)[:n])


async def _batcher_round(
    engine: OnnxEngine,
    inputs: Floats,
    callers: int,
    seconds: float,
    batcher_settings: Any,
    series: Series,
    metrics: DeviceMetrics,
) -> float:
    """Run one timed round; returns the worker's utilisation (time inside the engine / wall)."""
    busy = metrics.families.inference_seconds.labels(metrics.device)
    async with DynamicBatcher(engine, batcher_settings, device="bench", metrics=metrics) as batcher:
        # One untimed pass so that thread start-up is not in the numbers.
        await asyncio.gather(
            *(batcher.embed(inputs[i % len(inputs)], deadline=None) for i in range(callers))
        )
        done = 0
        end = time.perf_counter() + seconds

        async def caller(k: int) -> None:
            nonlocal done
            x = inputs[k % len(inputs)]
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                await batcher.embed(x, deadline=None)
                series.record_latency(time.perf_counter() - t0)
                done += 1

        busy_before = _histogram_sum(busy)
        start, cpu_start = time.perf_counter(), time.process_time()
        await asyncio.gather(*(caller(k) for k in range(callers)))
        wall = time.perf_counter() - start
        series.add_round(done, wall, time.process_time() - cpu_start)
        return (_histogram_sum(busy) - busy_before) / wall


def _histogram_sum(histogram: Any) -> float:
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                return float(sample.value)
    return 0.0


def _machine() -> dict[str, Any]:
    model_name = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu_model": model_name,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "numpy": np.__version__,
    }
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    return info


def _load_chips(faces_dir: Path) -> list[Pixels]:
    chips = sorted((faces_dir / "chips").glob("*.png"))
    if not chips:
        sys.exit(f"no chips in {faces_dir / 'chips'}: set BIOAUTH_FACES_DIR to the face set")
    limits = ImageSettings()
    return [decode_image(path.read_bytes(), limits) for path in chips]


def _dlib_model() -> Any:
    import dlib  # test-only dependency (dlib-bin); never imported by the server

    from bioauth.modelbuild.sources import package_file

    weights = package_file(
        "face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat"
    )
    return dlib.face_recognition_model_v1(str(weights)), dlib.__version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--callers", type=int, default=32, help="concurrent batcher callers")
    parser.add_argument("--batch-sizes", default="1,8,32,64")
    parser.add_argument("--threads", default="1,2", help="ORT intra-op thread counts")
    parser.add_argument("--no-dlib", action="store_true", help="skip dlib")
    parser.add_argument("--manifest", type=Path, default=None)
    parser.add_argument("--faces-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)

    settings = load_settings()
    manifest_path: Path = args.manifest or settings.inference.manifest
    manifest: ModelManifest = load_manifest(manifest_path)
    model_path = ensure_built(manifest_path, settings.inference.cache_dir)
    faces_dir = args.faces_dir or Path(
        os.environ.get("BIOAUTH_FACES_DIR", ROOT.parent / "shared" / "faces")
    )
    chips = _load_chips(faces_dir)
    inputs = np.stack([to_model_input(chip, manifest.input) for chip in chips])
    batch_sizes = [int(v) for v in args.batch_sizes.split(",")]
    thread_counts = [int(v) for v in args.threads.split(",")]
    batcher_settings = settings.inference.batcher
    if batcher_settings.max_batch_size not in batch_sizes:
        batch_sizes.append(batcher_settings.max_batch_size)
    machine = _machine()

    engines: dict[int, OnnxEngine] = {}
    for threads in thread_counts:
        inference: InferenceSettings = settings.inference.model_copy(
            update={"intra_op_threads": threads}
        )
        engines[threads] = OnnxEngine(model_path, manifest, inference)
    batches = {n: _tile(inputs, n) for n in batch_sizes}
    ort_series = {(t, n): Series() for t in thread_counts for n in batch_sizes}
    batcher_series = {t: Series() for t in thread_counts}
    paired_direct = {t: Series() for t in thread_counts}
    utilisation: dict[int, list[float]] = {t: [] for t in thread_counts}
    max_batch = batcher_settings.max_batch_size
    paired_batch = batches[max_batch]
    batcher_registries = {t: CollectorRegistry() for t in thread_counts}
    batcher_metrics = {
        t: InferenceMetrics(registry).for_device("bench")
        for t, registry in batcher_registries.items()
    }

    dlib_series: dict[str, Series] = {}
    dlib_info: dict[str, Any] = {}
    dlib_model: Any = None
    if not args.no_dlib:
        try:
            dlib_model, dlib_version = _dlib_model()
        except ImportError as exc:
            dlib_info = {"skipped": f"dlib is not installed ({exc}); install dlib-bin"}
        else:
            dlib_series = {"one_chip_per_call": Series(), "all_chips_per_call": Series()}
            reference = np.asarray(dlib_model.compute_face_descriptor(chips[0]), dtype=np.float32)
            ours = engines[thread_counts[0]].run(inputs[:1])[0]
            dlib_info = {
                "version": dlib_version,
                "threads": 1,
                "max_abs_diff_vs_onnx_on_first_chip": float(np.abs(reference - ours).max()),
            }

    for _ in range(args.rounds):
        for (threads, n), series in ort_series.items():
            engine = engines[threads]
            engine.run(batches[n])
            _timed_loop(functools.partial(engine.run, batches[n]), n, args.seconds, series)
        for threads, series in batcher_series.items():
            # Direct calls measured right before the batcher, so that each pair sees the same
            # load from whatever else runs on the machine; the per-pair ratio is what we report.
            paired = paired_direct[threads]
            _timed_loop(
                functools.partial(engines[threads].run, paired_batch),
                max_batch,
                args.seconds,
                paired,
            )
            utilisation[threads].append(
                asyncio.run(
                    _batcher_round(
                        engines[threads],
                        inputs,
                        args.callers,
                        args.seconds,
                        batcher_settings,
                        series,
                        batcher_metrics[threads],
                    )
                )
            )
        if dlib_model is not None:
            chip_cycle = itertools.cycle(chips)

            def one_chip(cycle: Iterator[Pixels] = chip_cycle) -> object:
                return dlib_model.compute_face_descriptor(next(cycle))

            _timed_loop(
                one_chip,
                1,
                args.seconds,
                dlib_series["one_chip_per_call"],
            )
            _timed_loop(
                functools.partial(dlib_model.compute_face_descriptor, chips),
                len(chips),
                args.seconds,
                dlib_series["all_chips_per_call"],
            )

    report: dict[str, Any] = {
        "benchmark": "bench_model",
        "machine": machine,
        "model": {
            "model_id": manifest.model_id,
            "onnx_sha256": manifest.onnx.sha256,
            "providers": engines[thread_counts[0]].providers,
            "chips": len(chips),
        },
        "method": {
            "seconds_per_measurement": args.seconds,
            "rounds": args.rounds,
            "statistic": "median over interleaved rounds",
        },
        "onnxruntime": [
            {"intra_op_threads": t, "batch_size": n, **s.summary("batch_latency_ms")}
            for (t, n), s in ort_series.items()
        ],
        "batcher": [],
        "dlib": dlib_info,
    }
    for threads, series in batcher_series.items():
        registry = batcher_registries[threads]
        count = registry.get_sample_value("bioauth_inference_batch_size_count", {"device": "bench"})
        total = registry.get_sample_value("bioauth_inference_batch_size_sum", {"device": "bench"})
        direct_series = paired_direct[threads]
        pair_ratios = [b / d for b, d in zip(series.rounds, direct_series.rounds, strict=True)]
        cpu_pair_ratios = [
            b / d for b, d in zip(series.cpu_rounds, direct_series.cpu_rounds, strict=True)
        ]
        summary = series.summary("request_latency_ms")
        report["batcher"].append(
            {
                "intra_op_threads": threads,
                "callers": args.callers,
                "max_batch_size": max_batch,
                "max_queue_delay_ms": batcher_settings.max_queue_delay_ms,
                **summary,
                "mean_batch_size": round((total or 0) / (count or 1), 2),
                "paired_direct_faces_per_s": round(direct_series.median, 2),
                "paired_direct_rounds_faces_per_s": [round(r, 2) for r in direct_series.rounds],
                "ratio_to_direct": round(statistics.median(pair_ratios), 4),
                "ratio_to_direct_rounds": [round(r, 4) for r in pair_ratios],
                "ratio_to_direct_per_cpu_s": round(statistics.median(cpu_pair_ratios), 4),
                # Share of wall time the worker spent inside the engine: the batcher's ceiling
                # relative to back-to-back direct calls, whatever else loads the machine.
                "worker_utilisation": round(statistics.median(utilisation[threads]), 4),
                "worker_utilisation_rounds": [round(u, 4) for u in utilisation[threads]],
            }
        )
    for name, series in dlib_series.items():
        report["dlib"][name] = series.summary("call_latency_ms")

    targets: dict[str, Any] = {}
    if dlib_series and 1 in thread_counts:
        # Per core: one ORT intra-op thread against single-threaded dlib in its faster mode.
        dlib_best = max(dlib_series.values(), key=lambda s: s.cpu_median)
        ort_one = {n: ort_series[(1, n)] for n in batch_sizes}
        best_n = max(ort_one, key=lambda n: ort_one[n].cpu_median)
        ratio = ort_one[best_n].cpu_median / dlib_best.cpu_median
        targets["onnxruntime_1_thread_vs_dlib"] = {
            "measure": "faces per CPU second of the process (per core)",
            "onnxruntime_faces_per_cpu_s": round(ort_one[best_n].cpu_median, 2),
            "at_batch_size": best_n,
            "dlib_faces_per_cpu_s": round(dlib_best.cpu_median, 2),
            "ratio": round(ratio, 2),
            "ratio_wall_clock": round(ort_one[best_n].median / dlib_best.median, 2),
            "ratio_at_batch_size_1": (
                round(ort_one[1].cpu_median / dlib_best.cpu_median, 2) if 1 in ort_one else None
            ),
            "target": TARGET_ORT_VS_DLIB,
            "met": ratio >= TARGET_ORT_VS_DLIB,
        }
    for entry in report["batcher"]:
        targets[f"batcher_vs_direct_{entry['intra_op_threads']}_threads"] = {
            "ratio": entry["ratio_to_direct"],
            "worker_utilisation": entry["worker_utilisation"],
            "target": TARGET_BATCHER_VS_DIRECT,
            "met": entry["ratio_to_direct"] >= TARGET_BATCHER_VS_DIRECT,
        }
    report["targets"] = targets
    if hasattr(os, "getloadavg"):
        machine["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]

    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
