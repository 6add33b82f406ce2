"""The use cases (enrol, verify, identify, Authenticate sessions, subjects, opt-out, rewrap) and
the wiring that builds them once per process (``container``).

Front ends call ``Services``; nothing here knows gRPC, so the CLI and tests decide through the
same code the servicers do.
"""
