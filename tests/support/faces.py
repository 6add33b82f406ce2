"""The shared face data as typed records: the face set (``BIOAUTH_FACES_DIR``) and the LFW folder
(``BIOAUTH_LFW_DIR``).

Every test reads them through here, so that ``faces.json`` is parsed in one place and a missing
set is handled by one rule (``tests.support.environment.missing``: a failure in CI, elsewhere a
skip that says how to get the data).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.support.environment import REPO_ROOT, missing

__all__ = ["Face", "FaceSet", "face_set", "lfw_dir"]


@dataclass(frozen=True)
class Face:
    """One face of the face set: an aligned 150x150 chip cut from a photo."""

    identity: str
    chip: Path
    photo: Path
    box_ltrb: tuple[int, int, int, int]
    """dlib's HOG detector box in the photo."""
    landmarks: tuple[tuple[int, int], ...]
    """dlib's five landmarks in the photo, which the chip was aligned from."""
    descriptor: npt.NDArray[np.float64] = field(compare=False, repr=False)
    """The 128-d descriptor dlib itself computes for the chip: the reference a model reproduces."""


@dataclass(frozen=True)
class FaceSet:
    """``faces.json``: 19 faces of 8 identities, in the file's order."""

    root: Path
    model: str
    """What computed the reference descriptors (dlib's model and version)."""
    faces: tuple[Face, ...]

    def __iter__(self) -> Iterator[Face]:
        return iter(self.faces)

    def __len__(self) -> int:
        return len(self.faces)

    def of(self, identity: str) -> list[Face]:
        """The identity's faces, in the file's order."""
        return [face for face in self.faces if face.identity == identity]

    def chips(self, identity: str) -> list[Path]:
        return [face.chip for face in self.of(identity)]

    def by_identity(self) -> dict[str, list[Face]]:
        grouped: dict[str, list[Face]] = {}
        for face in self.faces:
            grouped.setdefault(face.identity, []).append(face)
        return grouped

    def first_of_each(self) -> dict[str, Face]:
        """Each identity's first face (the one tests enrol)."""
        return {identity: faces[0] for identity, faces in self.by_identity().items()}


def face_set() -> FaceSet:
    """The face set of ``BIOAUTH_FACES_DIR`` (default ``../shared/faces`` beside the repo)."""
    root = Path(os.environ.get("BIOAUTH_FACES_DIR", REPO_ROOT.parent / "shared" / "faces"))
    if not (root / "faces.json").is_file():
        missing(
            f"face set at {root}",
            "set BIOAUTH_FACES_DIR to the folder holding faces.json and chips/",
        )
    return _load(root)


@functools.cache
def _load(root: Path) -> FaceSet:
    """Parsed once per process: the records are frozen, so every test may share them."""
    document = json.loads((root / "faces.json").read_text(encoding="utf-8"))
    return FaceSet(
        root=root,
        model=document["model"],
        faces=tuple(_face(root, entry) for entry in document["faces"]),
    )


def _face(root: Path, entry: dict[str, Any]) -> Face:
    left, top, right, bottom = (int(v) for v in entry["box_ltrb"])
    return Face(
        identity=entry["identity"],
        chip=root / entry["chip"],
        photo=root / entry["photo"],
        box_ltrb=(left, top, right, bottom),
        landmarks=tuple((int(x), int(y)) for x, y in entry["landmarks5_xy"]),
        descriptor=np.asarray(entry["dlib_descriptor"], dtype=np.float64),
    )


def lfw_dir() -> Path:
    """The LFW folder of ``BIOAUTH_LFW_DIR`` (default ``../shared/lfw`` beside the repo); tests
    hand it to the code under test, which reads ``lfw.json`` itself."""
    root = Path(os.environ.get("BIOAUTH_LFW_DIR", REPO_ROOT.parent / "shared" / "lfw"))
    if not (root / "lfw.json").is_file():
        missing(
            f"LFW set at {root}", "set BIOAUTH_LFW_DIR to the folder holding lfw.json and chips/"
        )
    return root
