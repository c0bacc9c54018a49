"""The static-kubeconfig reader gives the client the configuration the library's loader
gives, and declines every file it does not fully understand."""

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import Configuration
from kubernetes.config.kube_config import load_kube_config

from reef.kube.kubeconfig import configure_static

CA, CERT, KEY = b"-- ca --\n", b"-- cert --\n", b"-- key --\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _write(tmp_path: Path, users: list[dict[str, Any]], **cluster: Any) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "first",
        "clusters": [
            {"name": "c1", "cluster": {"server": "https://127.0.0.1:6443/", **cluster}},
            {"name": "c2", "cluster": {"server": "https://10.0.0.1:443"}},
        ],
        "users": users,
        "contexts": [
            {"name": "first", "context": {"cluster": "c1", "user": users[0]["name"]}},
            {"name": "second", "context": {"cluster": "c2", "user": users[-1]["name"]}},
        ],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def _seen(configuration: Any) -> dict[str, Any]:
    """What reaches the API: host, TLS material (file contents) and credentials."""

    def content(path: str | None) -> bytes | None:
        return None if path is None else Path(path).read_bytes()

    return {
        "host": configuration.host,
        "verify_ssl": configuration.verify_ssl,
        "tls_server_name": configuration.tls_server_name,
        "ca": content(configuration.ssl_ca_cert),
        "cert": content(configuration.cert_file),
        "key": content(configuration.key_file),
        "auth": configuration.auth_settings(),
    }


def _both(path: Path, context: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    ours, library = Configuration(), Configuration()
    assert configure_static(ours, path, context)
    load_kube_config(config_file=str(path), context=context, client_configuration=library)
    return _seen(ours), _seen(library)


def test_embedded_certificates_read_as_the_library_reads_them(tmp_path: Path) -> None:
    user = {"client-certificate-data": _b64(CERT), "client-key-data": _b64(KEY)}
    path = _write(
        tmp_path,
        [{"name": "admin", "user": user}],
        **{"certificate-authority-data": _b64(CA), "tls-server-name": "api.local"},
    )
    ours, library = _both(path)
    assert ours == library
    assert (ours["host"], ours["ca"], ours["cert"], ours["key"]) == (
        "https://127.0.0.1:6443",
        CA,
        CERT,
        KEY,
    )


def test_files_relative_to_the_kubeconfig_and_a_token_file(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(CA)
    # No final newline: the library would send it in the header; this reader strips it.
    (tmp_path / "token").write_text("s3cret")
    users = [
        {"name": "cert", "user": {"client-certificate": "c.crt", "client-key": "c.key"}},
        {"name": "robot", "user": {"tokenFile": "token"}},
    ]
    (tmp_path / "c.crt").write_bytes(CERT)
    (tmp_path / "c.key").write_bytes(KEY)
    path = _write(tmp_path, users, **{"certificate-authority": "pki/ca.crt"})
    ours, library = _both(path)
    assert ours == library
    assert ours["cert"] == CERT
    ours, library = _both(path, context="second")
    assert ours == library
    assert ours["auth"]["BearerToken"]["value"] == "Bearer s3cret"
    assert ours["host"] == "https://10.0.0.1:443"


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "get-token"}},
        {"auth-provider": {"name": "oidc"}},
        {"username": "u", "password": "p"},
    ],
)
def test_plugins_and_basic_auth_are_left_to_the_library(tmp_path: Path, user: Any) -> None:
    path = _write(tmp_path, [{"name": "u", "user": user}])
    configuration = Configuration()
    before = _seen(configuration)
    assert not configure_static(configuration, path, None)
    assert _seen(configuration) == before


def test_a_proxy_an_unknown_context_or_a_broken_file_is_declined(tmp_path: Path) -> None:
    users = [{"name": "t", "user": {"token": "x"}}]
    assert not configure_static(
        Configuration(), _write(tmp_path, users, **{"proxy-url": "http://p"}), None
    )
    assert not configure_static(Configuration(), _write(tmp_path, users), "nope")
    (tmp_path / "broken").write_text("clusters: [")
    assert not configure_static(Configuration(), tmp_path / "broken", None)
    assert not configure_static(Configuration(), tmp_path / "missing", None)
