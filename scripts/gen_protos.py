"""Generate the Python gRPC stubs from protos/ into one committed place.

Usage: python scripts/gen_protos.py [--out DIR]

The default output is protos/python (the bioauth-api distribution); tests call it with a
temporary --out and compare, so committed stubs can never drift from the .proto files.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = PROTO_ROOT / "python"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    return sorted(proto_root.glob("bioauth/**/*.proto"))


def generated_files(out: Path) -> list[Path]:
    return sorted(
        p
        for p in (out / "bioauth").rglob("*")
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    )


def generate(out: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(p.relative_to(proto_root)) for p in proto_files(proto_root)),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        for old in generated_files(out) if (out / "bioauth").exists() else []:
            old.unlink()
        written = []
        for src in generated_files(Path(tmp)):
            dst = out / src.relative_to(tmp)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            written.append(dst)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--proto-root", type=Path, default=PROTO_ROOT)
    args = parser.parse_args(argv)
    for path in generate(args.out, args.proto_root):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
