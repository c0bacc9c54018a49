"""A throw-away PKI for the local control plane, made with the openssl CLI.

The bed needs a CA, a serving certificate for the API server, client
certificates (the admin in group ``system:masters``, the controller manager)
and a key pair that signs service-account tokens. We use the openssl CLI
rather than a Python crypto library because it is on every Debian machine
(ca-certificates depends on it) and the project need not depend on anything
for this. Keys are ECDSA P-256: fast to make, accepted everywhere in
Kubernetes. Certificates live two days; a bed lives minutes.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_VALID_DAYS = "2"


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ControlPlanePKI:
    """Every credential the local control plane uses, as files in one directory."""

    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    service_account_key: Path
    """Private key that signs service-account tokens (ECDSA, ES256)."""
    service_account_pub: Path
    """Its public key, which the API server verifies tokens with."""


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


def _config(subject: dict[str, str], extensions: dict[str, str]) -> str:
    """An openssl req config: a fixed subject and exactly these extensions.

    A config of our own keeps the system openssl.cnf defaults (which mark
    every `req -x509` certificate as a CA) out of the leaf certificates.
    """
    lines = ["[req]", "distinguished_name = dn", "prompt = no", "x509_extensions = ext", "[dn]"]
    lines += [f"{key} = {value}" for key, value in subject.items()]
    lines += ["[ext]"]
    lines += [f"{key} = {value}" for key, value in extensions.items()]
    return "\n".join(lines) + "\n"


def _issue(
    directory: Path,
    name: str,
    subject: dict[str, str],
    extensions: dict[str, str],
    ca: KeyPair | None,
) -> KeyPair:
    config = directory / f"{name}.cnf"
    config.write_text(_config(subject, extensions))
    pair = KeyPair(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
    args = [
        "req", "-x509", "-new", "-noenc",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-keyout", str(pair.key), "-out", str(pair.cert),
        "-days", _VALID_DAYS, "-config", str(config),
    ]  # fmt: skip
    if ca is not None:
        args += ["-CA", str(ca.cert), "-CAkey", str(ca.key)]
    _openssl(*args, cwd=directory)
    config.unlink()
    pair.key.chmod(0o600)
    return pair


def _client_extensions() -> dict[str, str]:
    return {
        "basicConstraints": "critical, CA:FALSE",
        "keyUsage": "critical, digitalSignature, keyEncipherment",
        "extendedKeyUsage": "clientAuth",
        "subjectKeyIdentifier": "hash",
        "authorityKeyIdentifier": "keyid",
    }


def issue_client_cert(
    directory: Path, ca: KeyPair, name: str, *, common_name: str, organization: str = ""
) -> KeyPair:
    """A client certificate for one identity (a kubelet's ``system:node:NAME``, ...)."""
    subject = {"O": organization, "CN": common_name} if organization else {"CN": common_name}
    return _issue(directory, name, subject, _client_extensions(), ca=ca)


def create_pki(
    directory: Path, *, service_ip: str, extra_ips: tuple[str, ...] = ()
) -> ControlPlanePKI:
    """Make a fresh CA and every credential the control plane needs in `directory`.

    `service_ip` is the first address of the service range (the in-cluster
    ``kubernetes`` Service); the serving certificate names it so that
    in-cluster clients could verify the API server too. `extra_ips` are further
    addresses the API server is reached at (its address on the node bridge).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = _issue(
        directory,
        "ca",
        {"CN": "reef-testbed-ca"},
        {
            "basicConstraints": "critical, CA:TRUE",
            "keyUsage": "critical, keyCertSign, cRLSign, digitalSignature",
            "subjectKeyIdentifier": "hash",
        },
        ca=None,
    )
    alt_names = [
        "IP:127.0.0.1",
        f"IP:{service_ip}",
        *(f"IP:{ip}" for ip in extra_ips),
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
    ]
    apiserver = _issue(
        directory,
        "apiserver",
        {"CN": "kube-apiserver"},
        {
            "basicConstraints": "critical, CA:FALSE",
            "keyUsage": "critical, digitalSignature, keyEncipherment",
            "extendedKeyUsage": "serverAuth",
            "subjectAltName": ", ".join(alt_names),
            "subjectKeyIdentifier": "hash",
            "authorityKeyIdentifier": "keyid",
        },
        ca=ca,
    )
    admin = _issue(
        directory,
        "admin",
        {"O": "system:masters", "CN": "reef-testbed-admin"},
        _client_extensions(),
        ca=ca,
    )
    # The bootstrap RBAC policy grants this user exactly what the controller
    # manager needs; each controller then runs under its own service account.
    controller_manager = _issue(
        directory,
        "controller-manager",
        {"CN": "system:kube-controller-manager"},
        _client_extensions(),
        ca=ca,
    )
    sa_key = directory / "service-account.key"
    sa_pub = directory / "service-account.pub"
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", str(sa_key), cwd=directory,
    )  # fmt: skip
    sa_key.chmod(0o600)
    _openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_pub), cwd=directory)
    return ControlPlanePKI(
        ca=ca,
        apiserver=apiserver,
        admin=admin,
        controller_manager=controller_manager,
        service_account_key=sa_key,
        service_account_pub=sa_pub,
    )
