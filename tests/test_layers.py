"""The layers of docs/ARCHITECTURE.md, checked against every import in the package.

Each package may import only the packages below it (and itself). A new
import that crosses a layer fails here with the file and the name, so the
picture in the docs and the code cannot drift apart unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "daemon1521"

# What each part of daemon1521 may import from the rest of daemon1521.
# Top-level modules (config, logs, clock, schema, cli) are named by module.
BOTTOM = {"clock", "logs", "schema"}
"""Imported by anything: they import nothing of daemon1521."""
DRIVER = BOTTOM | {"dsp", "modem"}
DOMAIN = DRIVER | {"audio", "billing", "telebank"}
ALLOWED: dict[str, set[str]] = {
    **{name: set() for name in BOTTOM},
    "dsp": {"clock"},
    "modem": BOTTOM | {"dsp"},
    "audio": {"clock", "dsp", "logs"},
    "billing": BOTTOM,
    "telebank": DOMAIN - {"telebank"},
    "ivr": DOMAIN,
    "config": BOTTOM | {"modem", "ivr", "telebank"},
    "daemon": DOMAIN | {"ivr", "config"},
    # The emulator is the hardware: built from the standard, never from the driver.
    "emulator": BOTTOM | {"dsp", "audio", "billing"},
    # The test bed wires the daemon to the emulator; nothing below imports it.
    "testbed": DOMAIN | {"ivr", "config", "daemon", "emulator"},
}


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imports(source: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            if node.module == "daemon1521":
                names += [
                    f"daemon1521.{alias.name}"
                    for alias in node.names
                    if not alias.name.startswith("__")
                ]
    return [name for name in names if name.startswith("daemon1521.")]


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(part: str) -> None:
    crossings = []
    for source in PACKAGE.rglob("*.py"):
        if source.parent == PACKAGE and source.name == "__init__.py":
            continue
        if _part(source) != part:
            continue
        for name in _imports(source):
            target = name.split(".")[1]
            if target != part and target not in ALLOWED[part]:
                crossings.append(f"{source.relative_to(PACKAGE.parent)} imports {name}")
    assert not crossings, "\n".join(crossings)


def test_every_part_of_the_package_has_a_place_in_the_layers() -> None:
    parts = {_part(path) for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}
    parts -= {"cli", "commands", "__main__"}
    assert parts <= set(ALLOWED), f"not placed in a layer: {sorted(parts - set(ALLOWED))}"
