"""reef.leanimport: submodules load without their package's ``__init__``, and a later plain
import of the package still runs it and shares the modules already loaded."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reef.leanimport import import_skipping_package_init

PACKAGE = "reef_leanimport_probe"


@pytest.fixture
def probe_package(tmp_path: Path) -> Iterator[Path]:
    """A package whose __init__ records that it ran, with a subpackage and a module."""
    root = tmp_path / PACKAGE
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text(
        "import builtins\nbuiltins.reef_probe_init_runs += 1\n"
        "FROM_INIT = True\nfrom . import heavy\n"
    )
    (root / "heavy.py").write_text("LOADED = True\n")
    (root / "sub" / "__init__.py").write_text("raise RuntimeError('sub/__init__ must not run')\n")
    (root / "sub" / "light.py").write_text(f"from {PACKAGE} import tool\nVALUE = tool.ANSWER\n")
    (root / "tool.py").write_text("ANSWER = 42\n")
    sys.path.insert(0, str(tmp_path))
    import builtins

    builtins.reef_probe_init_runs = 0  # type: ignore[attr-defined]
    try:
        yield root
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        del builtins.reef_probe_init_runs  # type: ignore[attr-defined]


def test_submodules_load_without_the_package_files(probe_package: Path) -> None:
    import builtins

    (light,) = import_skipping_package_init([PACKAGE, f"{PACKAGE}.sub"], [f"{PACKAGE}.sub.light"])
    assert light.VALUE == 42
    assert builtins.reef_probe_init_runs == 0  # type: ignore[attr-defined]
    assert f"{PACKAGE}.heavy" not in sys.modules
    # a module imported later, on first use, finds the same parent (and still no __init__)
    import importlib

    tool = importlib.import_module(f"{PACKAGE}.tool")
    assert tool.ANSWER == 42
    assert builtins.reef_probe_init_runs == 0  # type: ignore[attr-defined]


def test_the_package_file_runs_once_when_a_name_it_defines_is_asked_for(
    probe_package: Path,
) -> None:
    import builtins
    import importlib

    (tool,) = import_skipping_package_init([PACKAGE], [f"{PACKAGE}.tool"])
    package = importlib.import_module(PACKAGE)
    assert package.tool is tool  # a submodule: no need to run the package file
    assert builtins.reef_probe_init_runs == 0  # type: ignore[attr-defined]
    assert package.FROM_INIT  # defined by the package file, which runs now
    assert package.heavy.LOADED
    assert builtins.reef_probe_init_runs == 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        _ = package.missing
    assert builtins.reef_probe_init_runs == 1  # type: ignore[attr-defined]
    assert importlib.import_module(f"{PACKAGE}.tool") is tool


def test_an_imported_package_is_used_as_it_is(probe_package: Path) -> None:
    import builtins
    import importlib

    importlib.import_module(PACKAGE)
    (tool,) = import_skipping_package_init([PACKAGE], [f"{PACKAGE}.tool"])
    assert tool.ANSWER == 42
    assert builtins.reef_probe_init_runs == 1  # type: ignore[attr-defined]
    assert PACKAGE in sys.modules


def test_a_missing_package_is_an_import_error() -> None:
    with pytest.raises(ImportError):
        import_skipping_package_init(["reef_no_such_package"], ["reef_no_such_package.x"])


def test_the_agents_start_path_runs_no_package_file_that_imports_it_all() -> None:
    """Importing the agent and its dataplane modules runs none of the kubernetes, pyroute2
    and prometheus_client package files (nor loads kopf): a plain ``from kubernetes
    import ...`` on that path would load what they do."""
    import os
    import subprocess

    script = (
        "import sys, reef.agent.main, reef.dataplane.select, reef.agent.device;"
        " print(sorted({'kopf', 'kubernetes.config', 'kubernetes.dynamic', 'pyroute2.ndb',"
        " 'pyroute2.ipdb', 'prometheus_client.exposition'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.stdout.strip() == "[]"


INCLUSTER_SCRIPT = """
import sys
import reef.agent.main, reef.agent.device, reef.dataplane.select
from reef.leanimport import import_skipping_package_init
(incluster,) = import_skipping_package_init(
    ["kubernetes", "kubernetes.config"], ["kubernetes.config.incluster_config"]
)
incluster.SERVICE_TOKEN_FILENAME, incluster.SERVICE_CERT_FILENAME = sys.argv[1:3]
from reef.kube.client import Kube, client, load_api_client
from reef.settings import AgentSettings
kube = Kube(load_api_client(AgentSettings.from_environment(), 1), 1)
reference = client.V1ObjectReference(name="y")
client.CoreV1Event(metadata=client.V1ObjectMeta(name="x"), involved_object=reference)
print(kube.api_client.configuration.host, "kubernetes.config.kube_config" in sys.modules)
"""


def _in_a_pod(script: str, *args: str) -> str:
    """``script``'s output, run with a pod's service environment and only REEF_NODE_NAME."""
    import os
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=False,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("REEF_")},
            "PYTHONPATH": os.pathsep.join(sys.path),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": "6443",
            "REEF_NODE_NAME": "node-a",
        },
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_an_in_cluster_process_builds_the_official_client_and_models(tmp_path: Path) -> None:
    """The service-account path of the official client (the operator's; the agent's own
    client is below), as in a pod (the token and CA files are the only stand-ins): the
    client's lazily imported modules (ApiClient, the APIs, the models) load without the
    kubeconfig loader."""
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("a-token\n")
    ca.write_text("not read before a connection\n")
    output = _in_a_pod(INCLUSTER_SCRIPT, str(token), str(ca))
    assert output.split() == ["https://127.0.0.1:6443", "False"]


INCLUSTER_AGENT_SCRIPT = """
import sys
from pathlib import Path
import reef.agent.main, reef.agent.device, reef.dataplane.select
import reef.kube.http
reef.kube.http.SERVICE_ACCOUNT = Path(sys.argv[1])
from reef.agent.main import agent_kube
from reef.settings import AgentSettings
kube = agent_kube(AgentSettings.from_environment(), 1)
loaded = [m for m in ("kubernetes.client.api_client", "urllib3", "yaml") if m in sys.modules]
print(kube.api_client, kube._http.host, loaded)
"""


def test_an_in_cluster_agent_talks_through_the_standard_library_client(tmp_path: Path) -> None:
    """The agent's own transport (reef.kube.http) with the pod's service-account files:
    neither the official ApiClient nor urllib3 nor YAML is loaded."""
    import shutil

    import certifi

    (tmp_path / "token").write_text("a-token\n")
    shutil.copy(certifi.where(), tmp_path / "ca.crt")  # any valid CA bundle
    output = _in_a_pod(INCLUSTER_AGENT_SCRIPT, str(tmp_path))
    assert output.split(maxsplit=2) == ["None", "https://127.0.0.1:6443", "[]"]
