"""Test doubles shipped with the server, so that other packages' tests share one honest fake.

Only stand-ins for things that are expensive or slow to run for real (the face model); nothing
here replaces PostgreSQL, the HSM or Vault, which tests use for real.
"""

from bioauth.testing.engines import FakeEngine
from bioauth.testing.models import build_tiny_model, tiny_manifest

__all__ = ["FakeEngine", "build_tiny_model", "tiny_manifest"]
