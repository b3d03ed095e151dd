"""The one place every call goes through: method lookup, permission, parameters, objects, audit, errors."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import PodiumError
from ..xapi import XapiError, XapiFailure
from .context import Context
from .errors import ApiError, MethodNotFound, from_xapi
from .params import validate
from .registry import METHODS, NULL

log = logging.getLogger(__name__)

_REDACTED = "* obfuscated *"


def _is_secret(key: str, secret: frozenset[str]) -> bool:
    return key in secret or "password" in key.lower() or key == "token"


def redact(params: Any, secret: frozenset[str]) -> Any:
    """Parameters fit for the audit log: secrets replaced at any depth."""
    if isinstance(params, dict):
        return {k: _REDACTED if _is_secret(k, secret) else redact(v, secret) for k, v in params.items()}
    if isinstance(params, list):
        return [redact(v, secret) for v in params]
    return params


class Unknown(ApiError):
    """An unexpected error: its details only for admins, as xo-server does."""

    code = -32000

    def __init__(self, detail: str | None) -> None:
        super().__init__(detail or "unknown error from the peer")


def _alias_id(name: str, schema: Any, params: Any) -> Any:
    """``vm.start {vm: X}`` means ``{id: X}``, as xo-server allows."""
    namespace = name.split(".", 1)[0]
    if (
        isinstance(params, dict)
        and schema is not None
        and "id" in schema
        and namespace not in schema
        and params.get("id") is None
        and isinstance(params.get(namespace), str)
    ):
        params = dict(params)
        params["id"] = params.pop(namespace)
    return params


async def call(ctx: Context, name: str, params: Any) -> Any:
    """Run one method for a connection; returns its result or raises an :class:`ApiError`."""
    begin = time.monotonic()
    method = METHODS.get(name)
    outcome = "ok"
    try:
        if method is None:
            raise MethodNotFound(name)
        ctx.require(method.permission)
        params = _alias_id(name, method.params, params)
        values = validate(method.params, params)
        for r in method.resolve:
            if values.get(r.param) is not None:
                values[r.param] = ctx.object(values[r.param], r.types, r.action)
        result = await method.fn(ctx, **values)
        return True if result is None else (None if result is NULL else result)
    except XapiFailure as e:
        outcome = e.xapi_code
        raise from_xapi(e) from e
    except XapiError as e:
        outcome = type(e).__name__
        raise ApiError.wrap(e) from e
    except ApiError as e:
        outcome = type(e).__name__
        raise
    except PodiumError as e:
        outcome = type(e).__name__
        raise ApiError.wrap(e) from e
    except Exception as e:
        outcome = "internal error"
        log.exception("%s failed", name)
        raise Unknown(str(e) if ctx.is_admin else None) from e
    finally:
        if method is None or method.permission != "none" or name.startswith("session."):
            ctx.services.audit.record(
                user=ctx.who,
                remote=ctx.remote,
                method=name,
                params=redact(params, method.secret_params if method else frozenset()),
                outcome=outcome,
                duration_ms=(time.monotonic() - begin) * 1000,
            )
