"""kopf must log in with the bare token, whichever way the client loaded it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.config.incluster_config import InClusterConfigLoader

from reef.operator.login import bearer_token, connection_info

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl"


def _in_cluster_configuration(tmp_path: Path) -> client.Configuration:
    """What a pod's service-account mount gives the official in-cluster loader."""
    token = tmp_path / "token"
    token.write_text(JWT)
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n")
    configuration = client.Configuration()
    loader = InClusterConfigLoader(
        token_filename=str(token),
        cert_filename=str(ca),
        environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
    )
    loader.load_and_set(configuration)
    return configuration


def _kubeconfig_configuration(tmp_path: Path) -> client.Configuration:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": JWT}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(path), context="ctx", client_configuration=configuration
    )
    return configuration


def test_in_cluster_token_is_sent_without_a_second_scheme(tmp_path: Path) -> None:
    configuration = _in_cluster_configuration(tmp_path)
    # The client really stores it lower-case; this is what broke every in-cluster login.
    assert configuration.api_key["BearerToken"].startswith("bearer ")
    info = connection_info(configuration)
    assert info.scheme == "Bearer"
    assert info.token == JWT
    assert info.server == "https://10.0.0.1:443"


def test_kubeconfig_token_is_sent_without_a_second_scheme(tmp_path: Path) -> None:
    info = connection_info(_kubeconfig_configuration(tmp_path))
    assert info.scheme == "Bearer"
    assert info.token == JWT


@pytest.mark.parametrize(
    ("api_key", "expected"),
    [
        ({"BearerToken": f"Bearer {JWT}"}, JWT),
        ({"BearerToken": f"bearer {JWT}"}, JWT),
        ({"BearerToken": f"BEARER  {JWT} "}, JWT),
        ({"authorization": f"bearer {JWT}"}, JWT),
        ({"BearerToken": JWT}, JWT),
        ({}, None),
        (None, None),
    ],
)
def test_bearer_token_strips_the_scheme_in_any_case(
    api_key: dict[str, str] | None, expected: str | None
) -> None:
    assert bearer_token(api_key) == expected


def test_client_certificates_need_no_token(tmp_path: Path) -> None:
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:6443"
    configuration.cert_file = str(tmp_path / "client.crt")
    configuration.key_file = str(tmp_path / "client.key")
    info = connection_info(configuration)
    assert info.token is None
    assert info.scheme is None
    assert info.certificate_path == str(tmp_path / "client.crt")
