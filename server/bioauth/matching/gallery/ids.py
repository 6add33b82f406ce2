"""Compact map between subject ids and the gallery's dense subject slots.

A Python ``dict[str, int]`` costs about 100-150 bytes per subject (the entry, the key object, the
int object): for a gallery of one template per subject that alone is 20-30 % of the raw float32
template bytes (128 x 4 = 512), which would break the gallery's 1.25x memory bound. This table
keeps everything in numpy arrays instead: the id bytes per slot (fixed width, grown when a longer
id arrives), the slot's template rows, and an open-addressing hash index (linear probing, int32
entries, load at most 0.7). Lookups happen only on enrolment and opt-out, so a few Python-level
probe steps per lookup cost nothing that matters; the search path only reads ``id_at(slot)``.

Slots stay dense: removing a subject moves the last slot into the freed one (swap-with-last), so
no removal copies more than one slot's worth of data.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["MAX_SUBJECT_ID_BYTES", "SubjectSlots"]

MAX_SUBJECT_ID_BYTES: Final = 128
"""Longest subject id (UTF-8 bytes) the gallery keeps; pseudonymous ids are far shorter."""

_EMPTY: Final = -1
_TOMBSTONE: Final = -2
_MAX_LOAD: Final = 0.7
_MIN_TABLE: Final = 16
_MIN_SLOTS: Final = 64


def _encode(subject_id: str) -> bytes:
    raw = subject_id.encode("utf-8")
    # numpy's fixed-width bytes drop trailing NULs, so such an id would not read back the same.
    if not raw or len(raw) > MAX_SUBJECT_ID_BYTES or b"\x00" in raw:
        raise ValueError(f"subject id must be 1..{MAX_SUBJECT_ID_BYTES} UTF-8 bytes without NUL")
    return raw


def _grown(capacity: int, needed: int) -> int:
    """Next capacity: +1/16 (at least 64); removals shrink it back once 1/10 is unused."""
    new = max(capacity, _MIN_SLOTS)
    while new < needed:
        new += max(new // 16, _MIN_SLOTS)
    return new


class SubjectSlots:
    """Dense subject slots: id bytes, up to ``max_rows`` gallery rows, the number of enrolment
    images behind those rows, and a hash index from id to slot.

    Not thread-safe by itself: the gallery's lock guards it.
    """

    def __init__(self, max_rows: int) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.max_rows = max_rows
        self._count = 0
        self._ids: NDArray[np.bytes_] = np.zeros(0, dtype="S16")
        self._rows: NDArray[np.int32] = np.zeros((0, max_rows), dtype=np.int32)
        self._nrows: NDArray[np.uint8] = np.zeros(0, dtype=np.uint8)
        self._images: NDArray[np.uint8] = np.zeros(0, dtype=np.uint8)
        self._table: NDArray[np.int32] = np.full(_MIN_TABLE, _EMPTY, dtype=np.int32)
        self._occupied = 0  # live entries plus tombstones

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes held by every array here, counted at capacity."""
        arrays = (self._ids, self._rows, self._nrows, self._images, self._table)
        return sum(int(array.nbytes) for array in arrays)

    def find(self, subject_id: str) -> int | None:
        """The subject's slot, or None."""
        raw = _encode(subject_id)
        position = self._position(raw)
        return None if position is None else int(self._table[position])

    def id_at(self, slot: int) -> str:
        return bytes(self._ids[slot]).decode("utf-8")

    def ids_at(self, slots: NDArray[np.int64]) -> list[str]:
        return [bytes(raw).decode("utf-8") for raw in self._ids[slots]]

    def rows_of(self, slot: int) -> NDArray[np.int32]:
        """A copy of the slot's gallery rows."""
        return self._rows[slot, : self._nrows[slot]].copy()

    def images_at(self, slots: NDArray[np.int64]) -> NDArray[np.uint8]:
        """How many enrolment images went into each slot's rows."""
        return self._images[slots]

    def set_rows(self, slot: int, rows: list[int], images: int) -> None:
        if len(rows) > self.max_rows:
            raise ValueError(f"at most {self.max_rows} rows per subject, got {len(rows)}")
        self._rows[slot, : len(rows)] = rows
        self._nrows[slot] = len(rows)
        self._images[slot] = images

    def replace_row(self, slot: int, old_row: int, new_row: int) -> None:
        """Record that one of the slot's rows moved (the row store's swap-with-last)."""
        count = int(self._nrows[slot])
        hits = np.flatnonzero(self._rows[slot, :count] == old_row)
        if hits.size != 1:
            raise RuntimeError("gallery row index out of step with its subject slots")
        self._rows[slot, hits[0]] = new_row

    def add(self, subject_id: str) -> int:
        """A new slot for a subject not yet present."""
        raw = _encode(subject_id)
        if self._position(raw) is not None:
            raise KeyError("subject already has a slot")
        slot = self._count
        self._reserve(slot + 1, len(raw))
        if self._occupied + 1 > _MAX_LOAD * self._table.size:
            self._rehash(slot + 1)
        self._ids[slot] = raw
        self._nrows[slot] = 0
        self._images[slot] = 0
        self._count += 1
        self._insert(raw, slot)
        return slot

    def remove(self, subject_id: str) -> tuple[int, int] | None:
        """Free the subject's slot; the last slot moves into it.

        Returns ``(freed, moved_from)``: the caller re-points the moved slot's rows from
        ``moved_from`` to ``freed`` (equal when the freed slot was the last). None if absent.
        """
        raw = _encode(subject_id)
        position = self._position(raw)
        if position is None:
            return None
        freed = int(self._table[position])
        self._table[position] = _TOMBSTONE
        last = self._count - 1
        if freed != last:
            moved = bytes(self._ids[last])
            moved_position = self._position(moved)
            if moved_position is None:
                raise RuntimeError("gallery subject index out of step with its slots")
            self._ids[freed] = self._ids[last]
            self._rows[freed] = self._rows[last]
            self._nrows[freed] = self._nrows[last]
            self._images[freed] = self._images[last]
            self._table[moved_position] = freed
        self._ids[last] = b""
        self._nrows[last] = 0
        self._images[last] = 0
        self._count = last
        if self._occupied > 2 * self._count + _MIN_TABLE:
            self._rehash(self._count)  # clear tombstones once they dominate
        if self._ids.shape[0] - self._count > max(2 * _MIN_SLOTS, self._count // 10):
            self._resize(self._count + max(_MIN_SLOTS, self._count // 32))
        return freed, last

    def _reserve(self, slots: int, id_width: int) -> None:
        width = self._ids.dtype.itemsize
        if id_width > width:
            self._ids = self._ids.astype(f"S{id_width}")
        capacity = self._ids.shape[0]
        if slots > capacity:
            self._resize(_grown(capacity, slots))

    def _resize(self, capacity: int) -> None:
        kept = min(capacity, self._ids.shape[0])
        ids = np.zeros(capacity, dtype=self._ids.dtype)
        ids[:kept] = self._ids[:kept]
        rows = np.zeros((capacity, self.max_rows), dtype=np.int32)
        rows[:kept] = self._rows[:kept]
        nrows = np.zeros(capacity, dtype=np.uint8)
        nrows[:kept] = self._nrows[:kept]
        images = np.zeros(capacity, dtype=np.uint8)
        images[:kept] = self._images[:kept]
        self._ids, self._rows, self._nrows, self._images = ids, rows, nrows, images

    def _position(self, raw: bytes) -> int | None:
        table = self._table
        mask = table.size - 1
        position = hash(raw) & mask
        while True:
            slot = int(table[position])
            if slot == _EMPTY:
                return None
            if slot >= 0 and bytes(self._ids[slot]) == raw:
                return position
            position = (position + 1) & mask

    def _insert(self, raw: bytes, slot: int) -> None:
        table = self._table
        mask = table.size - 1
        position = hash(raw) & mask
        while table[position] >= 0:
            position = (position + 1) & mask
        if table[position] == _EMPTY:
            self._occupied += 1
        table[position] = slot

    def _rehash(self, live: int) -> None:
        """Rebuild the index for the present slots, sized for ``live`` subjects at half load."""
        size = _MIN_TABLE
        while live + 1 > size // 2:  # at most half full after a rebuild
            size *= 2
        self._table = np.full(size, _EMPTY, dtype=np.int32)
        self._occupied = 0
        for slot in range(self._count):
            self._insert(bytes(self._ids[slot]), slot)
