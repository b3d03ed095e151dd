"""Routing of API calls: the checks xapi makes before any handler runs, and ``Async.*`` as tasks.

Every message answers under both names xapi's generated server matches: ``Class.message`` and
``Class_message`` (``VM_get_all_records``, ``event_from``: what Python's XenAPI SDK sends for
``session.xenapi.event_from``, ``from`` being a keyword there), each also after ``Async.`` for a task
(``Async.VM_start``; ``Async_VM_start`` names nothing, as in xapi). As xapi, errors name the call as
the client spelled it less ``Async.`` (MESSAGE_METHOD_UNKNOWN ``VM_frobnicate``,
MESSAGE_PARAMETER_COUNT_MISMATCH ``VM_start``), its task is named with the whole name
(``Async.VM_start``), and ``system.listMethods`` lists the ``Class.message`` names only.

Order, as in xapi's generated server: method known (MESSAGE_METHOD_UNKNOWN), parameter count
(MESSAGE_PARAMETER_COUNT_MISMATCH, counted without the session), session valid (SESSION_INVALID),
parameter types (FIELD_TYPE_ERROR), then the handler. A message of the data model with no handler of
its own is served by the generic implementation when it is implicit, and answers NOT_IMPLEMENTED
otherwise: never a pretend success.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .call import Call, Handler
from .datamodel import Class, Message, Type
from .errors import Failure
from .generic import accessor, generic_handler
from .values import XDateTime, normalize_datetime, now
from .wire import xml_value

if TYPE_CHECKING:
    from .database import Database
    from .simulator import Host, Pool, Simulator

log = logging.getLogger(__name__)

HANDLERS: dict[str, Handler] = {}

_ASYNC = "Async."
# Messages whose Async form xapi refuses: getters, setters and the other implicit accessors.
_SYNC_ONLY_PREFIXES = ("get_", "set_", "add_", "remove_")


def handler(*names: str) -> Callable[[Handler], Handler]:
    """Register the implementation of one or more ``Class.message`` names."""

    def register(fn: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = fn
        return fn

    return register


async def dispatch(sim: Simulator, pool: Pool, host: Host, method: str, params: list[Any]) -> Any:
    """Run one API call and return its value, or raise :class:`Failure`."""
    sim.calls[method] += 1  # under the name the client called, whatever it names
    if method == "system.listMethods":
        return sim.list_methods()
    if method.startswith("system.isAlive"):
        return params[0] if params else ""
    is_async = method.startswith(_ASYNC)
    called = method.removeprefix(_ASYNC)  # xapi's name for the call in its errors
    found = sim.dm.message(called)
    if found is None:
        raise Failure("MESSAGE_METHOD_UNKNOWN", called)
    cls, message = found
    name = f"{cls.name}.{message.name}"
    args = _check_count(called, message, params)
    ctx = Call(sim, pool, host, name, label=method)
    if message.takes_session:
        ctx.session = sim.check_session(pool, params[0])
    elif name not in sim.no_session_methods:
        raise Failure("MESSAGE_METHOD_UNKNOWN", called)
    values = [coerce(p.type, v, p.name, sim) for p, v in zip(_declared(message), args, strict=False)]
    fn = HANDLERS.get(name) or _generic(cls, message)
    failure = sim.faults.take(name)
    if failure is not None:
        fn = _failing(failure)
    if is_async:
        if message.implicit and message.name.startswith(_SYNC_ONLY_PREFIXES):
            raise Failure("Fault", f"No async mode for this operation (rpc: {called})")
        return start_task(ctx, fn, values, message)
    return await fn(ctx, *values)


def _failing(failure: Failure) -> Handler:
    """A handler that ends in a failure the control surface injected (see ``faults.py``)."""

    async def fail(ctx: Call, *values: Any) -> Any:
        log.info("%s fails as injected: %s", ctx.label, failure)
        raise failure

    return fail


def _generic(cls: Class, message: Message) -> Handler:
    """The data-model-derived implementation: implicit messages, and explicit accessors of the same shape.

    xapi declares some setters and map accessors explicitly to validate them (``VM.set_VCPUs_max``,
    ``pool.add_to_guest_agent_config``); without a handler of their own here they behave as the implicit
    accessor of their field would.
    """
    if message.implicit:
        return generic_handler(cls, message)
    fn = accessor(cls, message)
    if fn is None:
        raise Failure("NOT_IMPLEMENTED", f"{cls.name}.{message.name}")
    return fn


def _declared(message: Message) -> list[Any]:
    return message.params[1:] if message.takes_session else message.params


def _check_count(called: str, message: Message, params: list[Any]) -> list[Any]:
    """The arguments after the session, with left-out trailing parameters at their defaults."""
    declared = _declared(message)
    given = params[1:] if message.takes_session else params
    if message.takes_session and not params:
        raise Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", called, message.mandatory, 0)
    if not message.mandatory <= len(given) <= len(declared):
        raise Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", called, message.mandatory, len(given))
    return [*given, *(p.default for p in declared[len(given) :])]


def coerce(typ: Type, value: Any, name: str, sim: Simulator) -> Any:
    """Check and convert a parameter to its declared type, as xapi's unmarshaller does."""
    kind = typ.kind
    try:
        if kind in ("string", "ref"):
            if isinstance(value, str):
                return str(value)
        elif kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return int(value)
            if isinstance(value, str):
                return int(value.strip())
        elif kind == "float":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                return float(value.strip())
        elif kind == "bool":
            if isinstance(value, bool):
                return value
        elif kind == "datetime":
            if isinstance(value, str):
                return normalize_datetime(value)
        elif kind == "enum":
            if isinstance(value, str):
                for v in sim.dm.enums.get(typ.name, []):
                    if v.lower() == value.lower():
                        return v
        elif kind == "set":
            if isinstance(value, list):
                assert typ.item is not None
                return [coerce(typ.item, v, name, sim) for v in value]
        elif kind == "map":
            if isinstance(value, dict):
                assert typ.key is not None and typ.item is not None
                return {
                    str(coerce(typ.key, k, name, sim)): coerce(typ.item, v, name, sim)
                    for k, v in value.items()
                }
        elif kind == "record":
            if isinstance(value, dict):
                return _coerce_record(typ.name, value, sim)
        elif kind == "option":
            assert typ.item is not None
            return coerce(typ.item, value, name, sim)
        else:
            return value
    except (ValueError, TypeError):
        pass
    raise Failure("FIELD_TYPE_ERROR", name)


def _coerce_record(cls_name: str, value: dict[str, Any], sim: Simulator) -> dict[str, Any]:
    cls: Class | None = sim.dm.get(cls_name)
    if cls is None:
        return dict(value)
    out = {}
    for k, v in value.items():
        f = cls.fields.get(k)
        if f is not None:
            out[k] = coerce(f.type, v, k, sim)
    return out


# --- tasks ---------------------------------------------------------------------------------------
def create_task(ctx: Call, label: str, description: str = "") -> str:
    """Add a pending task record for an operation of this call."""
    return ctx.db.create(
        "task",
        {
            "name_label": label,
            "name_description": description,
            "status": "pending",
            "progress": 0.0,
            "created": now(),
            "finished": XDateTime("19700101T00:00:00Z"),
            "resident_on": ctx.host.ref,
            "type": "<none/>",
            "result": "",
            "error_info": [],
            "allowed_operations": ["cancel"],
            "backtrace": "()",
        },
    )


def finish_task(db: Database, task: str, result: Any = None, failure: Failure | None = None) -> None:
    """Mark a task done: success with its XML-RPC-encoded result, failure, or cancelled."""
    if db.get("task", task) is None:
        return
    if failure is None:
        db.update(
            "task",
            task,
            status="success",
            progress=1.0,
            finished=now(),
            allowed_operations=[],
            current_operations={},
            result=xml_value("" if result is None else result),
        )
    else:
        status = "cancelled" if failure.code == "TASK_CANCELLED" else "failure"
        db.update(
            "task",
            task,
            status=status,
            progress=1.0,
            finished=now(),
            allowed_operations=[],
            current_operations={},
            error_info=failure.description,
        )


def start_task(ctx: Call, fn: Handler, values: list[Any], message: Message) -> str:
    """Run a handler in the background under a new task and return the task reference at once."""
    task = create_task(ctx, ctx.label)
    ctx.task = ctx.op_key = task

    async def run() -> None:
        try:
            result = await fn(ctx, *values)
        except Failure as f:
            finish_task(ctx.db, task, failure=f)
        except asyncio.CancelledError:
            finish_task(ctx.db, task, failure=Failure("TASK_CANCELLED", task))
            raise
        except Exception as e:  # a bug in the simulator: report it as xapi reports its own
            log.exception("%s failed", ctx.label)
            finish_task(ctx.db, task, failure=Failure("INTERNAL_ERROR", repr(e)))
        else:
            finish_task(ctx.db, task, result=result)

    ctx.pool.spawn(run(), name=f"task {ctx.label}")
    return task
