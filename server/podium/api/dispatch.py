"""The one place every call goes through: method lookup, permission, parameters, objects, audit, errors."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import PodiumError
from ..xapi import XapiError, XapiFailure
from .context import Context
from .errors import ApiError, InvalidParameters, from_xapi
from .params import validate
from .registry import METHODS

log = logging.getLogger(__name__)
audit = logging.getLogger("podium.audit")

_REDACTED = "* obfuscated *"


def redact(params: Any, secret: frozenset[str]) -> Any:
    """Parameters fit for the audit log: secrets replaced at any depth."""
    if isinstance(params, dict):
        return {k: (_REDACTED if k in secret or "password" in k.lower() or k == "token" else redact(v, secret))
                for k, v in params.items()}  # fmt: skip
    if isinstance(params, list):
        return [redact(v, secret) for v in params]
    return params


async def call(ctx: Context, name: str, params: Any) -> Any:
    """Run one method for a connection; returns its result or raises an :class:`ApiError`."""
    begin = time.monotonic()
    method = METHODS.get(name)
    outcome = "ok"
    try:
        if method is None:
            raise ApiError(f"no such method {name}", {"method": name})
        ctx.require(method.permission)
        values = validate(method.params, params)
        for r in method.resolve:
            if values.get(r.param) is not None:
                values[r.param] = ctx.object(values[r.param], r.types, r.action)
        return await method.fn(ctx, **values)
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
    except TypeError as e:
        outcome = "TypeError"
        if method is not None and "argument" in str(e):
            raise InvalidParameters([{"code": "type", "property": "params", "message": str(e)}]) from e
        log.exception("%s failed", name)
        raise ApiError("internal error: see the server log") from e
    except Exception as e:
        outcome = "internal error"
        log.exception("%s failed", name)
        raise ApiError("internal error: see the server log") from e
    finally:
        if method is None or method.permission != "none" or name.startswith("session."):
            audit.info(
                "%s %s %s %s %.1fms",
                ctx.user.email if ctx.user else "-",
                name,
                redact(params, method.secret_params if method else frozenset()),
                outcome,
                (time.monotonic() - begin) * 1000,
            )
