"""The two ways reef writes an object someone else may be changing at the same moment.

- :func:`compare_and_swap`: a read-modify-write with the ``resourceVersion`` it was
  computed from as the precondition. A 409 means "the object moved on": read it again and
  recompute. For decisions that depend on what is there (an address is set once; a
  finalizer list is kept whole).
- Server-side apply (:meth:`reef.kube.client.Kube.apply_status`): for fields one writer
  owns outright, e.g. its own conditions; the API server merges each writer's entries by
  ``type`` and tracks who owns which under the field managers of :mod:`reef.api.names`,
  so the operator's and the agent's conditions never overwrite each other.

:func:`read_or_none` is the one "fresh read" both need: the object as the API server has
it now, or None once it is gone.
"""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from reef.leanimport import import_skipping_package_init

if TYPE_CHECKING:
    from kubernetes.client.exceptions import ApiException
else:
    # Without kubernetes/__init__ (see reef.kube.client): the agent imports this first.
    (_exceptions,) = import_skipping_package_init(["kubernetes"], ["kubernetes.client.exceptions"])
    ApiException = _exceptions.ApiException

__all__ = [
    "CONFLICT",
    "MAX_ATTEMPTS",
    "NOT_FOUND",
    "ApiException",
    "Body",
    "PatchBuilder",
    "compare_and_swap",
    "is_status",
    "read_or_none",
]

CONFLICT = 409
NOT_FOUND = 404

#: Attempts at a compare-and-swap write before giving up to the caller's next pass.
MAX_ATTEMPTS = 8

Body = dict[str, Any]
#: Gets the latest object, returns the patch to send (None: nothing to write).
PatchBuilder = Callable[[Body], "Body | None"]


def is_status(error: BaseException, code: int) -> bool:
    return isinstance(error, ApiException) and error.status == code


async def read_or_none(read: Awaitable[Body]) -> Body | None:
    """Await a GET; None on 404 (the object is gone), any other error raised."""
    try:
        return await read
    except ApiException as error:
        if error.status == NOT_FOUND:
            return None
        raise


async def compare_and_swap(
    current: Body | None,
    build: PatchBuilder,
    write: Callable[[Body], Awaitable[Body]],
    reread: Callable[[], Awaitable[Body | None]],
) -> tuple[bool, Body | None]:
    """Read-modify-write of one object, its resourceVersion the precondition.

    ``build`` gets the latest object and returns the patch, or None when nothing needs
    writing; the helper adds ``metadata.resourceVersion``. On 409 ``reread`` fetches the
    object again and ``build`` is asked again. Returns (whether a write happened, the
    latest object; None once it is gone). Raises RuntimeError after
    :data:`MAX_ATTEMPTS` conflicts in a row.
    """
    for _ in range(MAX_ATTEMPTS):
        if current is None:
            return False, None
        patch = build(current)
        if patch is None:
            return False, current
        patch.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        try:
            return True, await write(patch)
        except ApiException as error:
            if error.status == NOT_FOUND:
                return False, None
            if error.status != CONFLICT:
                raise
        current = await reread()
    name = (current or {}).get("metadata", {}).get("name", "?")
    raise RuntimeError(f"{name} kept changing under us; the next pass retries")
