"""The LFW evaluation set as the evaluation reads it: chips, identities, folds, official pairs.

The set lives outside the repository (``BIOAUTH_LFW_DIR``, see its README): it is evaluation
data, not ours to redistribute, so it is read in place and never copied. A person's images are
kept in file order (``_0001``, ``_0002``, ...), which is what the fusion protocol relies on: the
first images enrol, the following ones probe.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bioauth.errors import FailedPrecondition

__all__ = ["LfwPair", "LfwSet", "default_lfw_dir", "load_lfw"]

_REPO_ROOT = Path(__file__).resolve().parents[4]


def default_lfw_dir() -> Path:
    """``$BIOAUTH_LFW_DIR``, else ``../shared/lfw`` beside the repository."""
    env = os.environ.get("BIOAUTH_LFW_DIR")
    return Path(env) if env else _REPO_ROOT.parent / "shared" / "lfw"


@dataclass(frozen=True, slots=True)
class LfwPair:
    """One line of the official ``pairs.txt``: two chip indices and whether they match."""

    fold: int
    left: int
    right: int
    genuine: bool


@dataclass(frozen=True)
class LfwSet:
    """The chips of the set (or of a smoke subset), in file order, with per-chip labels."""

    root: Path
    chips: tuple[str, ...]
    """Paths relative to ``root``, e.g. ``chips/AJ_Cook_0001.jpg``."""
    subject: npt.NDArray[np.int32]
    """Per chip: index into ``names``."""
    names: tuple[str, ...]
    subject_fold: npt.NDArray[np.int32]
    """Per subject: its official View 2 fold (1 to 5)."""
    reference: npt.NDArray[np.float64]
    """Per chip: dlib's own descriptor, the reference a converted model must reproduce."""
    pairs: tuple[LfwPair, ...]
    description: str

    @property
    def folds(self) -> tuple[int, ...]:
        return tuple(sorted({int(f) for f in self.subject_fold}))


def _read_index(root: Path) -> list[dict[str, object]]:
    try:
        raw = json.loads((root / "lfw.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise FailedPrecondition(
            f"LFW set not found at {root} ({exc.strerror}); set BIOAUTH_LFW_DIR to the folder "
            "holding lfw.json, chips/ and pairs.txt"
        ) from exc
    faces = raw.get("faces") if isinstance(raw, dict) else None
    if not isinstance(faces, list) or not faces:
        raise FailedPrecondition(f"{root / 'lfw.json'} has no 'faces' list")
    return faces


def _smoke_subjects(faces: list[dict[str, object]], limit: int) -> set[str]:
    """Whole identities, every fold represented, a few hundred chips with multi-image people.

    Identities are taken round-robin over the folds in name order, skipping the very large ones
    (one person with hundreds of images would make the subset a one-person test).
    """
    counts: dict[str, int] = {}
    fold_of: dict[str, int] = {}
    for face in faces:
        name = str(face["identity"])
        counts[name] = counts.get(name, 0) + 1
        fold_of[name] = int(str(face["fold"]))
    cap = max(6, limit // 20)
    by_fold: dict[int, list[str]] = {}
    for name in sorted(counts):
        if counts[name] <= cap:
            by_fold.setdefault(fold_of[name], []).append(name)
    # Multi-image people first within each fold, so that genuine pairs and fused modes exist.
    for names in by_fold.values():
        names.sort(key=lambda n: (counts[n] < 2, n))
    chosen: set[str] = set()
    total = 0
    cursor = 0
    folds = sorted(by_fold)
    while total < limit and any(cursor < len(by_fold[f]) for f in folds):
        for fold in folds:
            if cursor < len(by_fold[fold]) and total < limit:
                name = by_fold[fold][cursor]
                chosen.add(name)
                total += counts[name]
        cursor += 1
    return chosen


def _read_pairs(root: Path, index: dict[tuple[str, int], int]) -> list[LfwPair]:
    path = root / "pairs.txt"
    lines = path.read_text(encoding="utf-8").split("\n")
    header = lines[0].split()
    folds, per_fold = int(header[0]), int(header[1])
    pairs: list[LfwPair] = []
    body = [line.split() for line in lines[1:] if line.strip()]
    if len(body) != folds * 2 * per_fold:
        raise FailedPrecondition(f"{path}: expected {folds * 2 * per_fold} pairs, got {len(body)}")
    for number, fields in enumerate(body):
        fold = number // (2 * per_fold) + 1
        if len(fields) == 3:
            left = (fields[0], int(fields[1]))
            right = (fields[0], int(fields[2]))
        else:
            left = (fields[0], int(fields[1]))
            right = (fields[2], int(fields[3]))
        if left in index and right in index:
            pairs.append(LfwPair(fold, index[left], index[right], len(fields) == 3))
    return pairs


def load_lfw(
    root: Path, *, smoke: int | None = None, folds: tuple[int, ...] | None = None
) -> LfwSet:
    """Read the set; ``smoke`` keeps whole identities up to about that many chips, ``folds``
    only the people of those folds (for example to leave out chips a model was tuned on)."""
    faces = _read_index(root)
    if folds is not None:
        faces = [f for f in faces if int(str(f["fold"])) in folds]
        if not faces:
            raise FailedPrecondition(f"no chips in folds {list(folds)}")
    keep = None if smoke is None else _smoke_subjects(faces, smoke)
    chips: list[str] = []
    subjects: list[int] = []
    names: list[str] = []
    number_of: dict[str, int] = {}
    subject_folds: list[int] = []
    descriptors: list[list[float]] = []
    index: dict[tuple[str, int], int] = {}
    ordered = sorted(faces, key=lambda f: (str(f["identity"]), str(f["chip"])))
    for face in ordered:
        name = str(face["identity"])
        if keep is not None and name not in keep:
            continue
        if name not in number_of:
            number_of[name] = len(names)
            names.append(name)
            subject_folds.append(int(str(face["fold"])))
        chip = str(face["chip"])
        image_number = int(Path(chip).stem.rsplit("_", 1)[1])
        index[(name, image_number)] = len(chips)
        chips.append(chip)
        subjects.append(number_of[name])
        descriptor = face["dlib_descriptor"]
        assert isinstance(descriptor, list)
        descriptors.append([float(v) for v in descriptor])
    pairs = _read_pairs(root, index)
    fold_names = "1-5" if folds is None else ",".join(str(f) for f in sorted(folds))
    what = f"LFW deep-funneled chips, View 2 folds {fold_names}"
    description = (
        f"{what} ({len(chips)} chips, {len(names)} people)"
        if smoke is None
        else f"{what}, smoke subset ({len(chips)} chips, {len(names)} people)"
    )
    return LfwSet(
        root=root,
        chips=tuple(chips),
        subject=np.asarray(subjects, dtype=np.int32),
        names=tuple(names),
        subject_fold=np.asarray(subject_folds, dtype=np.int32),
        reference=np.asarray(descriptors, dtype=np.float64),
        pairs=tuple(pairs),
        description=description,
    )
