"""realtime stands alone: it imports nothing of Dexter's domain apps, and its modules import in one direction.

Both by reading the source (ast) and, for the domain apps, by importing every
realtime module in a fresh interpreter whose project has no ``issues`` or
``alerts`` app at all.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "realtime"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def imported_modules(name: str, *, top_level_only: bool) -> set[str]:
    """Every module ``name`` imports (realtime's own and others), at the top or anywhere."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found.update(submodules or [target])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    found.discard(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_realtime_module_names_the_domain_apps():
    offenders = {
        name: sorted(m for m in imported_modules(name, top_level_only=False) if m.split(".")[0] in ("issues", "alerts"))
        for name in MODULES
    }
    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.parametrize("top_level_only", [True, False], ids=["at import time", "inside functions too"])
def test_no_import_cycle_among_realtime_modules(top_level_only):
    """Not even through an import inside a function: the hub sits above the publisher and
    presence, which reach it through the delivery seam (realtime/fanout.py)."""
    graph = {name: imported_modules(name, top_level_only=top_level_only) & set(MODULES) for name in MODULES}
    assert cycles(graph) == []


# The hub composes these; each gets what it needs handed in (realtime/hub.py).
HUB_PARTS = ("delivery", "poller", "layer_listener", "maintenance", "lifecycle", "ratelimit")


@pytest.mark.parametrize("name", [f"realtime.{m}" for m in (*HUB_PARTS, "fanout", "publisher", "presence")])
def test_the_hubs_parts_and_the_seams_users_do_not_import_the_hub(name):
    assert "realtime.hub" not in imported_modules(name, top_level_only=False)


def test_the_layer_message_format_and_the_in_process_check_are_written_once():
    for name, path in MODULES.items():
        if name == "realtime.fanout":
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"[\"']rt\.[a-z_]+[\"']", text), f"{name} spells an rt.* layer message itself"
        assert "InMemoryChannelLayer" not in text or name == "realtime.startup", name


SETUP_WITHOUT_DOMAIN = """
import importlib, pkgutil, sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.admin", "django.contrib.contenttypes", "django.contrib.auth",
                    "django.contrib.sessions", "django.contrib.messages", "channels", "rest_framework", "realtime"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    ROOT_URLCONF="realtime.urls", ASGI_APPLICATION="x.y", SECRET_KEY="k" * 50,
)
import realtime  # before setup: the package imports nothing that needs Django's apps
assert not [m for m in sys.modules if m.startswith("realtime.")], sorted(sys.modules)
django.setup()
skip = {"realtime.asgi_static"}  # an entry point: builds the project's ASGI application on import
for info in pkgutil.walk_packages(realtime.__path__, "realtime."):
    if info.name not in skip:
        importlib.import_module(info.name)
domain = sorted(m for m in sys.modules if m.split(".")[0] in ("issues", "alerts", "dexter"))
print("DOMAIN", domain)
"""


def test_importing_every_realtime_module_pulls_in_nothing_of_the_domain(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SETUP_WITHOUT_DOMAIN],
        cwd=tmp_path,  # not the checkout's root: only realtime is found there, through PYTHONPATH
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "DOMAIN []" in out.stdout
