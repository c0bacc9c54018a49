"""The allocation operator: kopf handlers glued to the pure ``reef.ipam`` core.

Handlers stay thin; the per-network batcher (``network_allocator``) is the only code
that mutates a network's ledger, and every ledger write is a compare-and-swap.
"""
