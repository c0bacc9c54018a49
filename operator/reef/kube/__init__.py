"""Thin async access to the Kubernetes API shared by the operator and the agent.

The official client is synchronous; we run its calls on a bounded thread pool so
the asyncio loop (kopf's, or the agent's) never blocks on the network.
"""
