"""TLS for a promoflow server started with ``--tls-cert``/``--tls-key`` (and
``--tls-client-ca`` for mutual TLS)."""

from __future__ import annotations

import os
from typing import Optional, Union

import grpc

PathLike = Union[str, "os.PathLike[str]"]


def _read(path: Optional[PathLike]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def tls_credentials(
    ca_cert: Optional[PathLike] = None,
    cert: Optional[PathLike] = None,
    key: Optional[PathLike] = None,
) -> grpc.ChannelCredentials:
    """Channel credentials from PEM files, for ``Client(..., credentials=…)``.

    Args:
        ca_cert: the CA that signed the server's certificate; None trusts the
            system's roots (a certificate from a public CA).
        cert, key: the client certificate and its key, for a server that
            requires one (mutual TLS). Give both or neither.

    The same files the CLI takes as ``--ca-cert``, ``--cert`` and ``--key``.
    """
    if (cert is None) != (key is None):
        raise ValueError("tls_credentials: give both cert and key, or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_cert),
        private_key=_read(key),
        certificate_chain=_read(cert),
    )
