"""Builds ONNX face-embedding models from their original weights (no dlib at build or run time)."""
