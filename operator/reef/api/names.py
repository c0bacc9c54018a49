"""Names of the reef API: group, version, resources, and the labels and finalizer we own.

Every string that identifies a reef object on the API server lives here, so a rename
is one edit and a typo is an import error rather than a silent mismatch.
"""

from typing import Final

GROUP: Final = "mesh.reef.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

MESH_NETWORK_KIND: Final = "MeshNetwork"
MESH_NETWORK_PLURAL: Final = "meshnetworks"
MESH_AGENT_KIND: Final = "MeshAgent"
MESH_AGENT_PLURAL: Final = "meshagents"

DEFAULT_NETWORK: Final = "default"

#: Guards a MeshAgent's deletion until its address is marked released in the ledger.
RELEASE_FINALIZER: Final = f"{GROUP}/release-address"
#: Guards a MeshNetwork's deletion until no member holds its addresses; then the
#: operator deletes the network's ledger ConfigMaps and removes it.
NETWORK_FINALIZER: Final = f"{GROUP}/members-released"

#: Labels on ledger ConfigMaps; the operator lists a network's whole ledger by them.
LEDGER_NETWORK_LABEL: Final = f"{GROUP}/network"
LEDGER_COMPONENT_LABEL: Final = "app.kubernetes.io/component"
LEDGER_COMPONENT: Final = "ipam-ledger"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "reef"

#: Server-side-apply field managers; operator and agent own disjoint status fields.
OPERATOR_FIELD_MANAGER: Final = "reef-operator"
AGENT_FIELD_MANAGER: Final = "reef-agent"

#: External hosts (docs/external-hosts.md): the ServiceAccount of a host that runs
#: ``reef agent`` is this prefix + its MeshAgent name, in the reef release namespace,
#: bound to the chart's ClusterRole (``<release>-external-host``; ``reef`` → this default).
EXTERNAL_HOST_ACCOUNT_PREFIX: Final = "reef-host-"
EXTERNAL_HOST_ROLE: Final = "reef-external-host"
#: Label ``reef join`` puts on a member whose dataplane is wg-quick (no agent reports on it).
DATAPLANE_LABEL: Final = f"{GROUP}/dataplane"
WG_QUICK_DATAPLANE: Final = "wg-quick"
