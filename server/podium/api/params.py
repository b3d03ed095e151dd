"""Parameter schemas in Xen Orchestra's flavour, and their validation.

A schema maps each parameter to ``{type, optional, default, description, items, properties, enum}``;
a parameter is required unless ``optional`` or it has a ``default``. Types: string, boolean, integer,
number, object, array, or ``*`` for anything; a list of types accepts any of them. Every problem is
reported at once, each naming its parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import InvalidParameters

Schema = dict[str, dict[str, Any]]

_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
    "*": lambda v: True,
}


def _problems(name: str, spec: dict[str, Any], value: Any) -> list[dict[str, Any]]:
    types = spec.get("type", "*")
    types = types if isinstance(types, list) else [types]
    if not any(_CHECKS.get(t, _CHECKS["*"])(value) for t in types):
        return [
            {"code": "type", "property": name, "message": f"must be {' or '.join(types)}, got {_kind(value)}"}
        ]
    out = []
    if "enum" in spec and value not in spec["enum"]:
        out.append(
            {
                "code": "enum",
                "property": name,
                "message": f"must be one of {', '.join(map(str, spec['enum']))}",
            }
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in spec and value < spec["minimum"]:
            out.append(
                {"code": "minimum", "property": name, "message": f"must be at least {spec['minimum']}"}
            )
        if "maximum" in spec and value > spec["maximum"]:
            out.append({"code": "maximum", "property": name, "message": f"must be at most {spec['maximum']}"})
    if isinstance(value, list) and "items" in spec:
        for i, item in enumerate(value):
            out += _problems(f"{name}[{i}]", spec["items"], item)
    if isinstance(value, dict) and "properties" in spec:
        out += _check_object(
            value, spec["properties"], prefix=f"{name}.", closed=spec.get("additionalProperties") is False
        )
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _check_object(
    values: dict[str, Any], schema: Schema, prefix: str = "", closed: bool = True
) -> list[dict[str, Any]]:
    problems = []
    for name, spec in schema.items():
        if name in values:
            problems += _problems(prefix + name, spec, values[name])
        elif not spec.get("optional") and "default" not in spec:
            problems.append({"code": "required", "property": prefix + name, "message": "is required"})
    if closed:
        for name in values:
            if name not in schema:
                problems.append(
                    {
                        "code": "unknown",
                        "property": prefix + name,
                        "message": "is not a parameter of this method",
                    }
                )
    return problems


def validate(schema: Schema | None, params: Any) -> dict[str, Any]:
    """The parameters with defaults filled in, or :class:`InvalidParameters` naming every problem."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidParameters(
            [{"code": "type", "property": "params", "message": "must be an object of named parameters"}]
        )
    if schema is None:
        return dict(params)
    problems = _check_object(params, schema)
    if problems:
        raise InvalidParameters(problems)
    out = dict(params)
    for name, spec in schema.items():
        if name not in out and "default" in spec:
            out[name] = spec["default"]
    return out
