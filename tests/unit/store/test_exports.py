"""``bioauth.store`` exports exactly its public names."""

from __future__ import annotations

import types

import bioauth.store
from bioauth.store import protocol


def test_package_exports_match_its_public_names() -> None:
    public = {
        name
        for name, value in vars(bioauth.store).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(bioauth.store.__all__) == public
    assert set(bioauth.store.__all__) <= set(protocol.__all__)
