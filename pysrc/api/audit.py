"""Running a mutating action with its audit row (REST routes and WebSocket commands alike).

The row is written after the action with its outcome (ok + result, or the error), the
authenticated user and the request's trace id. A failing audit write is logged, never turned into
an error response: the action has happened, and an error would invite the client to repeat it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pysrc.api.backend import Backend, BackendError
from pysrc.obs.log import current_trace_id, get_logger

T = TypeVar("T")
log = get_logger("pysrc.api.audit")


async def write_audit(
    backend: Backend,
    actor: str,
    action: str,
    params: Mapping[str, Any],
    *,
    ok: bool,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> None:
    tid = current_trace_id()
    try:
        await backend.audit(actor, action, params, ok=ok, result=result, error=error, trace_id=tid)
    except Exception:  # the action already happened: log loudly, answer normally
        log.exception("audit_failed", actor=actor, action=action)


async def audited(
    backend: Backend,
    actor: str,
    action: str,
    params: Mapping[str, Any],
    call: Callable[[], Awaitable[T]],
) -> T:
    """``await call()`` and audit it; the call's exception (if any) propagates after the row."""
    try:
        result = await call()
    except BackendError as exc:
        await write_audit(backend, actor, action, params, ok=False, error=f"{exc.code}: {exc.message}")
        raise
    except Exception as exc:
        await write_audit(backend, actor, action, params, ok=False, error=f"internal: {type(exc).__name__}")
        raise
    shown: Mapping[str, Any] | None
    if isinstance(result, Mapping):
        shown = result
    elif isinstance(result, list):
        shown = {"items": result}
    else:
        shown = None
    await write_audit(backend, actor, action, params, ok=True, result=shown)
    return result


__all__ = ["audited", "write_audit"]
