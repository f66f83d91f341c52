"""The structure the project keeps (docs/architecture.md): read every module's imports and
fail on an arrow that breaks a rule."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "onetoone"
DOMAINS = ("ingest", "identify", "differentiate", "interact", "customize", "measure")
FACES = ("cli", "api", "report", "web", "dashboard")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}
KNOWN = set(MODULES)


def _imports(path: Path) -> set[str]:
    """Every ``onetoone`` module this file imports, at the top, in a function or for typing
    (``from package import module`` counts for the module, not the package)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in KNOWN
                          else module)
    return {m for m in found if m == "onetoone" or m.startswith("onetoone.")}


def _unit(module: str) -> str:
    """The part a module belongs to: its package under onetoone, or the module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "onetoone"




def _module_arrows() -> dict[str, set[str]]:
    """Module -> the modules it imports (a name that is not a module counts for its module)."""
    arrows: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for target in _imports(path):
            while target not in KNOWN and "." in target:
                target = target.rpartition(".")[0]
            if target not in (module, "onetoone"):  # the package's face is not a part
                arrows[module].add(target)
    return arrows


ARROWS = _module_arrows()
#: Part -> the parts it imports.
GRAPH: dict[str, set[str]] = defaultdict(set)
for _source, _targets in ARROWS.items():
    GRAPH[_unit(_source)].update(_unit(t) for t in _targets if _unit(t) != _unit(_source))


def _pairs(arrows: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted({(min(a, b), max(a, b)) for a, targets in arrows.items() for b in targets
                   if a in arrows.get(b, set())})


@pytest.mark.parametrize("domain", DOMAINS)
def test_domains_do_not_import_faces(domain: str) -> None:
    wrong = sorted(GRAPH[domain] & set(FACES))
    assert not wrong, f"onetoone.{domain} imports the face(s) {wrong}: faces call domains"


def test_store_imports_no_domain() -> None:
    wrong = sorted(GRAPH["store"] & {*DOMAINS, *FACES, "workspace", "config"})
    assert not wrong, f"onetoone.store imports {wrong}"


def test_differentiate_does_not_import_decisions() -> None:
    wrong = sorted(GRAPH["differentiate"] & {"customize", "interact", "measure"})
    assert not wrong, f"onetoone.differentiate imports {wrong}"


def test_ingest_does_not_import_identify() -> None:
    assert "identify" not in GRAPH["ingest"]


def test_domains_receive_their_settings() -> None:
    wrong = sorted(d for d in DOMAINS if {"config", "workspace"} & GRAPH[d])
    assert not wrong, f"{wrong} import onetoone.config or the workspace: pass settings in"


def test_no_two_parts_import_each_other() -> None:
    assert not _pairs(GRAPH), f"parts that import each other: {_pairs(GRAPH)}"


def test_no_two_modules_import_each_other() -> None:
    assert not _pairs(ARROWS), f"modules that import each other: {_pairs(ARROWS)}"


def test_only_the_store_imports_the_engine() -> None:
    wrong = []
    for module, path in MODULES.items():
        if _unit(module) == "store":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "duckdb" or n.startswith("duckdb.") for n in names):
                wrong.append(module)
    assert not wrong, f"modules that import duckdb outside onetoone.store: {sorted(wrong)}"


def test_maths_loads_no_engine() -> None:
    code = ("import sys, onetoone.differentiate.btyd; "
            "print(' '.join(m for m in ('duckdb', 'jinja2', 'fastapi', 'pydantic') "
            "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert not loaded, f"import onetoone.differentiate.btyd loads {loaded}"


def test_the_reader_sees_the_arrows() -> None:
    """The rules above are only as good as the import reader: it must see known arrows."""
    assert {"store", "identify", "ingest"} <= GRAPH["interact"]
    assert "onetoone.customize.catalog" in ARROWS["onetoone.customize.engine"]
    assert _pairs({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == [("a", "b")]


_SQL = re.compile(r"^\s*(SELECT\s.+\sFROM|INSERT INTO|UPDATE\s+\w+\s+SET|DELETE FROM|"
                  r"CREATE (OR REPLACE )?(TEMP )?(TABLE|VIEW))\b", re.S)


@pytest.mark.parametrize("face", ["cli", "api", "report"])
def test_faces_hold_no_sql(face: str) -> None:
    """The faces format what the Workspace returns; queries live in the domains."""
    found = []
    for module, path in MODULES.items():
        if _unit(module) != face:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            parts = ([node.value] if isinstance(node, ast.Constant) else
                     [v.value for v in node.values if isinstance(v, ast.Constant)]
                     if isinstance(node, ast.JoinedStr) else [])
            text = "".join(p for p in parts if isinstance(p, str))
            if _SQL.match(text):
                found.append(f"{module}:{node.lineno}")
    assert not found, f"SQL in a face: {found}"
    assert _SQL.match("SELECT a FROM t") and not _SQL.match("Create a key with ...")


_ENGINE_ONLY = re.compile(r"\bduckdb_(tables|columns|views|settings)\(|information_schema\.|"
                          r"\A\s*(SET|RESET|PRAGMA)\s+\w+\s*(=|;|\Z)(?!.*\b(FROM|WHERE)\b)",
                          re.S)


def test_engine_specifics_stay_in_the_store() -> None:
    """Outside the store, code runs SQL only: the engine's catalog, settings and frame
    registration go through onetoone.store (what another engine implements again)."""
    found = []
    for module, path in MODULES.items():
        if _unit(module) == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "onetoone.store.duckdb":
                found.append(f"{module}:{node.lineno} imports onetoone.store.duckdb")
            if isinstance(node, ast.Attribute) and node.attr in ("register", "unregister") \
                    and not (isinstance(node.value, ast.Name) and node.value.id == "api") \
                    and not isinstance(node.value, ast.Call):  # Splink's own API
                found.append(f"{module}:{node.lineno} .{node.attr}()")
            text = (node.value if isinstance(node, ast.Constant) and isinstance(node.value, str)
                    else "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                    if isinstance(node, ast.JoinedStr) else "")
            if isinstance(text, str) and _ENGINE_ONLY.search(text):
                found.append(f"{module}:{node.lineno} {text.strip()[:40]!r}")
    assert not found, f"engine-specific calls outside onetoone.store: {found}"
    assert _ENGINE_ONLY.search("SELECT * FROM duckdb_columns()")
    assert _ENGINE_ONLY.search("SET memory_limit = '2GB'")
    assert not _ENGINE_ONLY.search("SET customer_id = c.customer_id FROM c")
