"""The test file format: `<policy>.test.toml` beside `<policy>.mcpp`, read and checked.

A test file is TOML (docs/testing.md explains why TOML over JSON lines): named cases,
each one call — or a sequence of calls, for limits — with the decision it must get and
optionally the rule pointer, the policy id and the message. The structure is checked
with pydantic (unknown keys, wrong types), then the arguments are checked to be JSON
values. Every error names the TOML key path (`case[2].calls[0].decision`) and, where
the key can be found in the text, its `file:line:col`.

    policies = ["refunds.mcpp"]          # optional: default <stem>.mcpp, else <stem>.json

    [[case]]
    name = "a refund within the cap is allowed"
    tool = "refund_payment"
    arguments = { amount = 50 }
    decision = "allow"
    policy = "refund-cap"

The caller is a grant (`grant`, the default: `anonymous`) or, for a policy with users
(`entity User`), a user with its claims as the gateway maps them (`user = { id = "alice",
attrs = { scopes = ["k8s:write"] }, groups = ["sre"] }`), the engine's `User`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from mcpp.lang.diagnostics import Diagnostic, MCPPError, Span, did_you_mean
from mcpp.lang.jsontext import TOO_DEEP, is_text
from mcpp.lang.nesting import too_deep
from mcpp.lang.tomltext import TOMLUnreadable, read_toml
from mcpp.runtime.engine import Caller, Grant, User

SUFFIX = ".test.toml"
POLICY_SUFFIXES = (".mcpp", ".json")
# A fixed instant (2026-01-01T00:00:00Z) for cases that give no `time`: limit windows are
# calendar-aligned, so a test must not depend on the wall clock.
DEFAULT_TIME = datetime(2026, 1, 1, tzinfo=timezone.utc)
MAX_REPEAT = 100_000
EXPECT_KEYS = ("decision", "rule", "policy", "message")


# ---- the TOML structure --------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GrantModel(_Model):
    id: StrictStr = "anonymous"
    label: StrictStr = ""
    groups: list[StrictStr] = []


class UserModel(_Model):
    id: StrictStr = Field(min_length=1)
    attrs: dict[str, Any] = {}
    groups: list[StrictStr] = []


class _CallFields(_Model):
    tool: StrictStr | None = None
    arguments: dict[str, Any] | None = None
    arguments_json: StrictStr | None = None
    grant: StrictStr | GrantModel | None = None
    user: StrictStr | UserModel | None = None
    server: StrictStr | None = None
    time: datetime | None = None


class _Expect(_Model):
    decision: Literal["allow", "deny", "approval"] | None = None
    rule: StrictStr | None = None
    policy: StrictStr | None = None
    message: StrictStr | None = None


class StepModel(_CallFields, _Expect):
    repeat: StrictInt = Field(default=1, ge=1, le=MAX_REPEAT)


class CaseModel(_CallFields, _Expect):
    name: StrictStr = Field(min_length=1)
    calls: list[StepModel] | None = None


class FileModel(_Model):
    policies: list[StrictStr] | None = None
    case: list[CaseModel] = []


# ---- what the runner gets ---------------------------------------------------------------------


@dataclass
class Step:
    """One call and what its decision must be (`repeat` identical calls in a row)."""

    tool: str
    arguments: dict
    caller: Caller  # a Grant, or a User (its id, claims and groups)
    server: str
    time: datetime
    expect: dict  # a subset of decision / rule / policy / message
    repeat: int = 1
    line: int = 0
    caller_at: tuple = ()  # the key path of the `user` that gave the caller (its attributes are checked per policy)


@dataclass
class Case:
    name: str
    steps: list[Step]
    index: int
    line: int = 0

    @property
    def sequence(self) -> bool:
        return len(self.steps) > 1 or self.steps[0].repeat > 1


@dataclass
class TestFile:
    __test__ = False
    path: Path
    policies: list[Path]
    cases: list[Case]
    text: str = ""
    policies_given: bool = False


@dataclass
class _Lines:
    """Where the `[[case]]` and `[[case.calls]]` headers and the keys under them are."""

    text: str
    cases: list[int] = field(default_factory=list)  # 0-based line index of each [[case]]
    calls: list[list[int]] = field(default_factory=list)

    @classmethod
    def scan(cls, text: str) -> "_Lines":
        out = cls(text)
        for i, line in enumerate(text.splitlines()):
            s = line.strip()
            if re.fullmatch(r"\[\[\s*case\s*\]\]\s*(#.*)?", s):
                out.cases.append(i)
                out.calls.append([])
            elif re.fullmatch(r"\[\[\s*case\s*\.\s*calls\s*\]\]\s*(#.*)?", s) and out.calls:
                out.calls[-1].append(i)
        return out

    def case_line(self, ci: int) -> int:
        return self.cases[ci] + 1 if 0 <= ci < len(self.cases) else 0

    def call_line(self, ci: int, si: int) -> int:
        if 0 <= ci < len(self.calls) and 0 <= si < len(self.calls[ci]):
            return self.calls[ci][si] + 1
        return 0

    def find(self, loc: tuple) -> tuple[int, int]:
        """(line, col), 1-based, of the key at `loc`, or of the header of the table that
        holds it; (0, 0) when neither can be placed."""
        lines = self.text.splitlines()
        start = 0  # the 1-based line of the table's header; 0: the top of the file
        rest = loc
        if loc and loc[0] == "case" and len(loc) >= 2 and isinstance(loc[1], int):
            start = self.case_line(loc[1])
            if not start:
                return (0, 0)
            rest = loc[2:]
            if len(rest) >= 2 and rest[0] == "calls" and isinstance(rest[1], int):
                call = self.call_line(loc[1], rest[1])
                start, rest = (call, rest[2:]) if call else (start, ())
        key = rest[0] if rest and isinstance(rest[0], str) else None
        if key is not None:
            pattern = re.compile(r"^\s*(" + re.escape(key) + r'|"' + re.escape(key) + r'")\s*[.=]')
            for i in range(start, len(lines)):  # from the line after the header to the next header
                if lines[i].lstrip().startswith("["):
                    break
                m = pattern.match(lines[i])
                if m:
                    return (i + 1, m.start(1) + 1)
        return (start, 1) if start else (0, 0)


def key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + (part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part))
    return out


class TestFileError(MCPPError):
    """A test file that is not a valid test file (exit 1: the input has errors)."""

    __test__ = False  # not a pytest class, whatever its name


class TestFileUnreadable(TestFileError):
    """A test file that cannot be read at all (exit 2, like every unreadable input)."""


def _diag(path: Path, lines: _Lines | None, loc: tuple, message: str) -> Diagnostic:
    line, col = lines.find(loc) if lines is not None else (0, 0)
    where = key_path(loc)
    text = f"{where}: {message}" if where else message
    if not line:
        line, col = 1, 1
    return Diagnostic(text, Span(line, col, line, col + 1), "error", "test-file", str(path))


_PYDANTIC_TYPES = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "dict_type": "expected a table",
    "list_type": "expected an array",
    "datetime_type": "expected a TOML date-time with an offset, like 2026-01-01T09:00:00Z",
    "model_type": "expected a table",
    "extra_forbidden": "unknown key",
    "missing": "required",
}


def _pydantic_errors(path: Path, lines: _Lines, e: ValidationError) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: set[tuple] = set()
    errors = e.errors()
    # `grant` and `user` are a string or a table: when it is a table with a bad key, the
    # error about the table is the one to show, not "expected a string"
    deep = {tuple(x["loc"])[: list(x["loc"]).index(m)] for x in errors for m in _CALLER_MODELS
            if m in x["loc"] and list(x["loc"]).index(m) < len(x["loc"]) - 1}
    for err in errors:
        loc = tuple(err["loc"])
        if "str" in loc and loc[: loc.index("str")] in deep:
            continue
        # `grant = "id" | {…}` reports one error per alternative; name the key once
        clean = tuple(p for p in loc if p not in ("str", *_CALLER_MODELS, "function-after[_check_json()]"))
        if clean in seen:
            continue
        seen.add(clean)
        kind = err.get("type", "")
        msg = _PYDANTIC_TYPES.get(kind, err.get("msg", "invalid"))
        if clean and clean[-1] == "grant" and kind in ("string_type", "model_type", "dict_type"):
            msg = 'expected a grant id or a table { id = "…", label = "…", groups = ["…"] }'
        if clean and clean[-1] == "user" and kind in ("string_type", "model_type", "dict_type"):
            msg = 'expected a user id or a table { id = "…", attrs = { … }, groups = ["…"] }'
        if kind == "string_too_short" and clean[-2:] == ("user", "id"):
            msg = "a user id is not empty"
        if kind == "extra_forbidden" and clean:
            msg = f"unknown key {clean[-1]!r}" + _did_you_mean(clean)
        if kind == "literal_error":
            msg = 'expected "allow", "deny" or "approval"'
        out.append(_diag(path, lines, clean, msg))
    return sorted(out, key=lambda d: (d.span.line, d.span.col))


_CALLER_MODELS = ("GrantModel", "UserModel")
_KNOWN = {
    "file": ("policies", "case"),
    "case": ("name", "tool", "arguments", "arguments_json", "grant", "user", "server", "time", "calls") + EXPECT_KEYS,
    "calls": ("tool", "arguments", "arguments_json", "grant", "user", "server", "time", "repeat") + EXPECT_KEYS,
}


def _did_you_mean(loc: tuple) -> str:
    parent = "file" if len(loc) == 1 else ("calls" if "calls" in loc[:-1] else "case")
    if len(loc) > 1 and loc[-2] == "grant":
        known: tuple = ("id", "label", "groups")
    elif len(loc) > 1 and loc[-2] == "user":
        known = ("id", "attrs", "groups")
    else:
        known = _KNOWN[parent]
    near = did_you_mean(str(loc[-1]), known)
    return f" (did you mean {near!r}?)" if near else f" (expected one of {', '.join(known)})"


# ---- loading ---------------------------------------------------------------------------------




def _json_value(v: Any, loc: tuple, problems: list[tuple[tuple, str]]) -> None:
    """Arguments are JSON text the gateway can read, at any depth: TOML's date-times and
    non-finite floats have no JSON form, and a lone surrogate (which `arguments_json` can
    spell, `"\\ud800"`) is no Unicode text; the gateway refuses such a call before any
    policy decides it (hostile review 22, F2: NaN one level down was decided here)."""
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(k, str) and not is_text(k):
                problems.append((loc + (k,), "a key that is not valid Unicode (a lone surrogate)"))
            _json_value(x, loc + (k,), problems)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            _json_value(x, loc + (i,), problems)
    elif isinstance(v, float) and not math.isfinite(v):
        problems.append((loc, "not a JSON number (inf and nan have no JSON form)"))
    elif isinstance(v, str) and not is_text(v):
        problems.append((loc, "not valid Unicode text (a lone surrogate)"))
    elif not (v is None or isinstance(v, (str, int, float, bool))):
        problems.append((loc, f"a TOML {type(v).__name__} is not a JSON value; write it as a string"))


def _tool_name(tool: str, loc: tuple, problems: list[tuple[tuple, str]]) -> None:
    """MCP tool names are 1 to 128 characters: the gateway refuses any other with HTTP 400
    before a policy decides (hostile review 23, F5: `mcpp test` decided them)."""
    if not 1 <= len(tool) <= 128:
        problems.append((loc, f"a tool name is 1 to 128 characters (this one has {len(tool)}); the gateway refuses any other"))


def _arguments(m: _CallFields, loc: tuple, problems: list[tuple[tuple, str]]) -> dict | None:
    if m.arguments is not None and m.arguments_json is not None:
        problems.append((loc + ("arguments_json",), "give `arguments` or `arguments_json`, not both"))
        return None
    if m.arguments_json is not None:
        try:
            value = json.loads(m.arguments_json)
        except json.JSONDecodeError as e:
            problems.append((loc + ("arguments_json",), f"not JSON: {e.msg} at character {e.pos}"))
            return None
        except RecursionError:
            problems.append((loc + ("arguments_json",), "not JSON that can be read: nested too deeply"))
            return None
        except ValueError:  # (an integer past Python's 4,300-digit conversion limit)
            problems.append((loc + ("arguments_json",), "not JSON that can be read: integers have at most 4300 digits"))
            return None
        if not isinstance(value, dict):
            problems.append((loc + ("arguments_json",), "the arguments of a tools/call are a JSON object"))
            return None
        return value if _json_arguments(value, loc + ("arguments_json",), problems) else None
    if m.arguments is not None:
        return m.arguments if _json_arguments(m.arguments, loc + ("arguments",), problems) else None
    return None


def _json_arguments(args: dict, loc: tuple, problems: list[tuple[tuple, str]]) -> bool:
    """Whether `args` are arguments the gateway reads on to a policy: nested at most
    lang/nesting.py's bound (checked first: `_json_value` recurses), and JSON values
    throughout. The gateway refuses deeper ones before any policy decides (400), as the
    API and `mcpp eval` do (hostile review 24, F2: decided here without a catalog)."""
    deep = too_deep(args)
    if deep is not None:
        problems.append((loc, f"{TOO_DEEP} (at {deep[:160]}); the gateway refuses such a call"))
        return False
    before = len(problems)
    _json_value(args, loc, problems)
    return len(problems) == before


def _caller(m: _CallFields, loc: tuple, problems: list[tuple[tuple, str]]) -> tuple[Caller | None, tuple]:
    """The caller a case or call gives (None: it gives none) and, for a user, the key path
    of its `user`. A user's attributes are JSON values (the claims as the gateway maps
    them); whether the policy declares them is checked per policy (`user_problems`)."""
    if m.grant is not None and m.user is not None:
        problems.append((loc + ("user",), "give `grant` or `user`, not both: a call has one caller"))
        return None, ()
    g = m.grant
    if isinstance(g, str):
        return Grant(g), ()
    if g is not None:
        return Grant(g.id, g.label, frozenset(g.groups)), ()
    u = m.user
    if u is None:
        return None, ()
    if isinstance(u, str):
        if not u:
            problems.append((loc + ("user",), "a user id is not empty"))
        return User(u), loc + ("user",)
    _json_value(u.attrs, loc + ("user", "attrs"), problems)
    return User(u.id, dict(u.attrs), frozenset(u.groups)), loc + ("user",)


def user_diagnostics(tf: "TestFile", program) -> list[Diagnostic]:
    """`user_problems` for every case of a test file, as `file:line:col` diagnostics."""
    lines = _Lines.scan(tf.text)
    found = user_problems(program, [s for c in tf.cases for s in c.steps])
    return sorted((_diag(tf.path, lines, loc, msg) for loc, msg in found), key=lambda d: (d.span.line, d.span.col))


def user_problems(program, steps) -> list[tuple[tuple, str]]:
    """(key path, message) for each attribute a test's user has that `program` does not
    declare: the engine would drop it silently, so a misspelt claim would test nothing."""
    from mcpp.lang.identity import user_decl

    decl = user_decl(program)
    declared = [a.name for a in decl.attrs]
    out: list[tuple[tuple, str]] = []
    seen: set[tuple] = set()
    for step in steps:
        if not isinstance(step.caller, User) or step.caller_at in seen:
            continue
        seen.add(step.caller_at)
        for name in step.caller.attrs:
            if name in declared:
                continue
            near = did_you_mean(name, declared)
            hint = f" (did you mean {near!r}?)" if near else (
                f" (it declares {', '.join(declared)})" if declared else " (it has no `entity User { … }` declaration)")
            out.append((step.caller_at + ("attrs", name), f"{program.filename} declares no user attribute {name!r}{hint}"))
    return out


def _time(t: datetime | None, loc: tuple, problems: list[tuple[tuple, str]]) -> datetime | None:
    if t is not None and t.tzinfo is None:
        problems.append((loc + ("time",), "give the time with an offset (like 2026-01-01T09:00:00Z): "
                                           "a local date-time means a different instant on every machine"))
        return None
    return t


def default_policies(path: Path) -> list[Path]:
    """The policy a test file tests when it names none: `X.mcpp.test.toml` and
    `X.json.test.toml` test that file; `X.test.toml` tests `X.mcpp`, else `X.json`."""
    stem = path.name[: -len(SUFFIX)]
    if stem.endswith(POLICY_SUFFIXES):
        return [path.with_name(stem)]
    for suffix in POLICY_SUFFIXES:
        p = path.with_name(stem + suffix)
        if p.exists():
            return [p]
    return [path.with_name(stem + POLICY_SUFFIXES[0])]


def parse_test_file(text: str, path: Path) -> TestFile:
    """A test file from its text; raises TestFileError with every problem found."""
    try:
        data = read_toml(text)
    except TOMLUnreadable as e:  # (nested too deeply, an integer too long, or not TOML)
        reason = "not valid" + e.reason.removeprefix("invalid")
        raise TestFileError([Diagnostic(reason, Span(e.line, e.column, e.line, e.column + 1), "error",
                                        "test-file", str(path))], text) from None
    lines = _Lines.scan(text)
    try:
        model = FileModel.model_validate(data)
    except RecursionError:
        raise TestFileError([Diagnostic("nested too deeply to read", Span(1, 1, 1, 2), "error", "test-file", str(path))],
                            text) from None
    except ValidationError as e:
        raise TestFileError(_pydantic_errors(path, lines, e), text) from None
    problems: list[tuple[tuple, str]] = []
    cases: list[Case] = []
    names: dict[str, int] = {}
    for ci, c in enumerate(model.case):
        loc: tuple = ("case", ci)
        if c.name in names:
            problems.append((loc + ("name",), f"a second case named {c.name!r} (the first is case[{names[c.name]}])"))
        names.setdefault(c.name, ci)
        case_args = _arguments(c, loc, problems)
        case_caller, case_at = _caller(c, loc, problems)
        case_time = _time(c.time, loc, problems)
        steps: list[Step] = []
        if c.calls is not None:
            given = [k for k in EXPECT_KEYS if getattr(c, k) is not None]
            if given:
                problems.append((loc + (given[0],), "a case with `calls` states what each call expects: "
                                                     f"move `{given[0]}` into the [[case.calls]] tables"))
            if not c.calls:
                problems.append((loc + ("calls",), "a sequence needs at least one call"))
            for si, s in enumerate(c.calls):
                sloc = loc + ("calls", si)
                args = _arguments(s, sloc, problems)
                scaller, sat = _caller(s, sloc, problems)
                stime = _time(s.time, sloc, problems)
                tool = s.tool if s.tool is not None else c.tool
                if tool is None:
                    problems.append((sloc + ("tool",), "which tool does this call? (set `tool` here or on the case)"))
                else:
                    _tool_name(tool, sloc + ("tool",) if s.tool is not None else loc + ("tool",), problems)
                if s.decision is None:
                    problems.append((sloc + ("decision",), 'required: "allow", "deny" or "approval"'))
                caller, at = (scaller, sat) if scaller is not None else (case_caller, case_at)
                steps.append(Step(
                    tool or "", args if args is not None else (case_args if case_args is not None else {}),
                    caller or Grant(), s.server or c.server or "default",
                    stime or case_time or DEFAULT_TIME, _expect(s), s.repeat, lines.call_line(ci, si), at,
                ))
        else:
            if c.tool is None:
                problems.append((loc + ("tool",), "required: the tool the call is to (or give `calls`, a sequence)"))
            else:
                _tool_name(c.tool, loc + ("tool",), problems)
            if c.decision is None:
                problems.append((loc + ("decision",), 'required: "allow", "deny" or "approval"'))
            steps.append(Step(c.tool or "", case_args if case_args is not None else {}, case_caller or Grant(),
                              c.server or "default", case_time or DEFAULT_TIME, _expect(c), 1, lines.case_line(ci),
                              case_at))
        cases.append(Case(c.name, steps, ci, lines.case_line(ci)))
    if model.policies is not None and not model.policies:
        problems.append((("policies",), "name at least one policy file (or leave `policies` out)"))
    if problems:
        diags = [_diag(path, lines, loc, msg) for loc, msg in problems]
        raise TestFileError(sorted(diags, key=lambda d: (d.span.line, d.span.col)), text)
    if model.policies:
        policies = [(path.parent / p) for p in model.policies]
    else:
        policies = default_policies(path)
    return TestFile(path, policies, cases, text, model.policies is not None)


def _expect(m: _Expect) -> dict:
    return {k: getattr(m, k) for k in EXPECT_KEYS if getattr(m, k) is not None}


def load_test_file(path: Path) -> TestFile:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TestFileUnreadable([Diagnostic("no such test file", Span(0, 0, 0, 0), "error", "test-file",
                                             str(path))]) from None
    except OSError as e:
        raise TestFileUnreadable([Diagnostic(f"cannot read: {e.strerror}", Span(0, 0, 0, 0), "error", "test-file",
                                             str(path))]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TestFileUnreadable([Diagnostic(f"not UTF-8 text ({e.reason})", Span(0, 0, 0, 0), "error", "test-file",
                                             str(path))]) from None
    return parse_test_file(text, path)


# ---- finding test files ------------------------------------------------------------------------


@dataclass
class Target:
    """One test file to run, against all its policies or only the one a path named."""

    test: Path
    only: Path | None = None


def is_test_file(p: Path) -> bool:
    return p.name.endswith(SUFFIX)


def test_files_for(policy: Path) -> list[Path]:
    """Where the tests of a policy file may be: `X.test.toml`, then `X.mcpp.test.toml` /
    `X.json.test.toml` (for a second form of one policy beside the first)."""
    stem = policy.name[: -len(policy.suffix)] if policy.suffix else policy.name
    return [policy.with_name(stem + SUFFIX), policy.with_name(policy.name + SUFFIX)]


def _tests(test: Path, policy: Path) -> bool:
    try:
        named = load_test_file(test).policies
    except TestFileError:
        named = default_policies(test)
    return any(p.resolve() == policy.resolve() for p in named)


def discover(paths: list[Path]) -> tuple[list[Target], list[Diagnostic], list[Path]]:
    """(test files to run, problems with the paths, policies under the directories that
    no test file there names — reported, not failed)."""
    targets: list[Target] = []
    problems: list[Diagnostic] = []
    untested: list[Path] = []
    seen: set[tuple] = set()

    def add(t: Target) -> None:
        key = (t.test.resolve(), t.only.resolve() if t.only else None)
        if key not in seen:
            seen.add(key)
            targets.append(t)

    for p in paths:
        if p.is_dir():
            tests = sorted(q for q in p.rglob("*" + SUFFIX) if q.is_file())
            named: set[Path] = set()
            for q in tests:
                add(Target(q))
                try:
                    named |= {x.resolve() for x in load_test_file(q).policies}
                except TestFileError:
                    named |= {x.resolve() for x in default_policies(q)}
            for q in sorted(p.rglob("*")):
                if q.is_file() and q.suffix in POLICY_SUFFIXES and not q.name.endswith(SUFFIX) and _looks_like_policy(q):
                    if q.resolve() not in named:
                        untested.append(q)
            if not tests:
                problems.append(Diagnostic(f"no *{SUFFIX} files under this directory", Span(0, 0, 0, 0), "error",
                                           "test-file", str(p)))
        elif is_test_file(p):
            add(Target(p))
        elif p.exists() or p.suffix in POLICY_SUFFIXES:
            candidates = [t for t in test_files_for(p) if t.is_file()]
            found = [t for t in candidates if _tests(t, p)]
            if found:
                add(Target(found[0], p))
            elif candidates:  # a test file by that name that names other policies: its error says which
                add(Target(candidates[0], p))
            else:
                problems.append(Diagnostic(f"no test file: expected {test_files_for(p)[0].name} beside the policy",
                                           Span(0, 0, 0, 0), "error", "test-file", str(p)))
        else:
            problems.append(Diagnostic("no such file or directory", Span(0, 0, 0, 0), "error", "test-file", str(p)))
    return targets, problems, untested


def _looks_like_policy(p: Path) -> bool:
    """A .mcpp file, or a .json file holding the JSON policy form (not a tool catalog)."""
    if p.suffix == ".mcpp":
        return True
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        # not JSON json can read (also a 4,300-digit integer, or nesting past its stack: a
        # catalog beside the policy made `mcpp test .` exit 3, hostile review 32, H32-4):
        # no policy to list as untested; whoever reads it as a policy reports why
        return False
    return (isinstance(data, dict) and data.get("version") == "1" and isinstance(data.get("tools", {}), dict)
            and set(data) <= {"version", "default", "hide", "tools"})
