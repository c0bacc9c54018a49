"""reef: permanent, conflict-free WireGuard mesh addresses for every Kubernetes node.

The package is split by responsibility (see docs/architecture in README):
``api`` and ``ipam`` are pure (no I/O), ``operator`` and ``agent`` glue them to the
Kubernetes API, ``dataplane`` drives WireGuard.
"""

__version__ = "0.1.0"
