"""`tools/list` for one caller: the tools for which *some* call could be allowed.

The caller is a grant (`visible_tools`) or a user with its attributes and groups
(`visible_tools_for_user`): fixed, so the question is exact for *this* principal. A tool
is listed when a call to it exists that the policy allows (or would allow once a person
approves) for this caller and server with every limit counter at zero. Hidden tools never are. When the solver cannot
decide in time, the tool is listed: showing a tool only lets the agent *try* it, and the
call is still decided by the engine, whereas hiding a usable tool breaks the agent. So
errors lean toward showing (the call path stays fail-closed).

Results are cached per (program, principal, server): the gateway asks on every
`tools/list`. A user is cached by id, attributes (as the policy types them) and groups:
two tokens of the same person with different claims are two principals.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from mcpp.lang.program import Program

from mcpp.lang.plan import mentioned_tools

from .encode import FixedGrant, FixedUser, decide, other_tool
from .solve import Session

log = logging.getLogger("mcpp.analyzer")

_LOCK = threading.Lock()
_CACHE: "OrderedDict[tuple, tuple[Program, dict[str, bool]]]" = OrderedDict()
_CACHE_SIZE = 1024


def visible_tools(
    program: Program,
    tool_names,
    *,
    grant_id: str,
    label: str = "",
    groups=(),
    server: str = "default",
    timeout_ms: int = 500,
) -> set[str]:
    """The subset of `tool_names` this grant can see on this server."""
    return _visible(program, tool_names, FixedGrant(grant_id, label, frozenset(groups)), server, timeout_ms)


def visible_tools_for_user(
    program: Program,
    tool_names,
    *,
    user_id: str,
    attrs=None,
    groups=(),
    server: str = "default",
    timeout_ms: int = 500,
) -> set[str]:
    """The subset of `tool_names` the user `User::"<user_id>"` with these attributes (its
    mapped claims) and groups can see on this server. A user who does not fit the
    policy's `entity User` sees nothing: the engine denies every call it makes."""
    from mcpp.lang.identity import PrincipalError

    try:
        user = FixedUser.of(program, user_id, attrs or {}, frozenset(groups))
    except PrincipalError:
        return set()
    return _visible(program, tool_names, user, server, timeout_ms)


def _visible(program: Program, tool_names, grant, server: str, timeout_ms: int) -> set[str]:
    key = (id(program), grant, server)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] is program:
            _CACHE.move_to_end(key)
            known = hit[1]
        else:
            known = {}
    named = mentioned_tools(program)
    other = other_tool(program)
    out = set()
    fresh = {}
    session = None
    for name in tool_names:
        probe = name if name in named else other  # every unnamed tool is decided alike
        if probe not in known and probe not in fresh:
            if session is None:
                session = Session(timeout_ms)
            fresh[probe] = _can_allow(session, program, probe, grant, server)
        if known.get(probe, fresh.get(probe)):
            out.add(name)
    if fresh:
        with _LOCK:
            merged = dict(known)
            merged.update(fresh)
            _CACHE[key] = (program, merged)
            _CACHE.move_to_end(key)
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return out


def _can_allow(session: Session, program: Program, tool: str, grant: FixedGrant | FixedUser, server: str) -> bool:
    if tool in program.hidden:
        return False
    req = session.request(grant, server)
    try:
        d = decide(req, program, tool)
        o = session.check(req, d.runs(zero=True))  # an approval-bound tool is listed: calling it asks a person
    except Exception:
        # no failure is expected here (regex limits and timeouts are "unknown" answers, not
        # errors); should one happen, show the tool (the call itself is still enforced) and log it
        log.exception("visibility of tool %r for grant %r could not be decided", tool, grant.id)
        return True
    return not o.unsat


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
