"""AsyncClient over TLS and mutual TLS, with certificates from a throwaway CA (trustme)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import trustme
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bioauth.client import AsyncClient, HealthStatus, TLSConfig, Unavailable


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def mtls_target(ca: trustme.CA) -> AsyncIterator[str]:
    """A server that requires a client certificate signed by the CA."""
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    credentials = grpc.ssl_server_credentials(
        [(server_cert.private_key_pem.bytes(), server_cert.cert_chain_pems[0].bytes())],
        root_certificates=ca.cert_pem.bytes(),
        require_client_auth=True,
    )
    server = aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_mutual_tls_reaches_the_server(ca: trustme.CA, mtls_target: str) -> None:
    """With the CA and a client certificate, the call succeeds."""
    client_cert = ca.issue_cert("gateway-a@network.example")
    tls = TLSConfig(
        root_certificates=ca.cert_pem.bytes(),
        certificate_chain=client_cert.cert_chain_pems[0].bytes(),
        private_key=client_cert.private_key_pem.bytes(),
        server_hostname="localhost",
    )
    async with AsyncClient(mtls_target, tls=tls, timeout=5.0) as client:
        assert await client.health() is HealthStatus.SERVING


async def test_missing_client_certificate_is_refused(ca: trustme.CA, mtls_target: str) -> None:
    """Without a client certificate the handshake fails: Unavailable, never a plaintext retry."""
    tls = TLSConfig(root_certificates=ca.cert_pem.bytes(), server_hostname="localhost")
    async with AsyncClient(mtls_target, tls=tls, timeout=2.0) as client:
        with pytest.raises(Unavailable):
            await client.health()


def test_half_a_client_identity_is_refused(ca: trustme.CA) -> None:
    """A certificate without its key (or the reverse) is a configuration error."""
    cert = ca.issue_cert("gateway")
    with pytest.raises(ValueError, match="both"):
        TLSConfig(certificate_chain=cert.cert_chain_pems[0].bytes())


def test_tls_repr_hides_key_material(ca: trustme.CA) -> None:
    """Printing the settings never prints the private key."""
    cert = ca.issue_cert("gateway")
    tls = TLSConfig(
        certificate_chain=cert.cert_chain_pems[0].bytes(),
        private_key=cert.private_key_pem.bytes(),
    )
    assert "PRIVATE" not in repr(tls)
