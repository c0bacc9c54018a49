"""The node agent: key, registration, watch, peer planning, device sync, status.

Layers: :mod:`reef.agent.peers` and :mod:`reef.agent.health` are pure decisions
(property-tested); :mod:`reef.agent.keys`, :mod:`reef.agent.informer`,
:mod:`reef.agent.registration`, :mod:`reef.agent.device` and
:mod:`reef.agent.status` do the I/O; :mod:`reef.agent.bootstrap`,
:mod:`reef.agent.watches`, :mod:`reef.agent.configure`, :mod:`reef.agent.reporting` and
:mod:`reef.agent.resolver` are the steps of the loop that :mod:`reef.agent.agent` runs, and
:mod:`reef.agent.main` is the ``reef agent`` entry point.
"""
