"""The gRPC interceptors every bioauth call passes through (``chain.interceptor_chain``).

Who calls (``authentication``), the one per-call state (``request_context``), typed errors to
statuses and the outcome line (``error_mapping``), the server's default deadline
(``deadline``), reading a failing stream to its end (``drain``), and the wrapping of a handler
that they share (``wrapping``).
"""
