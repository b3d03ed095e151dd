"""The API's methods: each declares its parameters, the permission it needs and the objects it acts on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .params import Schema

PERMISSIONS = ("none", "signed-in", "read", "write", "admin")

Handler = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=Handler)


@dataclass(frozen=True)
class Resolve:
    """A parameter naming an object: the types it may be, and the ACL action needed on it."""

    param: str
    types: tuple[str, ...]
    action: str = "view"  # view, operate, administrate


@dataclass(frozen=True)
class Method:
    """One API method."""

    name: str
    fn: Handler
    description: str
    params: Schema | None
    permission: str
    resolve: tuple[Resolve, ...] = field(default_factory=tuple)
    secret_params: frozenset[str] = frozenset()

    def info(self) -> dict[str, Any]:
        """How system.getMethodsInfo describes it: permission null when public, absent for any user."""
        out: dict[str, Any] = {"description": self.description, "params": self.params or {}}
        if self.permission == "none":
            out["permission"] = None
        elif self.permission != "signed-in":
            out["permission"] = self.permission
        return out


METHODS: dict[str, Method] = {}


class _JsonNull:
    """Returned by a method whose answer is JSON ``null`` (``None`` means "nothing": ``true``, as XO)."""

    __slots__ = ()


NULL: Any = _JsonNull()


def api(
    name: str,
    *,
    params: Schema | None = None,
    permission: str = "signed-in",
    resolve: tuple[Resolve, ...] = (),
    secret: tuple[str, ...] = ("password",),
) -> Callable[[F], F]:
    """Declare an API method; the function's docstring is its description."""
    if permission not in PERMISSIONS:
        raise ValueError(f"{name}: unknown permission {permission}")

    def register(fn: F) -> F:
        METHODS[name] = Method(
            name,
            fn,
            (fn.__doc__ or "").strip().split("\n")[0],
            params,
            permission,
            resolve,
            frozenset(secret),
        )
        return fn

    return register
