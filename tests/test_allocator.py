"""The C allocator settings (painn_deploy.allocator): a periodic model's tensors come from the heap
step after step instead of being faulted in from fresh mmap'ed pages."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import resource, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
if sys.argv[1] == "tuned":
    from painn_deploy.allocator import tune_malloc
    assert tune_malloc()
from tests.conftest import small_potential
from tests.test_export import water_like_box
from painn_deploy.deploy import PaiNNForceField
z, pos, box = water_like_box(n_side=4, spacing_nm=0.42)  # ~36,000 pairs: [pairs, 3F] tensors of ~3 MB
module = torch.jit.script(PaiNNForceField(small_potential(n_features=8), z, True, "cell_list", torch.float32))
pos, box = torch.tensor(pos, dtype=torch.float32), torch.tensor(box, dtype=torch.float32)
def evaluate():
    p = pos.clone().requires_grad_(True)
    module(p, box).backward()
for _ in range(3):
    evaluate()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    evaluate()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def page_faults_per_evaluation(tmp_path, mode: str) -> float:
    script = tmp_path / "faults.py"
    script.write_text(SCRIPT.format(root=str(ROOT)))
    out = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuned_allocator_reuses_memory_between_evaluations(tmp_path):
    plain = page_faults_per_evaluation(tmp_path, "plain")
    tuned = page_faults_per_evaluation(tmp_path, "tuned")
    assert plain > 1000  # without the settings every step faults in its large tensors again
    assert tuned < 0.2 * plain, (plain, tuned)


def test_create_force_tunes_the_allocator(exported32):
    from openmm import app

    import painn_deploy.allocator as allocator
    from painn_deploy.openmm import create_force

    from .conftest import ETHANOL_PDB

    create_force(exported32, app.PDBFile(str(ETHANOL_PDB)).topology)
    assert allocator._tuned == sys.platform.startswith("linux")
