"""The one error a model build raises, apart so every build step can use it without a cycle."""

from __future__ import annotations

from bioauth.errors import FailedPrecondition

__all__ = ["ModelBuildError"]


class ModelBuildError(FailedPrecondition):
    """The model file cannot be produced or does not match its committed manifest."""
