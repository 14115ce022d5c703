"""scheduler/ stays pure Python: no torch, no asyncio, directly or through what it imports."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import scheduler

FORBIDDEN = {"torch", "asyncio"}
SCHEDULER_DIR = Path(scheduler.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_scheduler_source_imports_torch_or_asyncio():
    sources = sorted(SCHEDULER_DIR.glob("*.py"))
    assert len(sources) >= 6
    for path in sources:
        top_level = {name.split(".")[0] for name in imported_modules(path)}
        assert not top_level & FORBIDDEN, f"{path.name} imports {top_level & FORBIDDEN}"


def test_importing_every_scheduler_module_loads_neither():
    modules = [f"scheduler.{p.stem}" for p in SCHEDULER_DIR.glob("*.py") if p.stem != "__init__"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in {sorted(FORBIDDEN)!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=SCHEDULER_DIR.parent)
    assert result.stdout.strip() == "[]"


def test_the_clients_import_no_server_module():
    clients_dir = SCHEDULER_DIR.parent / "clients"
    modules = [f"clients.{p.stem}" for p in clients_dir.glob("*.py") if p.stem != "__init__"]
    assert len(modules) >= 5
    server = ["takeoff", "scheduler", "kernels", "torch", "transformers"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in {server!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=clients_dir.parent)
    assert result.stdout.strip() == "[]"
