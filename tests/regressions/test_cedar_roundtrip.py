"""The Cedar export read back by the Cedar import: the smallest cases the widened
generators found (tests/cedar/test_import.py::test_imported_cedar_decides_as_cedar). mcpp
writes these files itself, so it must read them back, each type in its role, and decide
as the source does."""

from __future__ import annotations

import pytest

from mcpp.lang.cedar_export import export_program
from mcpp.lang.cedar_model import CedarNames
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant

NAMES = CedarNames("Ns::User", "Ns::Team", "Ns::Host", "Ns::Action")

# (name, source, calls as (grant, groups) → the source's decision is the answer)
CASES = [
    ("`principal in` the principal's own type is equality, not a group",
     'permit (principal in Grant::"g0", action, resource);'),
    ("the same in a condition",
     'permit (principal, action, resource) when { principal in Grant::"g0" };'),
    ("an entity literal of the principal's type in a condition",
     'permit (principal, action, resource) when { Grant::"g0" in Group::"a" };'),
    ("`principal in` a set holding the principal's type and a group",
     'permit (principal, action, resource) when { principal in [Grant::"g0", Group::"a"] };'),
    ("a literal of the principal's type in a set holding its own type",
     'permit (principal, action, resource) when { Grant::"g0" in [Grant::"g1", Group::"a"] };'),
    ("`principal is … in` the principal's own type",
     'permit (principal is Grant in Grant::"g0", action, resource);'),
    ("literals of the principal's type compared",
     'permit (principal, action, resource) when { Grant::"g0" == Grant::"g1" || Grant::"g0" == "g0" };'),
    ("the principal compared with a group, tested against a server",
     'permit (principal, action, resource) when { principal == Group::"a" || principal is Group || principal in Server::"s0" };'),
    ("a group or server literal in groups",
     'permit (principal, action, resource) when { Group::"a" in Group::"a" && !(Server::"s0" in Group::"a") };'),
    ("the resource in a group",
     'permit (principal, action, resource) unless { resource in Group::"a" };'),
    ("`has` on a literal of the principal's type",
     'permit (principal, action, resource) when { Grant::"g0" has label };'),
    ("`is … in` on a literal of the principal's type",
     'permit (principal, action, resource) when { Grant::"g0" is Grant in Group::"a" };'),
    ("a literal in the principal or the resource",
     'permit (principal, action, resource) when { Grant::"g0" in principal || Server::"s0" in resource || Group::"a" in principal };'),
    ("the scope's `in` and a group in a condition",
     'permit (principal in Grant::"g0", action, resource) when { principal in Group::"a" };'),
]


@pytest.mark.parametrize("name,source", CASES, ids=[c[0] for c in CASES])
def test_the_export_reads_back_in_its_roles(name, source):  # noqa: ARG001 (`name` names the case)
    src = load_program(source)
    text = export_program(src, names=NAMES).policies
    back = load_program(text, "p.cedar")  # refusing its own export is a failure too
    # each type the file names is read in its role; a type the file does not name cannot
    # have its name read (the import takes a default), but never the other role's
    got = (back.cedar.names.principal, back.cedar.names.group)
    for mine, want, other in zip(got, ("Ns::User", "Ns::Team"), ("Ns::Team", "Ns::User")):
        assert mine == want if f"{want}::" in text else mine != other, (text, got)
    for grant, groups in (("g0", frozenset()), ("g1", frozenset()), ("g0", frozenset({"a"}))):
        want = Engine(src).decide("t0", {}, Grant(grant, "", groups), "s0", reserve=False).allowed
        got = Engine(back).decide("t0", {}, Grant(grant, "", groups), "s0", reserve=False).allowed
        assert got == want, (text, grant, groups)
