"""`make release` against a real OCI registry on loopback (Debian's docker-registry), then
`helm install oci://...` of the chart it pushed into the bed."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import reef
from tests.install.helm_release import NO_NODE_SELECTOR, live_objects, write_values
from tests.testbed.binaries import REPO_ROOT, binary
from tests.testbed.clients import KubeCLI
from tests.testbed.controlplane import free_port
from tests.testbed.image import BASE_IMAGE, ensure_base_image, missing_programs
from tests.testbed.processes import ManagedProcess, wait_until_ready

REGISTRY_BINARY = "/usr/bin/docker-registry"

pytestmark = [
    pytest.mark.image,
    pytest.mark.skipif(
        bool(missing_programs()), reason=f"image tools missing: {missing_programs()}"
    ),
]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """An OCI registry on 127.0.0.1 only, storing into tmp_path; its host:port."""
    assert Path(REGISTRY_BINARY).exists(), "scripts/setup.sh installs Debian's docker-registry"
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(tmp_path / "blobs")}},
                "http": {"addr": address},
            }
        )
    )
    process = ManagedProcess(
        "docker-registry", [REGISTRY_BINARY, "serve", str(config)], tmp_path / "registry.log"
    )
    process.start()
    try:
        wait_until_ready(
            process, lambda: _answers(f"http://{address}/v2/"), timeout=30, what="/v2/ answering"
        )
        yield address
    finally:
        process.stop()


@pytest.mark.usefixtures("reef_crds")
def test_make_release_pushes_chart_and_image_and_helm_installs_from_the_registry(
    registry: str, helm: KubeCLI, kubectl: KubeCLI, namespace: str, tmp_path: Path
) -> None:
    ensure_base_image()
    prefix = f"{registry}/reef-project"
    version = reef.__version__
    env = {
        **os.environ,
        "REGISTRY": prefix,
        "PLAIN_HTTP": "1",
        "BASE": BASE_IMAGE,
        "HELM": str(binary("helm")),
        "PODMAN_BUILD_OPTS": "--isolation chroot",
    }
    make = shutil.which("make")
    assert make, "make not found"
    result = subprocess.run(
        [make, "-C", str(REPO_ROOT), "release"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"pushed chart oci://{prefix}/charts/reef:{version}" in result.stdout

    with urllib.request.urlopen(f"http://{registry}/v2/reef-project/reef/tags/list") as response:
        tags = set(json.load(response)["tags"])
    assert {version, version.rsplit(".", 1)[0]} <= tags

    token = secrets.token_hex(3)
    name, network = f"rel-{token}", f"net-{token}"
    values = write_values(
        tmp_path,
        {
            "network": {"name": network, "cidrs": ["100.67.0.0/24"], "keepOnUninstall": False},
            "agent": {"nodeSelector": NO_NODE_SELECTOR},
        },
    )
    helm(
        "install",
        name,
        f"oci://{prefix}/charts/reef",
        "--version",
        version,
        "--plain-http",
        "-n",
        namespace,
        "-f",
        str(values),
        "--wait=false",
        timeout=180,
    )
    try:
        kinds = {kind for kind, _, _ in live_objects(kubectl, name)}
        assert {"Deployment", "DaemonSet", "MeshNetwork", "ValidatingAdmissionPolicy"} <= kinds
        deployment = json.loads(
            kubectl("get", "deploy", f"{name}-reef-operator", "-n", namespace, "-o", "json").stdout
        )
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"{prefix}/reef:{version}", "the released chart installs the released image"
    finally:
        helm("uninstall", name, "-n", namespace, timeout=180)
