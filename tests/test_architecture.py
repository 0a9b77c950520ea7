"""The house by domain: import-linter's contracts (pyproject.toml [tool.importlinter]) hold, and they bite.

The contracts are the layers of docs/architecture.md, the station box kept apart from the planner,
and no import circles between sibling modules or packages.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)})


def test_the_import_contracts_are_kept() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("outreach/planning/plan.py", "import outreach.delivery.usb.export", "the pipeline in layers"),
    ("outreach/station/store.py", "import sqlmodel", "the village station box"),
    ("outreach/config.py", "import outreach.planning.registry", "the ground modules"),
    ("outreach/delivery/usb/packs.py", "import outreach.delivery.usb.export", "no import circles"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    """Copy the package, add one forbidden import, and the named contract must be among those broken."""
    shutil.copytree(ROOT / "outreach", tmp_path / "outreach", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # added by the test\n", encoding="utf-8")
    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), broken  # an upward import also makes a circle
