"""Errors as Xen Orchestra's API reports them: ``{code, message, data}`` (xo-common's api-errors)."""

from __future__ import annotations

from typing import Any

from ..errors import PodiumError
from ..xapi import XapiFailure


class ApiError(PodiumError):
    """An error with XO's code and data."""

    code = 11
    status = 500

    @classmethod
    def wrap(cls, e: PodiumError) -> ApiError:
        """Any of Podium's errors as an API error, keeping its code, status, message and data."""
        data = e.data
        if e.code == InvalidParameters.code and not data:
            # "name: what is wrong" from a check the schema cannot express: named as a schema error would be.
            prop, sep, why = e.message.partition(": ")
            named = sep and " " not in prop
            data = invalid(prop if named else "", why if named else e.message).data
        err = cls(e.message, data)
        err.code, err.status = e.code, e.status
        return err


class NoSuchObject(ApiError):
    """XO's noSuchObject: no object of that id (or not one the user may see)."""

    code = 1
    status = 404

    def __init__(self, id_: str, type_: str | None = None) -> None:
        data = {"id": id_} if type_ is None else {"id": id_, "type": type_}
        super().__init__(f"no such {type_ or 'object'} {id_}", data)


class Unauthorized(ApiError):
    """XO's unauthorized: not signed in, or not enough permissions."""

    code = 2
    status = 403

    def __init__(
        self, permission: str | None = None, object_id: str | None = None, object_type: str | None = None
    ) -> None:
        obj = {k: v for k, v in (("id", object_id), ("type", object_type)) if v is not None}
        data: dict[str, Any] = {"object": obj}
        if permission is not None:
            data["permission"] = permission
        super().__init__(
            "not enough permissions" if permission else "not enough permissions: sign in first", data
        )


class MethodNotFound(ApiError):
    """JSON-RPC's method not found, naming the method."""

    code = -32601
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"method not found: {name}", name)


class InvalidParameters(ApiError):
    """XO's invalidParameters: names each parameter that is wrong and why."""

    code = 10
    status = 400

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        detail = "; ".join(f"{e['instancePath'] or 'params'} {e['message']}" for e in errors)
        super().__init__(f"invalid parameters: {detail}", {"errors": errors})


def invalid(
    param: str, message: str, keyword: str = "value", params: dict[str, Any] | None = None
) -> InvalidParameters:
    """An invalidParameters naming one parameter, for checks beyond what a schema can say."""
    path = f"/{param}" if param else ""
    error = {
        "instancePath": path,
        "schemaPath": f"#{path}",
        "keyword": keyword,
        "params": params or {},
        "message": message,
    }
    return InvalidParameters([error])


class VmBadPowerState(ApiError):
    """XO's vmBadPowerState."""

    code = 13
    status = 409


class OperationFailed(ApiError):
    """XO's operationFailed: the pool refused; data carries XAPI's code and parameters."""

    code = 21


class NoHostsAvailable(ApiError):
    """XO's noHostsAvailable, which xo-server makes of XAPI's NO_HOSTS_AVAILABLE (xo-web offers to force)."""

    code = 7
    status = 409


class IncorrectState(ApiError):
    """XO's incorrectState: an object is not in the state the operation needs."""

    code = 25
    status = 409

    def __init__(self, actual: Any, expected: Any, object_: str, property_: str | None = None) -> None:
        data = {"actual": actual, "expected": expected, "object": object_}
        if property_ is not None:
            data["property"] = property_
        super().__init__("incorrect state", data)


_XAPI_ERRORS: dict[str, type[ApiError]] = {
    "VM_BAD_POWER_STATE": VmBadPowerState,
    "NO_HOSTS_AVAILABLE": NoHostsAvailable,
}

# What common XAPI failures mean to the person who asked, after XAPI's own code (which stays searchable).
_XAPI_MEANING = {
    "IMPORT_ERROR": "the pool could not import the file",
    "IMPORT_ERROR_PREMATURE_EOF": "the upload ended before the XVA did: the file is truncated, or not an XVA",
    "IMPORT_ERROR_CANNOT_HANDLE_CHUNKED": "the pool needs the length of the upload in advance",
    "IMPORT_INCOMPATIBLE_VERSION": "the XVA was exported by a newer version than the pool runs",
    "SR_FULL": "the storage repository has not enough free space",
    "SR_HAS_NO_PBDS": "the storage repository is not attached to any host",
    "HANDLE_INVALID": "the object no longer exists in the pool",
    "UUID_INVALID": "the object no longer exists in the pool",
    "OTHER_OPERATION_IN_PROGRESS": "another operation on the object is running: try again when it ends",
    "OPERATION_NOT_ALLOWED": "the pool does not allow this operation now",
    "HOST_NOT_ENOUGH_FREE_MEMORY": "no host has enough free memory for the VM",
    "HOST_OFFLINE": "the host is offline",
    "NO_HOSTS_AVAILABLE": "no host can run the VM",
    "HOST_NOT_DISABLED": "the host must be disabled first",
    "HOST_STILL_BOOTING": "the host is still starting: try again in a moment",
    "HOST_DISABLED_UNTIL_REBOOT": "the host stays disabled until it has rebooted",
    "VM_REQUIRES_NET": "the VM needs a network that this host has no interface on",
    "TASK_CANCELLED": "the task was cancelled",
    "VDI_IN_USE": "the disk is in use",
    "VM_REQUIRES_SR": "the VM needs a storage repository that this host cannot reach",
    "DEFAULT_SR_NOT_FOUND": "the pool has no default storage repository: name one",
    "PERMISSION_DENIED": "the pool account Podium uses is not allowed to do this",
}


def from_xapi(e: XapiFailure) -> ApiError:
    """A XAPI failure as the API reports it, keeping XAPI's own code and parameters in ``data``."""
    cls = _XAPI_ERRORS.get(e.xapi_code, OperationFailed)
    if cls is VmBadPowerState and len(e.params) >= 3:
        return VmBadPowerState(
            f"VM state is {e.params[2]} but should be {e.params[1]}",
            {"objectId": e.params[0], "expected": e.params[1], "actual": e.params[2]},
        )
    text = f"{e.xapi_code}({', '.join(e.params)})"
    if e.xapi_code in _XAPI_MEANING:
        text += f": {_XAPI_MEANING[e.xapi_code]}"
    return cls(text, {"code": e.xapi_code, "params": e.params})
