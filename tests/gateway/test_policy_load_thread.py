"""A policy first used by a call (a grant's own policy, the first time that grant calls) is
loaded, and its asserts proved, off the event loop: Z3 can take seconds there, and every
other caller would wait."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

from mcpp.runtime.gateway.policies import PolicyState
from mcpp.runtime.gateway.principals import Caller
from mcpp import Grant

from .peers import in_process_runtime


def test_a_grant_policy_first_used_by_a_call_loads_in_a_worker_thread(tmp_path, monkeypatch):
    rt, server = in_process_runtime(tmp_path, 'default deny;\npermit (principal, action == Action::"echo", resource);\n')
    own = tmp_path / "own.mcpp"
    own.write_text('default deny;\npermit (principal, action == Action::"whoami", resource);\n'
                   'assert deny (principal, action == Action::"echo", resource);\n')
    loads: list[str] = []
    real = PolicyState.load

    def load(self):
        loads.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(PolicyState, "load", load)
    caller = Caller(Grant("g_1", "intern"), SimpleNamespace(policy=str(own)))

    async def first_and_second_call():
        loop_thread = threading.current_thread().name
        first = await rt.engine_for(server, caller)
        second = await rt.engine_for(server, caller)
        return loop_thread, first, second

    loop_thread, (policy, sha), second = asyncio.run(first_and_second_call())
    assert len(loads) == 1 and loads[0] != loop_thread  # loaded once, not on the event loop
    assert sha is not None and second == (policy, sha)  # then served from the registry
    assert policy.decide("whoami", {}).allowed and not policy.decide("echo", {}).allowed
