"""Which catalog a policy is checked against.

A policy names its catalog itself (`@catalog("tools.json")` on its `default`
statement), or a project does it once for all its policies (`catalog = "tools.json"`
in an `mcpp.toml` beside the policy or in a parent directory). A catalog that is named
but cannot be loaded is an error, never silently skipped: a check that quietly ran
without its catalog would pass policies it should have refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mcpp.lang import ir
from mcpp.lang.diagnostics import Span
from mcpp.lang.tomltext import TOMLUnreadable, read_toml

from .model import Catalog, CatalogError, load_catalog

CONFIG_NAME = "mcpp.toml"


@dataclass(frozen=True)
class CatalogRef:
    """Where a catalog was named: the resolved path, and the place that named it."""

    path: Path
    origin: str  # "annotation" | "config" | "option"
    span: Span | None = None  # the @catalog annotation, when that is the origin
    config: Path | None = None  # the mcpp.toml, when that is the origin


def catalog_annotation(program) -> ir.Annotation | None:
    doc = getattr(program, "document", None)
    if doc is None:
        return None
    for s in doc.statements:
        if isinstance(s, ir.Default):
            for a in s.annotations:
                if a.key == "catalog":
                    return a
    return None


def find_catalog_ref(policy_path: str | Path, program) -> CatalogRef | None:
    """The catalog a policy names, without loading it. Raises CatalogError for a broken mcpp.toml."""
    policy = Path(policy_path)
    base = policy.parent if str(policy_path) not in ("", "-", "<stdin>", "<input>") else Path.cwd()
    ann = catalog_annotation(program)
    if ann is not None:
        if not ann.value:
            raise CatalogError(str(policy), "@catalog needs a file name, e.g. @catalog(\"tools.json\")")
        return CatalogRef((base / ann.value), "annotation", span=ann.span)
    start = base.resolve()
    for d in (start, *start.parents):
        cfg = d / CONFIG_NAME
        if cfg.is_file():
            try:
                data = read_toml(cfg.read_text(encoding="utf-8"))
            except TOMLUnreadable as e:  # (nested too deeply, an integer too long, or not TOML: hostile review 29, F4)
                raise CatalogError(str(cfg), f"cannot read {CONFIG_NAME}: {e.reason} (line {e.line}, column {e.column})") from None
            except (UnicodeDecodeError, OSError) as e:
                raise CatalogError(str(cfg), f"cannot read {CONFIG_NAME}: {e}") from None
            value = data.get("catalog")
            if value is None:
                return None  # the nearest mcpp.toml decides; it names no catalog
            if not isinstance(value, str) or not value:
                raise CatalogError(str(cfg), "`catalog` must be a file name, e.g. catalog = \"tools.json\"")
            return CatalogRef(d / value, "config", config=cfg)
    return None


def find_catalog_for(policy_path: str, program) -> Catalog | None:
    """The catalog a policy is checked against, loaded and verified, or None when it names none.

    Raises CatalogError (an MCPPError carrying a diagnostic) when the named catalog is
    missing or invalid, so callers fail instead of checking without it.
    """
    ref = find_catalog_ref(policy_path, program)
    if ref is None:
        return None
    try:
        return load_catalog(ref.path)
    except CatalogError as e:
        where = "the @catalog annotation" if ref.origin == "annotation" else str(ref.config)
        raise CatalogError(str(ref.path), f"{e.message} (named by {where} of {policy_path})", e.pointer) from None


def catalog_diagnostics(policy_path: str | Path, program, catalog_path: str | Path | None = None) -> list:
    """What `mcpp check` (and `verify`, and the language server) add for a catalog: the
    validation diagnostics, or one error saying why the named catalog cannot be used.
    `catalog_path` (a `--catalog` option) overrides what the policy names; with neither,
    the result is empty and nothing changes."""
    from mcpp.lang.diagnostics import Diagnostic

    from .validate import validate

    catalog: Catalog | None
    try:
        if catalog_path is not None:
            catalog = load_catalog(catalog_path)
        else:
            catalog = find_catalog_for(str(policy_path), program)
    except CatalogError as e:
        ref = None
        try:
            ref = find_catalog_ref(policy_path, program) if catalog_path is None else None
        except CatalogError:
            pass
        span = ref.span if ref is not None and ref.span is not None else Span(1, 1, 1, 1, 0, 0)
        return [Diagnostic(f"cannot use the tool catalog: {d.message}" if not d.message.startswith("/") else
                           f"cannot use the tool catalog {d.file}: {d.message}", span, "error", "catalog",
                           str(policy_path), (f"catalog file: {d.file}",)) for d in e.diagnostics]
    if catalog is None:
        return []
    return validate(program, catalog)
