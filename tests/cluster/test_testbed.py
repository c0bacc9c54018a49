"""The test bed is a real Kubernetes API: the behaviours reef relies on, proven.

If one of these fails, every cluster test after it is suspect: the bed (or
the cluster named with --kubeconfig) is not behaving like Kubernetes.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from urllib3 import HTTPResponse

from tests.testbed.binaries import REPO_ROOT, binary
from tests.testbed.clients import KubeCLI, KubeTarget
from tests.testbed.identities import (
    NODE_NAME_EXTRA,
    api_client_for_token,
    bind_pod_to_node,
    create_node,
    create_service_account,
    node_bound_token,
    request_token,
)
from tests.testbed.kubeconfig import UnsafeClusterError, extract_named_context
from tests.testbed.versions import KUBERNETES_VERSION


@dataclass(frozen=True)
class WidgetCRD:
    """A throw-away namespaced kind with a status subresource."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"


def _crd_manifest(crd: WidgetCRD) -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: {crd.name}
        spec:
          group: {crd.group}
          scope: Namespaced
          names: {{plural: {crd.plural}, singular: widget, kind: {crd.kind}}}
          versions:
            - name: {crd.version}
              served: true
              storage: true
              subresources: {{status: {{}}}}
              schema:
                openAPIV3Schema:
                  type: object
                  properties:
                    spec:
                      type: object
                      properties: {{size: {{type: integer}}}}
                    status:
                      type: object
                      properties: {{observedSize: {{type: integer}}}}
        """
    )


@pytest.fixture(scope="module")
def widget_crd(kubectl: KubeCLI) -> Iterator[WidgetCRD]:
    """A test-only CRD with a group unique to this run, applied with kubectl."""
    crd = WidgetCRD(
        group=f"t{os.urandom(3).hex()}.testbed.reef.test",
        version="v1",
        plural="widgets",
        kind="Widget",
    )
    kubectl("apply", "-f", "-", input=_crd_manifest(crd))
    try:
        kubectl("wait", "--for=condition=Established", f"crd/{crd.name}", "--timeout=60s")
        yield crd
    finally:
        kubectl("delete", "crd", crd.name, "--wait=false", check=False)


def _events(response: HTTPResponse) -> Iterator[dict[str, Any]]:
    """The decoded events of a raw watch response, as they arrive."""
    for line in iter_resp_lines(response):
        event: dict[str, Any] = json.loads(line)
        yield event


def _as_dict(obj: object) -> dict[str, Any]:
    """The custom-objects API returns plain JSON objects, typed as `object`."""
    assert isinstance(obj, dict)
    return obj


def _who_am_i(client: ApiClient) -> kubernetes.client.V1UserInfo:
    """The user the API server sees behind `client` (SelfSubjectReview)."""
    review = kubernetes.client.AuthenticationV1Api(client).create_self_subject_review(
        kubernetes.client.V1SelfSubjectReview()
    )
    assert review.status is not None
    assert review.status.user_info is not None
    return review.status.user_info


@pytest.mark.cluster
def test_api_server_reports_the_pinned_release(
    kube_api: ApiClient, kube_target: KubeTarget
) -> None:
    version = kubernetes.client.VersionApi(kube_api).get_code()
    if not kube_target.local_bed:
        pytest.skip(f"existing cluster runs {version.git_version}; the pin is for the bed")
    assert version.git_version == KUBERNETES_VERSION


@pytest.mark.cluster
def test_crd_applied_with_kubectl_becomes_established_and_served(
    widget_crd: WidgetCRD, kubectl: KubeCLI
) -> None:
    served = kubectl("api-resources", f"--api-group={widget_crd.group}", "-o", "name")
    assert served.stdout.split() == [widget_crd.name]


@pytest.mark.cluster
def test_custom_object_changes_arrive_on_a_watch_opened_before_them(
    kube_api: ApiClient, widget_crd: WidgetCRD, namespace: str
) -> None:
    custom = kubernetes.client.CustomObjectsApi(kube_api)
    where = (widget_crd.group, widget_crd.version, namespace, widget_crd.plural)
    start = _as_dict(custom.list_namespaced_custom_object(*where))["metadata"]["resourceVersion"]
    # Returns once the server has sent the watch's response headers: the
    # watch is open before the object exists. The read timeout is the deadline.
    response: HTTPResponse = custom.list_namespaced_custom_object(
        *where,
        watch=True,
        resource_version=start,
        timeout_seconds=60,
        _preload_content=False,
        _request_timeout=(5, 30),
    )  # type: ignore[assignment]  # a raw response when _preload_content=False
    try:
        events = _events(response)
        body = {
            "apiVersion": f"{widget_crd.group}/{widget_crd.version}",
            "kind": widget_crd.kind,
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
        }
        custom.create_namespaced_custom_object(*where, body)
        added = next(events)
        assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "w1")

        custom.patch_namespaced_custom_object_status(*where, "w1", {"status": {"observedSize": 3}})
        modified = next(events)
        assert modified["type"] == "MODIFIED"
        assert modified["object"]["status"] == {"observedSize": 3}
        assert modified["object"]["spec"] == {"size": 3}
    finally:
        # Close, not just release: a half-read watch must not go back to the pool.
        response.close()
        response.release_conn()


@pytest.mark.cluster
def test_status_changes_only_through_the_status_subresource(
    kube_api: ApiClient, widget_crd: WidgetCRD, namespace: str
) -> None:
    custom = kubernetes.client.CustomObjectsApi(kube_api)
    where = (widget_crd.group, widget_crd.version, namespace, widget_crd.plural)
    body = {
        "apiVersion": f"{widget_crd.group}/{widget_crd.version}",
        "kind": widget_crd.kind,
        "metadata": {"name": "w2"},
        "spec": {"size": 1},
        "status": {"observedSize": 99},
    }
    created = _as_dict(custom.create_namespaced_custom_object(*where, body))
    assert "status" not in created

    patched = _as_dict(
        custom.patch_namespaced_custom_object(
            *where, "w2", {"spec": {"size": 2}, "status": {"observedSize": 99}}
        )
    )
    assert (patched["spec"], patched.get("status")) == ({"size": 2}, None)


@pytest.mark.cluster
def test_update_with_a_stale_resource_version_is_a_conflict(
    kube_api: ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespaced_config_map(
        namespace,
        kubernetes.client.V1ConfigMap(
            metadata=kubernetes.client.V1ObjectMeta(name="ledger"), data={"next": "1"}
        ),
    )
    stale = core.read_namespaced_config_map("ledger", namespace)
    fresh = core.read_namespaced_config_map("ledger", namespace)
    fresh.data = {"next": "2"}
    core.replace_namespaced_config_map("ledger", namespace, fresh)

    stale.data = {"next": "3"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("ledger", namespace, stale)
    assert conflict.value.status == 409
    assert core.read_namespaced_config_map("ledger", namespace).data == {"next": "2"}


@pytest.mark.cluster
def test_service_account_token_without_rights_is_forbidden_what_admin_may_do(
    kube_api: ApiClient, namespace: str
) -> None:
    create_service_account(kube_api, namespace, "nobody")
    token = request_token(kube_api, namespace, "nobody")
    with api_client_for_token(kube_api, token) as as_nobody:
        user = _who_am_i(as_nobody)
        assert user.username == f"system:serviceaccount:{namespace}:nobody"
        assert NODE_NAME_EXTRA not in (user.extra or {})  # only pod-bound tokens carry a node
        with pytest.raises(ApiException) as forbidden:
            kubernetes.client.CoreV1Api(as_nobody).list_namespaced_config_map(namespace)
        assert forbidden.value.status == 403
    kubernetes.client.CoreV1Api(kube_api).list_namespaced_config_map(namespace)


@pytest.mark.cluster
def test_pod_bound_token_names_the_pods_node_in_the_user_info(
    kube_api: ApiClient, namespace: str, unique_name: Callable[[str], str]
) -> None:
    node = unique_name("node")
    core = kubernetes.client.CoreV1Api(kube_api)
    try:
        bound = node_bound_token(kube_api, namespace, "agent", node, pod_name="agent-0")
        with api_client_for_token(kube_api, bound.token) as as_agent:
            user = _who_am_i(as_agent)
        assert user.username == f"system:serviceaccount:{namespace}:agent"
        assert (user.extra or {}).get(NODE_NAME_EXTRA) == [node]
    finally:
        core.delete_node(node)


@pytest.mark.cluster
def test_daemonset_makes_a_pod_for_a_node_that_can_be_bound_like_a_scheduler_would(
    kube_api: ApiClient,
    kube_target: KubeTarget,
    kubectl: KubeCLI,
    namespace: str,
    unique_name: Callable[[str], str],
) -> None:
    if not kube_target.local_bed:
        pytest.skip("a real cluster has a scheduler, which binds the Pod itself")
    node = unique_name("node")
    core = kubernetes.client.CoreV1Api(kube_api)
    try:
        create_node(kube_api, node, labels={"testbed.reef.test/node": node})
        kubectl("apply", "-n", namespace, "-f", "-", input=_daemonset_manifest("agent", node))
        kubectl("wait", "-n", namespace, "--for=create", "pod", "-l", "app=agent", "--timeout=60s")
        (pod,) = core.list_namespaced_pod(namespace, label_selector="app=agent").items
        assert pod.metadata is not None
        assert pod.metadata.name is not None
        assert pod.spec is not None
        assert pod.spec.node_name is None  # no scheduler in the bed

        bind_pod_to_node(kube_api, namespace, pod.metadata.name, node)
        bound = core.read_namespaced_pod(pod.metadata.name, namespace)
        assert bound.spec is not None
        assert bound.spec.node_name == node
    finally:
        core.delete_node(node)


def _daemonset_manifest(name: str, node: str) -> str:
    """A DaemonSet whose Pods go only to `node` (other tests' Nodes may exist)."""
    return textwrap.dedent(
        f"""\
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {{name: {name}}}
        spec:
          selector: {{matchLabels: {{app: {name}}}}}
          template:
            metadata: {{labels: {{app: {name}}}}}
            spec:
              nodeSelector: {{testbed.reef.test/node: {node}}}
              tolerations: [{{operator: Exists}}]
              containers: [{{name: main, image: reef.invalid/never-runs:0}}]
        """
    )


@pytest.mark.cluster
def test_bed_command_serves_until_sigterm_and_leaves_nothing_behind(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    if pytestconfig.getoption("kubeconfig"):
        pytest.skip("tests the local bed itself; this run targets an existing cluster")
    bed_dir = tmp_path / "bed"
    cli = subprocess.Popen(
        [sys.executable, "-m", "tests.testbed.controlplane", "up", "--dir", str(bed_dir)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "cli.log").open("wb"),
        text=True,
    )
    try:
        assert cli.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(cli.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=120)
        assert ready, f"no kubeconfig path within 120 s: {(tmp_path / 'cli.log').read_text()}"
        kubeconfig = Path(cli.stdout.readline().strip())
        readyz = subprocess.run(
            [str(binary("kubectl")), f"--kubeconfig={kubeconfig}", "get", "--raw", "/readyz"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert readyz.stdout.strip() == "ok"
        children_file = Path(f"/proc/{cli.pid}/task/{cli.pid}/children")
        children = [int(pid) for pid in children_file.read_text().split()]
        assert len(children) == 3  # etcd, kube-apiserver, kube-controller-manager

        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=60) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
    assert not bed_dir.exists()


def _user_kubeconfig(path: Path, server: str) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "prod",
        "clusters": [
            {"name": "prod", "cluster": {"server": "https://prod.example.com:6443"}},
            {"name": "kind", "cluster": {"server": server, "certificate-authority": "ca.crt"}},
        ],
        "users": [{"name": "u", "user": {"token": "secret"}}],
        "contexts": [
            {"name": "prod", "context": {"cluster": "prod", "user": "u"}},
            {"name": "kind-reef", "context": {"cluster": "kind", "user": "u"}},
        ],
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_existing_cluster_is_refused_without_an_explicitly_named_context(tmp_path: Path) -> None:
    source = _user_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443")
    with pytest.raises(UnsafeClusterError, match="--kube-context"):
        extract_named_context(source, context=None, server=None, dest=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_remote_cluster_is_refused_unless_its_server_is_named_too(tmp_path: Path) -> None:
    source = _user_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443")
    with pytest.raises(UnsafeClusterError, match="not on this machine"):
        extract_named_context(source, context="prod", server=None, dest=tmp_path / "out")
    with pytest.raises(UnsafeClusterError, match="not at --kube-server"):
        extract_named_context(
            source, context="prod", server="https://other:6443", dest=tmp_path / "out"
        )
    extract_named_context(
        source, context="prod", server="https://prod.example.com:6443", dest=tmp_path / "out"
    )
    assert (tmp_path / "out").exists()


def test_named_local_context_is_copied_alone_and_made_current(tmp_path: Path) -> None:
    source = _user_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443")
    dest = tmp_path / "out" / "kubeconfig"
    cluster = extract_named_context(source, context="kind-reef", server=None, dest=dest)
    copied = yaml.safe_load(dest.read_text())
    assert cluster.server == "https://127.0.0.1:6443"
    assert copied["current-context"] == "kind-reef"
    assert [c["name"] for c in copied["contexts"]] == ["kind-reef"]
    assert [c["cluster"]["server"] for c in copied["clusters"]] == ["https://127.0.0.1:6443"]
    assert copied["clusters"][0]["cluster"]["certificate-authority"] == str(tmp_path / "ca.crt")


def test_unique_names_are_dns_labels_and_differ(unique_name: Callable[[str], str]) -> None:
    names = {unique_name("ns") for _ in range(50)}
    assert len(names) == 50
    assert all(len(n) <= 63 and n == n.lower() and n[0].isalpha() for n in names)
