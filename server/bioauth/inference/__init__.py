"""From image bytes to an embedding: bounded decoding, quality gates, preprocessing by the model's
manifest, and the ONNX Runtime session behind one dynamic batcher per device.

Nothing here decides anything; the embedding goes back to the service layer. The design of the
worker that later issues grow (detection and embedding stages, a fair share among tenants) is in
``docs/design.md``.
"""
