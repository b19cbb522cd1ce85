"""requirements.lock (scripts/lock.py) holds every pin of pyproject.toml at the same version:
setup.sh installs from the lock with --no-deps for the project, so a pin changed without
re-locking would silently not be installed."""

from __future__ import annotations

import pathlib
import re
import tomllib

REPO = pathlib.Path(__file__).resolve().parent.parent


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"not an exact pin: {line!r}"
            pins[_canonical(name)] = version.strip()
    return pins


def test_every_pyproject_pin_is_in_the_lock_at_its_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = _pins([*project["dependencies"], *project["optional-dependencies"]["dev"]])
    locked = _pins((REPO / "requirements.lock").read_text().splitlines())
    stale = {name: (version, locked.get(name)) for name, version in wanted.items() if locked.get(name) != version}
    assert not stale, f"pyproject pin -> lock: {stale}; run `make lock` (scripts/lock.py)"
    assert "imagetrust" not in locked, "the project itself is installed with --no-deps, not from the lock"
    # Transitive dependencies are there too, not only the direct pins.
    assert {"nvidia-cudnn-cu13", "typing-extensions", "cffi"} <= set(locked)
