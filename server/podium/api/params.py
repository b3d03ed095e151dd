"""Parameter schemas in Xen Orchestra's flavour, and their validation.

A schema maps each parameter to ``{type, optional, default, description, items, properties, enum}``;
a parameter is required unless ``optional`` or it has a ``default``; a parameter named ``*`` is the
schema of any other one (otherwise unknown parameters are refused). Types: string, boolean, integer,
number, object, array, or ``*`` for anything; a list of types accepts any of them. Strings must not be
empty unless a ``minLength``, ``format`` or ``pattern`` says otherwise. Every problem is reported at
once, as Ajv reports it to Xen Orchestra (``instancePath``, ``keyword``, ``params``, ``message``).

A declaration writes each parameter with a helper named after its type: ``string(optional=True)`` is
``{"type": "string", "optional": True}``, ``array(string())`` an array of strings, ``either("boolean",
"string")`` one of several types. Their keywords are the schema's own keys, kept in the order given
(system.getMethodsInfo answers them in that order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import InvalidParameters

Spec = dict[str, Any]
Schema = dict[str, Spec]


def string(**spec: Any) -> Spec:
    """A string (empty allowed only by ``minLength=0``, a ``format`` or a ``pattern``)."""
    return {"type": "string", **spec}


def boolean(**spec: Any) -> Spec:
    """A boolean."""
    return {"type": "boolean", **spec}


def integer(**spec: Any) -> Spec:
    """An integer."""
    return {"type": "integer", **spec}


def number(**spec: Any) -> Spec:
    """A number, integer or not."""
    return {"type": "number", **spec}


def object_(**spec: Any) -> Spec:
    """An object (its ``properties`` checked as a schema when given)."""
    return {"type": "object", **spec}


def array(items: Spec, **spec: Any) -> Spec:
    """An array whose every item is ``items``."""
    return {"type": "array", "items": items, **spec}


def either(*types: str, **spec: Any) -> Spec:
    """A value of any of these types."""
    return {"type": list(types), **spec}


def anything(**spec: Any) -> Spec:
    """Any value."""
    return {"type": "*", **spec}


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


def _error(path: str, keyword: str, params: dict[str, Any], message: str) -> dict[str, Any]:
    # Ajv's error objects, as xo-server reports them (xo-cli prints instancePath).
    return {
        "instancePath": path,
        "schemaPath": f"#/{keyword}",
        "keyword": keyword,
        "params": params,
        "message": message,
    }


def _problems(path: str, spec: dict[str, Any], value: Any) -> list[dict[str, Any]]:
    types = spec.get("type", "*")
    types = types if isinstance(types, list) else [types]
    if not any(_CHECKS.get(t, _CHECKS["*"])(value) for t in types):
        return [
            _error(
                path, "type", {"type": ",".join(types)}, f"must be {' or '.join(types)}, got {_kind(value)}"
            )
        ]
    out = []
    if "enum" in spec and value not in spec["enum"]:
        out.append(
            _error(
                path, "enum", {"allowedValues": spec["enum"]}, "must be equal to one of the allowed values"
            )
        )
    if isinstance(value, str) and "enum" not in spec:
        limit = spec.get("minLength", 0 if ("format" in spec or "pattern" in spec) else 1)
        if len(value) < limit:
            out.append(
                _error(path, "minLength", {"limit": limit}, f"must NOT have fewer than {limit} characters")
            )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in spec and value < spec["minimum"]:
            out.append(_error(path, "minimum", {"limit": spec["minimum"]}, f"must be >= {spec['minimum']}"))
        if "maximum" in spec and value > spec["maximum"]:
            out.append(_error(path, "maximum", {"limit": spec["maximum"]}, f"must be <= {spec['maximum']}"))
    if isinstance(value, list) and "items" in spec:
        for i, item in enumerate(value):
            out += _problems(f"{path}/{i}", spec["items"], item)
    if isinstance(value, dict) and "properties" in spec:
        out += _check_object(value, spec["properties"], path)
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


def _check_object(values: dict[str, Any], schema: Schema, path: str = "") -> list[dict[str, Any]]:
    problems = []
    wildcard = schema.get("*")
    for name, spec in schema.items():
        if name == "*":
            continue
        if name in values:
            problems += _problems(f"{path}/{name}", spec, values[name])
        elif not spec.get("optional") and "default" not in spec:
            problems.append(
                _error(path, "required", {"missingProperty": name}, f"must have required property '{name}'")
            )
    for name in values:
        if name not in schema:
            if wildcard is not None:
                problems += _problems(f"{path}/{name}", wildcard, values[name])
            else:
                problems.append(
                    _error(
                        path,
                        "additionalProperties",
                        {"additionalProperty": name},
                        f"must NOT have additional property '{name}'",
                    )
                )
    return problems


def validate(schema: Schema | None, params: Any) -> dict[str, Any]:
    """The parameters with defaults filled in, or :class:`InvalidParameters` naming every problem."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidParameters(
            [_error("", "type", {"type": "object"}, "must be an object of named parameters")]
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
