"""Import rules, checked on the source with `ast` (nothing is imported).

- The pure cores (`streams/core.py`, `streams/channels.py`) and all of `schemas/` use no framework,
  no event loop, no clock, no randomness, no network and no environment.
- `streams/` and `services/` do not import each other, except that the edge folds channel changes with
  the channel stage's own pure core (`streams/channels.py`, so both number the steps alike);
  `schemas/` imports neither.

The packages are walked, so modules added later are checked too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

IMPURE = {"faust", "asyncio", "time", "datetime", "random", "uuid", "socket", "os"}
PURE_STREAMS_MODULES = ("streams/core.py", "streams/channels.py", "streams/replay.py", "streams/analytics.py",
                        "streams/timeline.py")


def python_files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert ROOT / package / "__init__.py" in files, f"{package}/ is not a package under {ROOT}"
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, wherever it is (functions, `if`s).

    `from a import b` yields both `a` and `a.b` (b may be a module); relative imports are resolved
    against `module`; `importlib.import_module("x")` and `__import__("x")` with a literal count too.
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            if origin:
                found.append((node.lineno, origin))
            found += [(node.lineno, f"{origin}.{alias.name}".lstrip(".")) for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) in ("importlib.import_module", "import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(files: list[Path], forbidden: set[str]) -> list[str]:
    found = []
    for path in files:
        for line, name in imports(path.read_text(), module_name(path), is_package=path.name == "__init__.py"):
            if name.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return found


def test_import_collector_sees_every_form_of_import() -> None:
    source = """
import os.path
from time import monotonic
from . import channels
from .. import services
from ..schemas.events import Event
import importlib

def later():
    import asyncio
    importlib.import_module("random")

if False:
    from faust import App
"""

    found = {name for _, name in imports(source, "streams.core")}

    assert found == {
        "os.path", "time", "time.monotonic", "streams", "streams.channels", "services",
        "schemas.events", "schemas.events.Event", "importlib", "asyncio", "random", "faust", "faust.App",
    }
    assert {name for _, name in imports("from . import x", "services", is_package=True)} == {"services",
                                                                                           "services.x"}


def test_pure_modules_use_no_framework_loop_clock_randomness_network_or_environment() -> None:
    files = python_files("schemas") + [ROOT / name for name in PURE_STREAMS_MODULES]

    assert violations(files, IMPURE) == []


def test_streams_do_not_import_services() -> None:
    assert violations(python_files("streams"), {"services"}) == []


def test_services_import_of_streams_only_the_pure_cores() -> None:
    # The edge folds channel changes and the history commands replay the log with the processor's own
    # pure folds; the Faust adapters (which start a Faust app on import) stay out of the edge.
    pure = {name.removesuffix(".py").replace("/", ".") for name in PURE_STREAMS_MODULES}
    found = [v for v in violations(python_files("services"), {"streams"})
             if not any(f"{v.split(' imports ')[1]}.".startswith(f"{module}.") for module in pure)]

    assert found == []


def test_schemas_import_neither_streams_nor_services() -> None:
    assert violations(python_files("schemas"), {"streams", "services"}) == []
