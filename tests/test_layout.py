"""The package's shape: one import root with one-way layers and no import cycles, every subpackage
shipped, and code that speaks of the code."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("mock_server", "simulators", "fixtures", "contracts", "load")


def test_layers_are_one_way_and_no_package_has_an_import_cycle():
    """import-linter's contracts in pyproject.toml: lazy imports inside functions count too."""
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert tool, "import-linter is not installed (test extra)"
    done = subprocess.run([tool, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_every_folder_of_the_package_is_shipped():
    """pyproject lists packages explicitly (the root maps to ``avala_mock``): a new folder must be listed
    or a wheel would silently lack it."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = [d for top in LAYERS for d in [ROOT / top, *(ROOT / top).rglob("*")] if d.is_dir() and d.name != "__pycache__"]
    shipped = [d for d in folders if any(d.glob("*.py")) or any(d.glob("*.yaml"))]
    on_disk = {"avala_mock"} | {"avala_mock." + ".".join(d.relative_to(ROOT).parts) for d in shipped}
    assert listed == on_disk


def test_code_speaks_of_the_code_not_of_the_process():
    remark = re.compile(r"\b(?:issue|slice|stop)\s+(?:#?\d+|N)\b|\blater issue\b", re.I)
    found = []
    for path in [*ROOT.glob("*.py"), *(p for top in (*LAYERS, "tests", "bench") for p in (ROOT / top).rglob("*.py"))]:
        if path.name == Path(__file__).name:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if remark.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
