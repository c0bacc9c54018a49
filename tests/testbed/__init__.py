"""The test bed: real Kubernetes control plane, network-namespace nodes and a VM.

Everything here runs real components on one machine (see docs/testbed.md);
the binaries are built or fetched once into the git-ignored `.cache/`.
"""
