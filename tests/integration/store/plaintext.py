"""Every encoding in which a template's plaintext could have been written by mistake.

The needles are built from the exact float32 vector the store's own decrypt returns; a hit in
any stored byte means a template leaked in the clear.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import numpy.typing as npt

_WINDOW = 8  # values: a partial write of a few floats is a leak too


def _binary_forms(vector: npt.NDArray[np.float32]) -> dict[str, bytes]:
    v32 = vector.astype(np.float32)
    norm = float(np.linalg.norm(v32.astype(np.float64)))
    unit = (v32.astype(np.float64) / norm) if norm else v32.astype(np.float64)
    arrays: dict[str, npt.NDArray[np.floating]] = {
        "f32": v32,
        "f64": v32.astype(np.float64),
        "f16": v32.astype(np.float16),
        "unit-f32": unit.astype(np.float32),
        "unit-f64": unit,
        "unit-f16": unit.astype(np.float16),
    }
    forms: dict[str, bytes] = {}
    for name, array in arrays.items():
        for order in ("<", ">"):
            raw = array.astype(array.dtype.newbyteorder(order)).tobytes()
            forms[f"{name}{order}"] = raw
            size = array.dtype.itemsize
            middle = (len(array) // 2) * size
            forms[f"{name}{order}[start]"] = raw[: _WINDOW * size]
            forms[f"{name}{order}[middle]"] = raw[middle : middle + _WINDOW * size]
    return forms


def _text_forms(vector: npt.NDArray[np.float32]) -> dict[str, bytes]:
    values = [float(x) for x in vector.astype(np.float32)]
    head = values[:4]
    forms: dict[str, bytes] = {"json": json.dumps(values).encode()}
    for fmt in ("{!r}", "{}", "{:.6f}", "{:.6g}", "{:.7g}", "{:.8g}", "{:.9g}", "{:.17g}"):
        for sep in (",", ", ", " ", "\n"):
            forms[f"text{fmt}{sep!r}"] = sep.join(fmt.format(x) for x in head).encode()
    forms["str-f32"] = " ".join(str(np.float32(x)) for x in head).encode()
    return forms


def needles(vector: npt.NDArray[np.float32]) -> dict[str, bytes]:
    """name -> bytes to look for, for one decrypted template."""
    out: dict[str, bytes] = {}
    for name, raw in _binary_forms(vector).items():
        out[name] = raw
        if len(raw) >= 48:
            # Any base64 of data starting with these 48 bytes starts with this text.
            chunk = raw[:48]
            out[name + ":b64"] = base64.b64encode(chunk)
            out[name + ":b64url"] = base64.urlsafe_b64encode(chunk)
        out[name + ":hex"] = raw.hex().encode()
        out[name + ":HEX"] = raw.hex().upper().encode()
    out.update(_text_forms(vector))
    return out


def find_leaks(haystacks: dict[str, bytes], vectors: list[npt.NDArray[np.float32]]) -> list[str]:
    """``where: encoding`` for every needle found in any haystack."""
    found: list[str] = []
    for index, vector in enumerate(vectors):
        for name, needle in needles(vector).items():
            for where, data in haystacks.items():
                if needle in data:
                    found.append(f"template {index} as {name} in {where}")
    return found
