"""The example scripts in simulations/ run as shipped (a few steps each, in a fresh process as a user runs them)."""

import subprocess
import sys
from pathlib import Path

from painn_deploy.resources import BUNDLED_MODEL

from .conftest import ETHANOL_PDB

SIMULATIONS = Path(__file__).resolve().parents[1] / "simulations"


def run_example(script: str, *args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, str(SIMULATIONS / script), *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_plain_openmm_example_runs_without_painn_deploy(tmp_path):
    out = run_example("plain_openmm.py", str(BUNDLED_MODEL), str(ETHANOL_PDB), "20", cwd=tmp_path)
    rows = [line.split(",") for line in out.splitlines() if line[:1].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(2, 21, 2))
    assert all(-30000 < float(r[1]) < -29800 for r in rows)  # the bundled model's ethanol near its minimum, kJ/mol
    assert (tmp_path / "plain_openmm.dcd").is_file()


def test_ethanol_in_water_example_runs_through_openmm_ml(tmp_path):
    out = run_example("ethanol_in_water.py", "--steps", "10", "--padding", "0.8", "--output", "solvated.pdb",
                      cwd=tmp_path)  # fmt: skip
    assert "9 ML atoms" in out and "= ML (ethanol)" in out
    assert (tmp_path / "solvated.pdb").is_file()
