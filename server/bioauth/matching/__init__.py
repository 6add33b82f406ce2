"""From embeddings to a decision: distances, fusion of several images, calibrated operating
points, the policy that returns a ``Verdict``, and the 1:N gallery.

Pure and synchronous apart from the gallery's locking: no I/O, no keys, no gRPC. Its vocabulary
(``decision``) is the one tokens, audit rows and the API carry.
"""
