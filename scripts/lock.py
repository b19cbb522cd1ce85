"""Writes requirements.lock: every package, transitive ones included, that `pip install
-e '.[dev]'` resolves to, pinned exactly.

    .venv/bin/python scripts/lock.py        # after changing a pin in pyproject.toml

pip's own resolver does the work (`pip install --dry-run --ignore-installed --report`), with
this machine's pip configuration, so the lock holds exactly what a fresh install here gets
(torch 2.14.1 and its CUDA libraries included). scripts/setup.sh installs from the lock and
then the project with --no-deps; the Dockerfiles use it as a constraints file, so an image
built in six months installs what the tests ran against. tests/test_lock.py fails when a
pyproject.toml pin is missing from the lock or differs from it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
HEADER = (
    "# Every dependency of imagetrust[dev], transitive ones included, pinned as resolved by\n"
    "# scripts/lock.py (pip's resolver). Regenerate with `python scripts/lock.py`; do not edit.\n"
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(project: pathlib.Path) -> dict[str, str]:
    """{canonical name: version} of everything `pip install -e project[dev]` would install."""
    with tempfile.TemporaryDirectory() as tmp:
        report = pathlib.Path(tmp) / "report.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--report",
                str(report),
                "-e",
                f"{project}[dev]",
            ],
            check=True,
        )
        installs = json.loads(report.read_text())["install"]
    own = canonical("imagetrust")
    return {
        canonical(item["metadata"]["name"]): item["metadata"]["version"]
        for item in installs
        if canonical(item["metadata"]["name"]) != own
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path, default=LOCK)
    args = parser.parse_args(argv)
    pins = resolve(ROOT)
    args.output.write_text(HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    print(f"wrote {len(pins)} pins to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
