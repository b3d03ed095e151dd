"""Every method's parameters fuzzed: never an internal error, always a named invalid parameter (or a result)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.api import methods as _methods  # noqa: F401  (registers them)
from podium.api.registry import METHODS

from ..harness.serverproc import Api, ApiError, connected, start_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Methods that would end the fuzzing session itself or wait by design.
_SKIP = {"session.signOut", "user.delete", "server.remove", "server.disable", "server.set", "user.set"}
FUZZED = sorted(n for n in METHODS if n not in _SKIP)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda v: st.lists(v, max_size=3) | st.dictionaries(st.text(max_size=6), v, max_size=3),
    max_leaves=5,
)


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, dict]:
    name = draw(st.sampled_from(FUZZED))
    schema = METHODS[name].params or {}
    params = {}
    for key in schema:
        if draw(st.booleans()):
            params[key] = draw(values)
    if draw(st.integers(0, 4)) == 0:
        params[draw(st.text(min_size=1, max_size=6))] = draw(values)
    return name, params


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from ..harness.simproc import start_sim

    sim = start_sim("--op-seconds", "0")
    srv = start_server(tmp_path_factory.mktemp("fuzz"))

    async def setup() -> None:
        async with Api(srv.url) as api:
            await api.sign_in()
            await connected(api, sim)

    asyncio.run(setup())
    yield srv
    srv.stop()
    sim.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(calls(), min_size=1, max_size=8))
def test_api_fuzzed_params_never_cause_an_internal_error(fuzz_server, batch):
    async def run() -> list[tuple[str, dict, ApiError]]:
        errors = []
        async with Api(fuzz_server.url) as api:
            await api.sign_in()
            for name, params in batch:
                try:
                    await asyncio.wait_for(api.call(name, params), 20)
                except TimeoutError:
                    raise AssertionError(f"no answer to {name} {params!r}") from None
                except ApiError as e:
                    errors.append((name, params, e))
        return errors

    for name, params, e in asyncio.run(run()):
        assert e.code != -32000, (name, params, str(e))  # an internal error
        if e.code == 10:  # an invalid parameter is named
            assert e.data["errors"] and all("instancePath" in x for x in e.data["errors"]), (name, params)
    assert "Traceback" not in fuzz_server.log()
