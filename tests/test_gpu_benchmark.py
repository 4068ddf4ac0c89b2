"""benchmarks/gpu.py, the one script a GPU machine runs: with torch alone (no painn_deploy, no OpenMM), on
what benchmarks/gpu_artefacts.py prepares, and here on the CPU (``--device cpu``), where its results must
match the float64 reference that gpu_artefacts.py stores beside the artefacts."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

# gpu.py run as a GPU machine runs it, with painn_deploy and openmm made unimportable
RUN_WITHOUT_PACKAGE = """
import runpy, sys
sys.modules["painn_deploy"] = None
sys.modules["openmm"] = None
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_gpu_benchmark_runs_with_torch_alone_and_matches_its_reference(tmp_path):
    inputs, result = tmp_path / "inputs", tmp_path / "gpu_cpu"
    prepare = [sys.executable, str(BENCHMARKS / "gpu_artefacts.py"), "--out", str(inputs), "--molecules"]
    done = subprocess.run(prepare, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = [sys.executable, "-c", RUN_WITHOUT_PACKAGE, str(BENCHMARKS / "gpu.py"), "--inputs", str(inputs),
           "--device", "cpu", "--repeats", "1", "--out", str(result)]  # fmt: skip
    done = subprocess.run(run, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["case"]: row for row in json.loads(result.with_suffix(".json").read_text())["rows"]}
    assert sorted(rows) == sorted(["ethanol", "ethanol x 64 configurations", "aspirin", "aspirin x 64 configurations"])
    for case, row in rows.items():
        assert "error" not in row, (case, row["error"])
        assert row["frames"] == (64 if " x 64 " in case else 1)
        assert row["eager_ms"] > 0
        # float32 against float64: energies of -3e4 to -5e4 kJ/mol and forces up to 4e3 kJ/mol/nm deviate by a few
        # 1e-3 to 3e-2; a wrong unit, dtype or frame order deviates by far more
        assert row["energy_err_kj_mol"] < 0.1, (case, row)
        assert row["force_err_kj_mol_nm"] < 0.1, (case, row)
    table = Path(f"{result}.md").read_text()
    assert "| ethanol x 64 configurations | 9 | 64 | all_pairs |" in table
    assert "GPU targets" not in table  # (a CUDA run only)


def test_gpu_benchmark_fails_a_case_with_an_error_or_a_deviation():
    """gpu.py exits 1 on a failed check: a case's error, or an energy (per atom) or force beyond its tolerance,
    NaN included (a graph that ignored its input deviates from the eager calls at moved positions)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_benchmark", BENCHMARKS / "gpu.py")
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    good = {"case": "ethanol", "atoms": 9, "frames": 1, "energy_err_kj_mol": 1e-4, "force_err_kj_mol_nm": 0.01,
            "graph_vs_eager_energy_diff": 0.0, "graph_vs_eager_max_force_diff": 1e-5}  # fmt: skip
    assert gpu.failures([good]) == []
    for change, expected in (
        ({"error": "graph: RuntimeError: capture"}, "ethanol: graph: RuntimeError: capture"),
        ({"energy_err_kj_mol": 0.05}, "ethanol: energy_err_kj_mol 0.05 exceeds 0.009"),
        ({"graph_vs_eager_max_force_diff": 120.0}, "ethanol: graph_vs_eager_max_force_diff 120 exceeds 0.5"),
        ({"graph_vs_eager_energy_diff": float("nan")}, "ethanol: graph_vs_eager_energy_diff nan exceeds 0.009"),
    ):
        assert gpu.failures([{**good, **change}]) == [expected]
