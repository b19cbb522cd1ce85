"""Client and servers stay apart: read with ast, every import in the tree (lazy ones inside
functions too).

- imagetrust/ (the SDK, the CLI, the report, the local suite) imports nothing from services:
  `imagetrust serve` runs the servers' entry point as a program, it does not import it.
- services/ and training/ import nothing of the client side (imagetrust.cli, .client, .suite,
  .report): what both sides share is the generated API (imagetrust.v1) and the channel
  settings (imagetrust.channel).
"""

from __future__ import annotations

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent
CLIENT_ONLY = ("imagetrust.cli", "imagetrust.client", "imagetrust.suite", "imagetrust.report")


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every module an import statement in the file names, `from a import b` as a and a.b."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        for name in sorted(imported_modules(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(REPO)}: {name}")
    return found


def test_the_reader_sees_lazy_and_from_imports(tmp_path: pathlib.Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\ndef f():\n    from imagetrust import client\n    import services.main\n")
    assert {"os", "imagetrust", "imagetrust.client", "services.main"} <= imported_modules(sample)


def test_the_client_package_imports_nothing_from_the_servers() -> None:
    assert _violations("imagetrust", ("services",)) == []


def test_servers_and_training_import_nothing_of_the_client_side() -> None:
    assert _violations("services", CLIENT_ONLY) == []
    assert _violations("training", CLIENT_ONLY) == []
