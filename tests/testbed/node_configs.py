"""The configuration files of one real-node bed node: pure renderers, no I/O.

Each function returns the text of one file; tests/testbed/kubelet_nodes.py writes them.
The settings that are not defaults each answer a limit of this machine (hybrid cgroup v1,
no systemd, a bounding set without CAP_SYS_RESOURCE, several kubelets on one kernel);
docs/testbed.md lists why each is there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

POD_NETWORK = "10.244.0.0/16"
CNI_BIN_DIR = Path("/usr/lib/cni")
RUNC = "/usr/sbin/runc"


@dataclass(frozen=True)
class NodeLayout:
    """Where one node keeps its state, and the names that make it distinct."""

    name: str
    state: Path
    address: str
    """The node's address on the bed bridge (its InternalIP)."""
    pod_cidr: str
    cgroup_root: str
    """An absolute cgroup path of its own: two kubelets sharing one would delete each
    other's pod cgroups."""

    @property
    def containerd_socket(self) -> Path:
        return self.state / "containerd.sock"

    @property
    def kubelet_dir(self) -> Path:
        return self.state / "kubelet"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_state_dir(self) -> Path:
        """Bind-mounted over /var/lib/cni in the node's mount namespace."""
        return self.state / "cni" / "state"

    @property
    def reef_keys_dir(self) -> Path:
        """Bind-mounted over /var/lib/reef (the chart's key hostPath)."""
        return self.state / "reef-keys"

    @property
    def wireguard_run_dir(self) -> Path:
        """Bind-mounted over /var/run/wireguard (wireguard-go's UAPI sockets)."""
        return self.state / "wireguard"

    @property
    def pod_logs_dir(self) -> Path:
        return self.state / "pod-logs"


def containerd_config(node: NodeLayout, sandbox_image: str) -> str:
    """containerd 1.6 (config version 2), every path of its own under the node's state."""
    state = node.state
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{state / "containerd" / "root"}"
state = "{state / "containerd" / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper",
]

[grpc]
  address = "{node.containerd_socket}"

[ttrpc]
  address = "{state / "containerd.ttrpc.sock"}"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{state / "containerd" / "opt"}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # The bounding set here lacks CAP_SYS_RESOURCE: runc may not lower oom_score_adj.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{node.cni_conf_dir}"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{RUNC}"
  Root = "{state / "runc"}"
  SystemdCgroup = false
"""


def cni_conflist(node: NodeLayout) -> str:
    """A bridge network for the node's pods; traffic leaving the pod range is masqueraded."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "bed",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": node.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(node.cni_state_dir / "networks"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_config(node: NodeLayout, ca_cert: Path, resolv_conf: Path) -> str:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # Hybrid cgroup v1 without systemd: allowed explicitly, cgroupfs, a root of its own.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,
        "failSwapOn": False,
        # Without CAP_SYS_RESOURCE the kubelet may not lower its own oom_score_adj.
        "oomScoreAdj": 0,
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        "address": node.address,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "podLogsDir": str(node.pod_logs_dir),
        "resolvConf": str(resolv_conf),
        # The disk is shared by every node and the host: never evict for its fill level.
        "evictionHard": {"nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "localStorageCapacityIsolation": False,
    }
    return yaml.safe_dump(config, sort_keys=False)


def kube_proxy_config(node: NodeLayout, kubeconfig: Path) -> str:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node.name,
        "bindAddress": node.address,
        "mode": "iptables",
        "clusterCIDR": POD_NETWORK,
        # The conntrack table size and timeouts are kernel-global: leave them alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False},
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
    }
    return yaml.safe_dump(config, sort_keys=False)


def mount_setup_script(node: NodeLayout) -> str:
    """Shell run inside the node's new mount + UTS namespace, before containerd starts.

    Host-global paths get a per-node view: pod network namespaces (/run/netns), containerd's
    runtime sockets, CNI state, the chart's hostPaths, and /var/lib/kubelet — the kubelet
    keeps a few paths there whatever its --root-dir says (the device-plugin registration
    socket, device-plugins/kubelet.sock, and its serving certificate, pki/): shared, the
    node kubelets starting together raced for the one socket ("bind: address already in
    use", the kubelet exits).
    """
    binds = {
        node.cni_state_dir: "/var/lib/cni",
        node.reef_keys_dir: "/var/lib/reef",
        node.wireguard_run_dir: "/var/run/wireguard",
        node.kubelet_dir: "/var/lib/kubelet",
    }
    lines = [
        "set -e",
        f"hostname {node.name}",
        "mount -t tmpfs -o mode=0755 tmpfs /run/netns",
        "mount -t tmpfs -o mode=0711 tmpfs /run/containerd",
    ]
    for source, target in binds.items():
        lines += [f"mkdir -p '{target}'", f"mount --bind '{source}' '{target}'"]
    return "\n".join(lines)
