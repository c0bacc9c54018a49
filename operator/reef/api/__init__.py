"""The reef API as data: names, pydantic models of spec and status, conditions.

Nothing in here performs I/O; the operator and the agent share these definitions so
that both sides of the API agree on every field name.
"""
