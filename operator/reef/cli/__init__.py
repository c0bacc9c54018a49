"""``reef`` / ``kubectl reef``: the user's view of the mesh, and hosts outside the cluster.

Pure parts (the health report, the table, DOT and wg-quick renderers) are plain
functions of API objects, unit-tested without a cluster; the I/O (kubeconfig, reads,
writes, the watch for an address) lives in :mod:`reef.cli.cluster` and the verb
modules. Nothing here is imported on the agent's or operator's start path.
"""
