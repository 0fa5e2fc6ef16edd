"""Workspace settings, pulled from the client's `mcpp` configuration section.

Settings arrive as untyped JSON from whatever the user typed in an editor's settings
file, so each value is checked and a bad one is reported and replaced by its default
rather than breaking the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Where diagnostic codes link to: `<base><docs path>`, e.g.
# https://github.com/mcpp-lang/mcpp/blob/main/docs/lints/forbid-bypass.md
DEFAULT_DOCS_BASE = "https://github.com/mcpp-lang/mcpp/blob/main/"


@dataclass
class Settings:
    catalog: str | None = None  # a catalog file; relative paths are resolved against the workspace root
    analyzer_enabled: bool = True
    analyzer_timeout_ms: int = 2000  # per solver query, passed to Policy.analyze
    analyzer_debounce_ms: int = 300  # quiet time after the last edit before the analyzer starts
    docs_base_url: str = DEFAULT_DOCS_BASE
    problems: list[str] = field(default_factory=list)  # what was wrong with the values given

    @classmethod
    def from_json(cls, value: object) -> "Settings":
        """Read the `mcpp` section: `{"catalog", "analyzer": {"enabled", "timeoutMs",
        "debounceMs"}, "docsBaseUrl"}`. Dotted flat keys (`"analyzer.timeoutMs"`) are
        accepted too, as some clients send them that way."""
        s = cls()
        if value is None:
            return s
        if not isinstance(value, dict):
            s.problems.append(f"the mcpp settings must be an object, not {type(value).__name__}")
            return s
        flat = dict(value)
        nested = value.get("analyzer")
        if isinstance(nested, dict):
            for k, v in nested.items():
                flat[f"analyzer.{k}"] = v
        elif nested is not None:
            s.problems.append("mcpp.analyzer must be an object")

        def take(key, kind, check=None, what=""):
            if key not in flat or flat[key] is None:
                return None
            v = flat[key]
            if kind is int and isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, kind) or isinstance(v, bool) != (kind is bool) or (check and not check(v)):
                s.problems.append(f"mcpp.{key} must be {what}; got {v!r}, using the default")
                return None
            return v

        catalog = take("catalog", str, None, "a file path")
        s.catalog = catalog or None
        enabled = take("analyzer.enabled", bool, None, "true or false")
        if enabled is not None:
            s.analyzer_enabled = enabled
        timeout = take("analyzer.timeoutMs", int, lambda v: 1 <= v <= 600_000, "a number of milliseconds (1..600000)")
        if timeout is not None:
            s.analyzer_timeout_ms = timeout
        debounce = take("analyzer.debounceMs", int, lambda v: 0 <= v <= 60_000, "a number of milliseconds (0..60000)")
        if debounce is not None:
            s.analyzer_debounce_ms = debounce
        base = take("docsBaseUrl", str, lambda v: "://" in v, "a URL such as https://example.org/mcpp/")
        if base is not None:
            s.docs_base_url = base if base.endswith("/") else base + "/"
        return s
