"""painn-simulate's command line: bad numbers refused with the flag named (exit 2, no traceback, nothing
written), PDB element columns checked, a CRYST1 box given to a molecule model noted, a fast --help that imports
no heavy package, and a quiet run (no third-party banners, no torch temporary folders)."""

import subprocess
import sys
import textwrap
import warnings

import pytest

from painn_deploy.cli.simulate import main
from painn_deploy.errors import InputError, SimulationWarning
from painn_deploy.md import run_simulation
from painn_deploy.structures import load_pdb

from ..conftest import ETHANOL_PDB
from .test_runner import ASPIRIN_PDB, config, write_pdb


@pytest.mark.parametrize(
    "option, message",
    [
        (["--temperature", "-1"], "--temperature must be positive (K), not -1"),
        (["--temperature", "nan"], "--temperature must be a number, not nan"),
        (["--friction", "-1"], "--friction must be positive (1/ps), not -1: it is the Langevin thermostat's"),
        (["--integrator", "verlet", "--pressure", "1"], "--pressure (NPT) needs a thermostat, and --integrator verlet"),
        (["--threads", "-1"], "--threads must be a non-negative whole number, not -1"),
        (["--max-temperature", "-5"], "--max-temperature must be positive (K), or 0 for the default"),
        (["--max-temperature", "250"], "--max-temperature 250 K is not above --temperature 300 K"),
        (["--timestep", "5"], "--timestep 5 is outside 0.01-4 fs"),
        (["--timestep", "0.0005"], "--timestep 0.0005 is outside 0.01-4 fs: it is in fs (not ps)"),
        (["--mm-forcefield", "charmm36/tip3p"], "argument --mm-forcefield: invalid choice: 'charmm36/tip3p'"),
        (["--seed", "-2"], "--seed must be a non-negative whole number"),
        (["--max-force", "0"], "--max-force must be positive"),
        (["--steps", "abc"], "argument --steps: expected a whole number, got 'abc'"),
        (["--steps", "1.5"], "argument --steps: expected a whole number, got '1.5'"),
        (["--steps", "-5"], "--steps must be a non-negative whole number, not -5"),
        (["--integrator", "leapfrog"], "argument --integrator: invalid choice: 'leapfrog'"),
        (["--resume-from", "nothing.chk"], "--resume-from nothing.chk: there is no checkpoint"),
        (["--beads", "-2"], "--beads must be at least 1, not -2"),
        (["--replicas", "0"], "--replicas must be at least 1, not 0"),
        (["--cuda-graphs", "on"], "--cuda-graphs on captures the model in CUDA graphs, which need the CUDA platform"),
    ],
)
def test_bad_options_name_the_flag_and_exit_2(exported32, tmp_path, capsys, option, message):
    """Regressions: --temperature -1, --friction -1, --threads -1 ended in tracebacks, --max-temperature -5 was
    accepted, errors named --timestep-fs (the field) and --steps abc said "invalid steps_type value"."""
    out = tmp_path / "run"
    argv = [str(ETHANOL_PDB), "--model", str(exported32), "--output", str(out), "--platform", "CPU", *option]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (usage and message on stderr)
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert "timestep-fs" not in err and "steps_type" not in err
    assert not out.exists()


def test_element_column_must_hold_an_element(exported32, tmp_path, capsys):
    """Regression: an element column holding Xx was ignored and the element guessed from the atom name."""
    pdb = write_pdb(tmp_path / "xx.pdb", elements=["C", "C", "Xx", "H", "H", "H", "H", "H", "H"])
    pattern = r"xx\.pdb, line 7: atom 3 \(O1 in EOH\) has 'Xx' in its element column \(columns 77-78\), which is not"
    with pytest.raises(InputError, match=pattern):
        load_pdb(pdb)
    out = tmp_path / "run"
    assert main([str(pdb), "--model", str(exported32), "--output", str(out), "--platform", "CPU"]) == 2
    assert "has 'Xx' in its element column" in capsys.readouterr().err and not out.exists()
    # element symbols in either case, and no element columns at all, are still read
    assert load_pdb(write_pdb(tmp_path / "upper.pdb", elements=["C", "C", "O"] + ["h"] * 6))[1][3] == 1
    assert load_pdb(write_pdb(tmp_path / "none.pdb", element_columns=False))[1] == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    # an XYZ file, or a model given where the structure belongs (arguments swapped): named, with the fix (were
    # "cannot read ... as a PDB file (IndexError: list index out of range)" and a UnicodeDecodeError)
    (tmp_path / "ethanol.xyz").write_text("3\nwater\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n")
    with pytest.raises(InputError, match=r"ethanol.xyz is an XYZ structure file, not a PDB structure: give a PDB "
                       r"file \(ase convert FILE.xyz FILE.pdb, or Open Babel, writes one\)"):  # fmt: skip
        load_pdb(tmp_path / "ethanol.xyz")
    with pytest.raises(InputError, match=r"is a model exported by painn-export, not a PDB structure: give a PDB"):
        load_pdb(exported32)


def test_verlet_without_enough_equilibration_is_warned_about(exported32, tmp_path):
    """--integrator verlet keeps the temperature its equilibration reached: fewer than 3 relaxation times (friction x
    equilibration time) warn with a remedy; enough do not."""
    with pytest.warns(SimulationWarning, match=r"200 steps at 1/ps are 0.1 relaxation times.* --friction 10 "
                      r"--equilibration-steps 600"):  # fmt: skip
        run_simulation(config(exported32, tmp_path / "short", steps=10, integrator="verlet", equilibration_steps=200))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="--integrator verlet", category=SimulationWarning)
        run_simulation(config(exported32, tmp_path / "enough", steps=10, integrator="verlet", equilibration_steps=60,
                              friction_per_ps=100.0))  # fmt: skip


def test_box_given_to_a_molecule_model_is_noted(exported32, tmp_path):
    """Regression: a CRYST1 box given to a non-periodic model was ignored without a word."""
    boxed = tmp_path / "boxed.pdb"
    boxed.write_text(
        "CRYST1   30.000   30.000   30.000  90.00  90.00  90.00 P 1           1\n" + ETHANOL_PDB.read_text()
    )
    with pytest.warns(SimulationWarning, match=r"has a periodic box \(CRYST1\), which is ignored: the model .* is not "
                      r"periodic.* export a periodic model \(painn-export CHECKPOINT --pdb"):  # fmt: skip
        result = run_simulation(config(exported32, tmp_path / "run", structure=str(boxed), steps=10))
    assert result.steps == 10


def test_help_is_fast_and_imports_no_heavy_package():
    """painn-simulate --help took ~2 s importing torch (and OpenMM, OpenMM-ML) before printing anything."""
    script = textwrap.dedent("""
        import sys, time
        start = time.perf_counter()
        from painn_deploy.cli.simulate import build_parser
        text = build_parser().format_help()
        print(round(time.perf_counter() - start, 3))
        heavy = ("torch", "openmm", "openmmtools", "openmmml", "lightning", "matplotlib", "h5py", "scipy")
        print(",".join(m for m in heavy if m in sys.modules) or "none")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    seconds, imported = out.stdout.split()
    assert imported == "none"
    print(f"--help in {seconds} s")
    # the guarantee that torch comes before openmm still holds: importing openmm after painn_deploy brings torch
    script = "import painn_deploy, sys; import openmm; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stdout == "True\n"
    )


def test_a_langevin_run_is_quiet_and_leaves_no_temporary_folders(exported32, tmp_path):
    """Every Langevin run printed pymbar's 9-line "JAX NOT FOUND" banner, its timeseries notice and a simtk
    deprecation warning (openmmtools, openmmtorch).  torch.distributed.nn writes _remote_module_non_scriptable.py
    into a temporary folder when imported (Lightning imports it), left behind when the process is killed:
    painn-simulate must not import it.  log.csv has plain newlines."""
    script = textwrap.dedent(f"""
        import sys
        from painn_deploy.cli.simulate import main
        code = main([{str(ETHANOL_PDB)!r}, "--model", {str(exported32)!r}, "--output", {str(tmp_path / "run")!r},
                     "--steps", "20", "--log-interval", "10", "--platform", "CPU", "--progress", "none",
                     "--envelope-margin", "inf"])
        print("EXIT", code, "torch.distributed.nn.jit.instantiator" in sys.modules, "lightning" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "EXIT 0 False False" in out.stdout, out.stderr[-2000:]
    noise = [line for line in out.stderr.splitlines() if not line.startswith("painn-simulate: warning: ")]
    assert noise == [], noise
    assert b"\r" not in (tmp_path / "run" / "log.csv").read_bytes()


def test_create_system_from_python_is_quiet(exported32):
    """openmmtorch imports simtk.openmm, which logs a deprecation warning on the root logger: not the
    caller's concern, whether the force comes from painn-simulate or from the Python API."""
    script = textwrap.dedent(f"""
        from openmm.app import PDBFile
        from painn_deploy.openmm import create_system
        system, _ = create_system({str(exported32)!r}, PDBFile({str(ETHANOL_PDB)!r}).topology)
        print("PARTICLES", system.getNumParticles())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "PARTICLES 9" in out.stdout, out.stderr[-2000:]
    assert out.stderr == "", out.stderr


def test_a_run_shorter_than_an_output_interval_is_warned_about(exported32, tmp_path):
    """A quick run with the default --trajectory-interval (100) used to write an empty trajectory in silence.  The
    warning comes once the run is set up, so a refused input is not preceded by it."""
    import warnings

    assert config("model.pt", tmp_path / "a", steps=50, trajectory_interval=100).empty_outputs == [
        "--steps 50 is fewer than --trajectory-interval 100: the trajectory will hold no frame; lower "
        "--trajectory-interval"
    ]
    assert (
        config("model.pt", tmp_path / "b", steps=5)
        .empty_outputs[-1]
        .startswith("--steps 5 is fewer than --log-interval 10: log.csv will hold no row")
    )
    assert config("model.pt", tmp_path / "c", steps=100, trajectory_interval=100).empty_outputs == []
    assert config("model.pt", tmp_path / "d", steps=0).empty_outputs == []
    with pytest.warns(SimulationWarning, match=r"--steps 5 is fewer than --log-interval 10: log.csv will hold no row"):
        run_simulation(config(exported32, tmp_path / "e", steps=5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match="does not exist"):
            run_simulation(config(tmp_path / "missing.pt", tmp_path / "f", steps=5))
    assert not [w for w in caught if issubclass(w.category, SimulationWarning)]


def test_a_run_leaves_the_callers_torch_threads_as_they_were(exported32, tmp_path):
    """run_simulation sets torch's threads for the run (--threads); a notebook's later work kept one thread."""
    import torch

    from painn_deploy.md import SimulationConfig, run_simulation

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_simulation(config(exported32, tmp_path / "run", steps=10, log_interval=10, threads=1))
        assert torch.get_num_threads() == 2
        with pytest.raises(InputError, match="no --model given"):  # refused after the threads were set
            run_simulation(SimulationConfig(str(ASPIRIN_PDB), output=str(tmp_path / "x"), threads=1))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
