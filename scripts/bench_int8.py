"""The int8 model beside the float one, in one run: speed, agreement and LFW error rates.

Usage: .venv/bin/python scripts/bench_int8.py [--seconds S] [--rounds R] [--out FILE]
       [--fp32-manifest PATH] [--int8-manifest PATH]

Both models run through the server's own path (decode, the manifest's preprocessing, the ONNX
Runtime engine on the CPU with one intra-op thread), each built into the cache from its manifest
alone. Speed: batches of 1 and 32 LFW chips, each configuration timed for ``--seconds`` once per
round, rounds interleaved so that load from other processes falls on both models alike; the median
round is reported. Accuracy: every LFW chip embedded once by each model; every pair of chips is a
genuine (same person) or impostor comparison; the threshold for a target FMR is the distance
below which that fraction of impostor pairs falls, and the FNMR is the share of genuine pairs at
or above it. Reported on folds 1-5 (all chips; the int8 model's 200 calibration chips of fold 1
are among them) and on folds 2-5 (no calibration chip). Prints one JSON document; it never fails
on a number.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import onnxruntime as ort  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bioauth.config import ImageSettings, InferenceSettings, load_settings  # noqa: E402
from bioauth.inference.decode import decode_image  # noqa: E402
from bioauth.inference.engine import OnnxEngine  # noqa: E402
from bioauth.inference.manifest import load_manifest  # noqa: E402
from bioauth.inference.preprocess import to_model_input  # noqa: E402
from bioauth.modelbuild import ensure_built  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FP32 = ROOT / "models" / "dlib_resnet_v1" / "manifest.json"
INT8 = ROOT / "models" / "dlib_resnet_v1_int8" / "manifest.json"
TARGET_FMRS = (1e-3, 1e-4)
CALIBRATION_FOLD = 1

Floats = npt.NDArray[np.float32]


def _engine(manifest_path: Path, cache_dir: Path) -> OnnxEngine:
    manifest = load_manifest(manifest_path)
    settings = InferenceSettings(
        manifest=manifest_path,
        cache_dir=cache_dir,
        providers=["CPUExecutionProvider"],
        intra_op_threads=1,
    )
    return OnnxEngine(ensure_built(manifest_path, cache_dir), manifest, settings)


def _speed(
    engines: dict[str, OnnxEngine], chips: Floats, seconds: float, rounds: int
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, engine in engines.items():
            for batch in (1, 32):
                data = chips[:batch]
                engine.run(data)
                done, began = 0, time.perf_counter()
                while time.perf_counter() - began < seconds:
                    engine.run(data)
                    done += batch
                rates.setdefault(f"{name}/batch{batch}", []).append(
                    done / (time.perf_counter() - began)
                )
    report: dict[str, Any] = {
        key: {
            "faces_per_s_median": round(statistics.median(v), 1),
            "rounds": [round(x, 1) for x in v],
        }
        for key, v in rates.items()
    }
    # The two models run back to back within a round, so their ratio in a round is the figure
    # least disturbed by other work on a shared machine.
    for batch in (1, 32):
        ratios = [
            i / f
            for i, f in zip(rates[f"int8/batch{batch}"], rates[f"fp32/batch{batch}"], strict=True)
        ]
        report[f"int8_over_fp32/batch{batch}"] = {
            "median": round(statistics.median(ratios), 2),
            "rounds": [round(r, 2) for r in ratios],
        }
    return report


def _embed(engine: OnnxEngine, inputs: Floats, label: str) -> tuple[Floats, float]:
    rows: list[Floats] = []
    began = time.perf_counter()
    for start in tqdm(range(0, len(inputs), 32), desc=label, unit="batch"):
        rows.append(engine.run(inputs[start : start + 32]))
    return np.concatenate(rows), time.perf_counter() - began


def _pairs(
    embeddings: Floats, identity: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Distances of every genuine and every impostor pair (each unordered pair once)."""
    genuine: list[npt.NDArray[np.float32]] = []
    impostor: list[npt.NDArray[np.float32]] = []
    x = embeddings.astype(np.float64)
    sq = (x * x).sum(axis=1)
    for start in range(0, len(x), 512):
        rows = slice(start, min(start + 512, len(x)))
        d2 = sq[rows, None] + sq[None, :] - 2.0 * x[rows] @ x.T
        dist = np.sqrt(np.maximum(d2, 0.0)).astype(np.float32)
        i = np.arange(rows.start, rows.stop)[:, None]
        j = np.arange(len(x))[None, :]
        upper = j > i
        same = identity[rows, None] == identity[None, :]
        genuine.append(dist[upper & same])
        impostor.append(dist[upper & ~same])
    return np.concatenate(genuine), np.sort(np.concatenate(impostor))


def _rates(genuine: npt.NDArray[np.float32], impostor: npt.NDArray[np.float32]) -> dict[str, Any]:
    out: dict[str, Any] = {"genuine_pairs": len(genuine), "impostor_pairs": len(impostor)}
    for target in TARGET_FMRS:
        allowed = int(np.floor(target * len(impostor)))
        threshold = float(impostor[allowed])
        false_matches = int(np.count_nonzero(impostor < threshold))
        misses = int(np.count_nonzero(genuine >= threshold))
        out[f"fmr_{target:.0e}"] = {
            "threshold": round(threshold, 4),
            "false_matches": false_matches,
            "fmr": false_matches / len(impostor),
            "false_non_matches": misses,
            "fnmr": misses / len(genuine),
        }
    at = 0.6
    out["at_0.6"] = {
        "fmr": float(np.count_nonzero(impostor < at)) / len(impostor),
        "false_matches": int(np.count_nonzero(impostor < at)),
        "fnmr": float(np.count_nonzero(genuine >= at)) / len(genuine),
        "false_non_matches": int(np.count_nonzero(genuine >= at)),
    }
    return out


def _machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "onnxruntime": ort.__version__,
        "load_average_at_end": os.getloadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fp32-manifest", type=Path, default=FP32)
    parser.add_argument("--int8-manifest", type=Path, default=INT8)
    parser.add_argument(
        "--lfw-dir",
        type=Path,
        default=Path(os.environ.get("BIOAUTH_LFW_DIR", ROOT.parent / "shared" / "lfw")),
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N chips only (smoke run)")
    parser.add_argument("--speed-only", action="store_true", help="skip the LFW accuracy part")
    args = parser.parse_args()
    settings = load_settings(None)
    cache_dir = settings.inference.cache_dir
    engines = {
        "fp32": _engine(args.fp32_manifest, cache_dir),
        "int8": _engine(args.int8_manifest, cache_dir),
    }
    spec = engines["fp32"].manifest.input
    if engines["int8"].manifest.input != spec:
        raise SystemExit(
            "the two manifests describe different inputs; this script compares like with like"
        )

    index = json.loads((args.lfw_dir / "lfw.json").read_text(encoding="utf-8"))["faces"]
    index = index[: args.limit]
    limits = ImageSettings()
    began = time.perf_counter()
    inputs = np.stack(
        [
            to_model_input(decode_image((args.lfw_dir / f["chip"]).read_bytes(), limits), spec)
            for f in tqdm(index, desc="decoding", unit="chip")
        ]
    )
    decode_s = time.perf_counter() - began
    names = sorted({f["identity"] for f in index})
    number = {name: k for k, name in enumerate(names)}
    identity = np.array([number[f["identity"]] for f in index], dtype=np.int64)
    fold = np.array([f["fold"] for f in index], dtype=np.int64)

    speed = _speed(engines, inputs[:32], args.seconds, args.rounds)
    if args.speed_only:
        text = json.dumps({"machine": _machine(), "speed_1_thread": speed}, indent=2)
        print(text)
        if args.out is not None:
            args.out.write_text(text + "\n", encoding="utf-8")
        return 0
    embeddings: dict[str, Floats] = {}
    embed_s: dict[str, float] = {}
    for name, engine in engines.items():
        embeddings[name], embed_s[name] = _embed(engine, inputs, name)

    a, b = embeddings["fp32"].astype(np.float64), embeddings["int8"].astype(np.float64)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    error = np.linalg.norm(a - b, axis=1)
    held_out = fold != CALIBRATION_FOLD
    accuracy: dict[str, Any] = {}
    for subset, keep in (("folds_1_5", np.ones(len(index), dtype=bool)), ("folds_2_5", held_out)):
        accuracy[subset] = {}
        for name in engines:
            genuine, impostor = _pairs(embeddings[name][keep], identity[keep])
            accuracy[subset][name] = _rates(genuine, impostor)

    report = {
        "machine": _machine(),
        "models": {
            name: {"model_id": e.manifest.model_id, "onnx_sha256": e.manifest.onnx.sha256}
            for name, e in engines.items()
        },
        "speed_1_thread": speed,
        "lfw": {
            "chips": len(index),
            "decode_s": round(decode_s, 1),
            "embed_s": {k: round(v, 1) for k, v in embed_s.items()},
            "int8_vs_fp32": {
                "cosine_min": float(cosine.min()),
                "cosine_p01": float(np.quantile(cosine, 0.01)),
                "cosine_mean": float(cosine.mean()),
                "l2_error_mean": float(error.mean()),
                "l2_error_p99": float(np.quantile(error, 0.99)),
                "l2_error_max": float(error.max()),
                "held_out_cosine_min": float(cosine[held_out].min()),
            },
            "accuracy": accuracy,
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
