"""pytest wiring for tests that need Kubernetes: the local bed, or a cluster you name.

By default a session that selects any ``cluster`` test starts one local
control plane (tests/testbed/controlplane.py) and stops it at the end, even
on failures and Ctrl-C; the binaries are built first if the cache is cold.

The same tests run against an existing cluster (kind, k3d, ...) with::

    python -m pytest --kubeconfig ~/.kube/config --kube-context kind-reef

The context must be named: the suite never uses the current context or
$KUBECONFIG. A context whose server is not on loopback is refused unless
``--kube-server URL`` names that server too.

Fixtures (all but `unique_name` mark the test ``cluster`` automatically):
``kube_target``, ``kubeconfig``, ``kube_api``, ``kubectl``, ``helm``,
``namespace``, ``unique_name``.
"""

from __future__ import annotations

import re
import secrets
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes.client
import kubernetes.config
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from kubernetes.client import ApiClient

from tests.testbed.binaries import ensure_binaries
from tests.testbed.clients import KubeCLI, KubeTarget
from tests.testbed.controlplane import CONTEXT_NAME, LocalControlPlane
from tests.testbed.kubeconfig import UnsafeClusterError, extract_named_context

# Property tests check logic, not speed (speed is what bench/ measures). Hypothesis'
# default 200 ms deadline per example and its too-slow health check turn a loaded CI
# machine into failures that have nothing to do with the property.
hypothesis_settings.register_profile(
    "reef", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("reef")

pytest_plugins = ["tests.support.fixtures"]

CLUSTER_FIXTURES = frozenset(
    {"kube_target", "kubeconfig", "kube_api", "kubectl", "helm", "namespace"}
)

_existing_target = pytest.StashKey[KubeTarget]()
_existing_dir = pytest.StashKey[Path]()
_bed_startup = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reef cluster", "which Kubernetes cluster the cluster tests use")
    group.addoption(
        "--kubeconfig",
        metavar="PATH",
        default=None,
        help="run cluster tests against an existing cluster from this kubeconfig "
        "(needs --kube-context); default: start the local test bed",
    )
    group.addoption(
        "--kube-context",
        metavar="NAME",
        default=None,
        help="the context of --kubeconfig to use; required, never guessed",
    )
    group.addoption(
        "--kube-server",
        metavar="URL",
        default=None,
        help="the exact server URL of --kube-context; required when it is not on loopback",
    )
    group.addoption(
        "--reef-image",
        metavar="REPO:TAG",
        default=None,
        help="with --kubeconfig: the reef image your nodes already have (kind load ...), "
        "for the in-cluster tests (tests/incluster)",
    )
    group.addoption(
        "--node-shell-image",
        metavar="IMAGE",
        default="busybox:1.36",
        help="with --kubeconfig: an image with ping, for commands run on a node",
    )


def pytest_configure(config: pytest.Config) -> None:
    source = config.getoption("kubeconfig")
    if source is None:
        if config.getoption("kube_context") or config.getoption("kube_server"):
            raise pytest.UsageError("--kube-context/--kube-server need --kubeconfig")
        return
    path = Path(source).expanduser()
    if not path.is_file():
        raise pytest.UsageError(f"--kubeconfig {path}: no such file")
    directory = Path(tempfile.mkdtemp(prefix="reef-kubeconfig-"))
    dest = directory / "kubeconfig"
    try:
        cluster = extract_named_context(
            path,
            context=config.getoption("kube_context"),
            server=config.getoption("kube_server"),
            dest=dest,
        )
    except UnsafeClusterError as error:
        shutil.rmtree(directory)
        raise pytest.UsageError(str(error)) from error
    config.stash[_existing_dir] = directory
    config.stash[_existing_target] = KubeTarget(
        kubeconfig=dest,
        context=config.getoption("kube_context"),
        server=cluster.server,
        local_bed=False,
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_existing_dir, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a cluster fixture ``cluster`` (before -m deselects)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & CLUSTER_FIXTURES:
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing bed binaries before any test runs, outside every test's timeout."""
    config = session.config
    if config.option.collectonly or _existing_target in config.stash:
        return
    if any(item.get_closest_marker("cluster") for item in session.items):
        ensure_binaries()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    seconds = config.stash.get(_bed_startup, None)
    if seconds is not None:
        terminalreporter.write_line(f"reef test bed: control plane ready in {seconds:.1f}s")


@pytest.fixture(scope="session")
def kube_target(request: pytest.FixtureRequest) -> Iterator[KubeTarget]:
    """The cluster under test: the named existing one, or a local bed for this session."""
    existing = request.config.stash.get(_existing_target, None)
    if existing is not None:
        yield existing
        return
    bed = LocalControlPlane()
    # `timeout`, CI runners and IDEs stop a run with SIGTERM, which would end
    # Python without any teardown: while the bed runs, SIGTERM acts as Ctrl-C.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        bed.start()
        seconds = bed.startup_seconds
        request.config.stash[_bed_startup] = seconds if seconds is not None else 0.0
        yield KubeTarget(
            kubeconfig=bed.kubeconfig,
            context=CONTEXT_NAME,
            server=bed.server,
            local_bed=True,
            startup_seconds=seconds,
        )
    finally:
        bed.stop()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def kubeconfig(kube_target: KubeTarget) -> Path:
    """Path of an admin kubeconfig with one context (also fine as ``KUBECONFIG``)."""
    return kube_target.kubeconfig


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path) -> Iterator[ApiClient]:
    """A kubernetes ApiClient with admin rights on the cluster under test."""
    client: ApiClient = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def kubectl(kube_target: KubeTarget) -> KubeCLI:
    """``kubectl(*args, input=None, check=True, timeout=120) -> CompletedProcess[str]``."""
    return KubeCLI.kubectl(kube_target)


@pytest.fixture(scope="session")
def helm(kube_target: KubeTarget) -> KubeCLI:
    """``helm(*args, input=None, check=True, timeout=120) -> CompletedProcess[str]``."""
    return KubeCLI.helm(kube_target)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name(prefix) -> str``: a fresh DNS-1123 label naming the test, for any object."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")

    def make(prefix: str = "t") -> str:
        suffix = secrets.token_hex(3)
        room = max(0, 63 - len(prefix) - len(suffix) - 2)
        middle = slug[:room].strip("-")
        return "-".join(part for part in (prefix, middle, suffix) if part)

    return make


@pytest.fixture
def namespace(kube_api: ApiClient, unique_name: Callable[[str], str]) -> Iterator[str]:
    """A fresh namespace for this test; deleted afterwards (without waiting for it to go)."""
    core = kubernetes.client.CoreV1Api(kube_api)
    name = unique_name("ns")
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
    )
    try:
        yield name
    finally:
        core.delete_namespace(name)
