"""How kopf logs in: with exactly the credentials our own API client loaded.

The official client keeps a bearer token in ``api_key["BearerToken"]`` *with* its scheme,
and not always spelled the same way: a kubeconfig token is stored as ``"Bearer <jwt>"``,
the in-cluster (service-account) token as ``"bearer <jwt>"``. kopf wants the bare token and
adds the scheme itself, so the scheme is stripped whatever its case — stripping only
``"Bearer "`` sent ``Bearer bearer <jwt>`` from every pod, and the operator crash-looped.
"""

from collections.abc import Mapping
from typing import Any

import kopf

_SCHEME = "bearer"


def bearer_token(api_key: Mapping[str, str] | None) -> str | None:
    """The bare token from the client's ``api_key`` map, or None when it holds none."""
    keys = api_key or {}
    # "BearerToken" in current clients; older releases used "authorization".
    value = (keys.get("BearerToken") or keys.get("authorization") or "").strip()
    if not value:
        return None
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == _SCHEME and rest.strip():
        return rest.strip()
    return value


def connection_info(configuration: Any) -> kopf.ConnectionInfo:
    """kopf's connection settings for a loaded ``kubernetes.client.Configuration``."""
    token = bearer_token(configuration.api_key)
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme="Bearer" if token else None,
        token=token,
    )
