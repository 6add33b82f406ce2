"""The 1:N gallery: per-tenant, in-memory, decrypted templates of subjects who consented to 1:N.

Callers take the gallery itself from here (``bioauth.matching.gallery``); its parts are modules of
their own, imported from where they live: ``galleries`` (``Gallery``, ``TenantGalleries``),
``ids`` (subject id to dense slot table), ``index`` (row storage and search backends) and
``reduce`` (how enrolment templates become rows).
"""

from __future__ import annotations

from bioauth.matching.gallery.galleries import (
    Gallery,
    GalleryMemory,
    GalleryResult,
    TenantGalleries,
)

__all__ = ["Gallery", "GalleryMemory", "GalleryResult", "TenantGalleries"]
