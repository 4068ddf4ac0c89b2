"""The exported model inside OpenMM: TorchForce and PythonForce backends, on Reference and CPU."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

from painn_deploy.errors import BoxTooSmallError, InputError, RecordingError, TopologyMismatchError, UnitsError
from painn_deploy.openmm import check_positions, create_force, create_system

from ..conftest import ETHANOL_PDB, random_rotation

PLATFORMS = ["Reference", "CPU"]


def context_for(model, backend="torch", platform="Reference", positions=None, **kwargs):
    pdb = app.PDBFile(str(ETHANOL_PDB))
    system, adapter = create_system(model, pdb.topology, backend, **kwargs)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(pdb.positions if positions is None else positions)
    return ctx, adapter


def energy_forces(ctx):
    state = ctx.getState(getEnergy=True, getForces=True)
    return (
        state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
        state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer),
    )


@pytest.mark.parametrize("platform", PLATFORMS)
def test_torchforce_matches_module(exported64, platform):
    from painn_deploy.deploy import load

    ctx, _ = context_for(exported64, platform=platform)
    e, f = energy_forces(ctx)
    pos = torch.tensor(
        np.asarray(app.PDBFile(str(ETHANOL_PDB)).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    )
    ref = load(exported64).properties(pos)
    tol = 1e-9 if platform == "Reference" else 1e-5  # the CPU platform accumulates forces in float32
    assert e == pytest.approx(float(ref["energy"].detach()), rel=tol)
    np.testing.assert_allclose(f, ref["forces"].detach().numpy(), rtol=tol, atol=tol * 1e3)
    # create_force's TorchForce returns the forces itself (ForcesOutput); TorchForce("model.pt") as users
    # write it returns the energy and openmm-torch backpropagates: both give these forces
    assert create_force(exported64, app.PDBFile(str(ETHANOL_PDB)).topology)[0].getOutputsForces()
    from painn_deploy.openmm import import_openmmtorch

    system = openmm.System()
    for _ in range(pos.shape[0]):
        system.addParticle(1.0)
    system.addForce(import_openmmtorch().TorchForce(str(exported64)))
    plain = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform))
    plain.setPositions(app.PDBFile(str(ETHANOL_PDB)).positions)
    e_plain, f_plain = energy_forces(plain)
    assert e_plain == pytest.approx(e, rel=tol)
    np.testing.assert_allclose(f_plain, f, rtol=tol, atol=tol * 1e3)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_backends_agree(exported64, platform):
    e_t, f_t = energy_forces(context_for(exported64, "torch", platform)[0])
    e_p, f_p = energy_forces(context_for(exported64, "python", platform)[0])
    tol = 1e-10 if platform == "Reference" else 1e-5
    assert e_t == pytest.approx(e_p, rel=tol)
    np.testing.assert_allclose(f_t, f_p, rtol=tol, atol=tol * 1e3)


def test_python_backend_keeps_the_features_of_each_evaluation(exported64, monkeypatch):
    """The PythonForce adapter's feature ring: each evaluation at new positions is kept (a repeated force
    query adds nothing), and the heads on its features give the dipole and polarizability of its positions,
    in one call of the heads or in chunks of evaluations (as on the CPU for many beads)."""
    from painn_deploy.deploy import load
    from painn_deploy.openmm import recorder

    ctx, adapter = context_for(exported64, "python", ring_capacity=100)
    e_plain, f_plain = energy_forces(context_for(exported64, "torch")[0])
    e, f = energy_forces(ctx)
    assert e == pytest.approx(e_plain, rel=1e-12) and np.allclose(f, f_plain, rtol=0, atol=1e-9)
    energy_forces(ctx)  # the same configuration again
    assert adapter.count == 1
    module, frames = load(exported64), []
    for _ in range(5):
        ctx.getIntegrator().step(1)
        energy_forces(ctx)
        frames.append(ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    # Verlet evaluates at the start of a step: the last configuration was evaluated by the query above
    assert adapter.count == 6
    np.testing.assert_array_equal(adapter.ring.positions_nm(5)[0], frames[-1])
    got = adapter.ring.responses([1, 3, 5])
    assert got["dipole"].shape == (3, 1, 3) and got["polarizability"].shape == (3, 1, 3, 3)
    for k, j in enumerate([0, 2, 4]):
        ref = module.properties(torch.tensor(np.asarray(frames[j])))
        np.testing.assert_allclose(got["dipole"][k, 0], ref["dipole"].numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got["polarizability"][k, 0], ref["polarizability"].numpy(), rtol=1e-12, atol=1e-15)
    assert np.abs(got["dipole"][0] - got["dipole"][1]).max() > 1e-9  # different steps, different values
    monkeypatch.setattr(recorder, "DENSE_CHUNK_ELEMENTS", 2 * adapter.ring.v[0].numel())  # two evaluations a chunk
    chunked = adapter.ring.responses([1, 3, 5])
    for key, value in got.items():
        np.testing.assert_allclose(chunked[key], value, rtol=1e-12, atol=1e-15)
    assert adapter.ring.responses([])["dipole"].shape == (0, 1, 3)


def test_python_backend_reuses_its_buffers_in_and_out_of_inference_mode(exported64):
    """The adapter evaluates in inference mode and reuses its positions and forces buffers: a first call made
    inside the caller's own inference mode must not leave buffers that a later call outside it cannot write,
    and the forces it hands back are its own buffer, rewritten by each call."""
    ctx, adapter = context_for(exported64, "python")
    pos = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    with torch.inference_mode():
        e_in, f_in = energy_forces(ctx)
    kept = adapter.last["forces"]
    first = kept.copy()
    moved = pos.copy()
    moved[0, 0] += 0.001  # (not a translation, to which the model is blind)
    ctx.setPositions(moved)
    e_out, f_out = energy_forces(ctx)
    assert adapter.last["forces"] is kept and not np.array_equal(kept, first)  # the same buffer, rewritten
    np.testing.assert_array_equal(kept, f_out)
    ctx.setPositions(pos)
    e_again, f_again = energy_forces(ctx)
    assert e_again == e_in
    np.testing.assert_array_equal(f_again, f_in)
    assert e_out != e_in


def test_feature_ring_refuses_evaluations_it_no_longer_holds(exported64):
    ctx, small = context_for(exported64, "python", ring_capacity=2)
    pos = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    for shift in (0.0, 1e-3, 2e-3):
        ctx.setPositions(pos + shift)
        ctx.getState(getForces=True)
    assert small.count == 3 and np.allclose(small.ring.positions_nm(1)[0], pos + 1e-3)
    with pytest.raises(RecordingError, match="read it at least every 2 evaluations"):
        small.ring.responses([0, 1])


def test_python_backend_does_not_grow_memory(exported64):
    """Steady-state steps with the feature ring keep no memory alive (the ring is preallocated)."""
    ctx, adapter = context_for(exported64, "python", ring_capacity=100)

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    ctx.getIntegrator().step(100)
    before = rss_mb()
    ctx.getIntegrator().step(600)
    assert adapter.count >= 700
    assert rss_mb() - before < 25


def test_python_backend_forces_leave_nothing_behind_when_made_again(exported64):
    """Each PythonForce adapter froze a module scripted in the process, which leaves its constants in Python's
    global TorchScript compilation unit for good (pytorch#96726): some MB per force, growing in a notebook that
    builds Systems again and again. The unit holds no more after the second adapter than after the first."""
    from painn_deploy.openmm.forces import ModelForce

    module = torch.jit.load(str(exported64))
    python_cu = torch.jit._state._python_cu
    ModelForce(module, False)
    held = len(python_cu.get_functions())
    for _ in range(3):
        ModelForce(module, False)
    assert len(python_cu.get_functions()) == held


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_python_backend_on_cuda_with_a_graph_equals_the_cpu(exported32):
    pdb = app.PDBFile(str(ETHANOL_PDB))
    from painn_deploy.openmm import create_force

    _, cpu = create_force(exported32, pdb.topology, "python", ring_capacity=10)
    _, gpu = create_force(exported32, pdb.topology, "python", ring_capacity=10, device="cuda", cuda_graphs=True)
    system, _ = create_system(exported32, pdb.topology)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    start = np.array(pdb.positions.value_in_unit(unit.nanometer))
    rng = np.random.default_rng(0)
    for _ in range(4):  # the graph is captured at the first positions and replayed at the others
        ctx.setPositions(start + 0.003 * rng.standard_normal(start.shape))
        s = ctx.getState(getPositions=True)
        e_cpu, f_cpu = cpu(s)
        e_gpu, f_gpu = gpu(s)
        assert e_gpu == pytest.approx(e_cpu, rel=1e-5)
        np.testing.assert_allclose(f_gpu, f_cpu, rtol=1e-4, atol=1e-3)
    assert gpu.ring.s.device.type == "cuda"
    np.testing.assert_allclose(gpu.ring.responses([3])["dipole"], cpu.ring.responses([3])["dipole"], atol=1e-5)
    # a module loaded on the CPU (as OpenMM-ML's python backend loads it) keeps its ring on the force's device
    from painn_deploy.openmm.forces import ModelForce

    moved = ModelForce(torch.jit.load(str(exported32)), False, "cuda", ring_capacity=10)
    assert moved.ring.s.device.type == "cuda"


def test_a_nan_energy_of_the_python_backend_is_an_error_that_names_its_cause(exported64):
    """OpenMM's GPU platforms add forces in fixed point, where a NaN force becomes one that throws the atoms apart:
    the python backend stops at a NaN energy with an error (a typed one through OpenMM) instead of handing it on."""
    from painn_deploy.errors import from_torchscript

    pos = np.asarray(app.PDBFile(str(ETHANOL_PDB)).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    ctx, adapter = context_for(exported64, "python")
    energy_forces(ctx)
    pos[4] = np.nan
    ctx.setPositions(pos)
    with pytest.raises(openmm.OpenMMException) as caught:
        energy_forces(ctx)
    assert isinstance(from_torchscript(caught.value), InputError)
    assert "InputError: the model's energy is NaN: atoms are at NaN or infinite positions" in str(caught.value)
    assert np.isnan(adapter.last["energy"])


def test_a_graph_that_cannot_be_captured_falls_back_to_the_evaluation_without_it(exported64):
    """A CUDA graph capture that fails (an operation the capture does not allow) warns once and the force goes on
    without the graph; an error of the model's during the capture is still the model's error.  (A stand-in for
    the capture: the fallback is host code, tested on the CPU.)"""
    from painn_deploy.errors import SimulationWarning

    class FailingCapture:
        graph = None

        def __init__(self, message):
            self.message = message

        def __call__(self, positions, box):
            raise RuntimeError(self.message)

    ctx, adapter = context_for(exported64, "python")
    reference = energy_forces(ctx)[0]
    ctx, adapter = context_for(exported64, "python")
    adapter._graph = FailingCapture("CUDA error: operation not permitted when stream is capturing")
    with pytest.warns(SimulationWarning, match=r"the CUDA graph of the model could not be captured \(CUDA error: "
                      r"operation not permitted when stream is capturing\): the run goes on without it"):  # fmt: skip
        assert energy_forces(ctx)[0] == reference
    assert adapter._graph is None
    adapter._graph = FailingCapture("InputError: positions must be [N, 3]")
    with pytest.raises(openmm.OpenMMException, match=r"InputError: positions must be \[N, 3\]"):
        energy_forces(ctx)


def test_a_gpu_ring_holds_a_hundred_steps_of_large_systems():
    """Each block of steps between two calls of the output heads is a round trip to Python: the ring's memory bound
    lets a GPU keep FEATURE_CAPACITY steps of aspirin's 64 beads and of a 4,608-atom box (float32, 128 features);
    on the CPU the bound keeps the heads' chunks in cache."""
    from painn_deploy.md.runner import FEATURE_CAPACITY
    from painn_deploy.openmm.recorder import ring_capacity

    for frames, atoms in ((64, 21), (1, 4608)):
        frame_bytes = 4 * frames * atoms * (3 + 4 * 128)
        assert ring_capacity(FEATURE_CAPACITY, frame_bytes, "cuda") == FEATURE_CAPACITY
        assert ring_capacity(FEATURE_CAPACITY, frame_bytes, "cpu") < FEATURE_CAPACITY


def test_forces_through_openmm_match_finite_differences(exported64):
    ctx, _ = context_for(exported64)
    pos0 = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    _, forces = energy_forces(ctx)
    rng = np.random.default_rng(1)
    direction = rng.normal(size=pos0.shape)
    direction /= np.linalg.norm(direction)
    h = 1e-5
    energies = []
    for sign in (1, -1):
        ctx.setPositions(pos0 + sign * h * direction)
        energies.append(energy_forces(ctx)[0])
    fd = -(energies[0] - energies[1]) / (2 * h)
    assert fd == pytest.approx(float(np.sum(forces * direction)), rel=1e-6, abs=1e-5)


def test_rotation_invariance_through_openmm(exported64):
    ctx, _ = context_for(exported64)
    pos0 = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    e0, f0 = energy_forces(ctx)
    rot = random_rotation(3)
    ctx.setPositions((pos0 - pos0.mean(0)) @ rot.T + 1.0)
    e1, f1 = energy_forces(ctx)
    assert e1 == pytest.approx(e0, rel=1e-11)
    np.testing.assert_allclose(f1, f0 @ rot.T, atol=1e-8)


def test_serialized_system_round_trips(exported64, tmp_path):
    """The XML embeds the model: it still works after the model file is gone."""
    import shutil

    from painn_deploy.openmm import deserialize_system, serialize_system

    copy = tmp_path / "copy.pt"
    shutil.copy(exported64, copy)
    ctx, _ = context_for(copy)
    ctx.getSystem().getForce(0).setForceGroup(2)
    e0, f0 = energy_forces(ctx)
    xml = serialize_system(ctx.getSystem())
    copy.unlink()
    system = deserialize_system(xml, tmp_path / "models")
    assert system.getNumForces() == 2 and system.getForce(0).getForceGroup() == 2
    assert isinstance(system.getForce(1), openmm.CMMotionRemover)
    ctx2 = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    ctx2.setPositions(app.PDBFile(str(ETHANOL_PDB)).positions)
    e1, f1 = energy_forces(ctx2)
    assert e1 == e0
    np.testing.assert_array_equal(f1, f0)


def test_plain_openmm_script_without_painn_deploy(exported32, tmp_path):
    """The artefact works in a process that never imports painn_deploy, through TorchForce("model.pt") and
    through the README's outputs-forces wrapper, which gives the same forces."""
    script = tmp_path / "plain.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        import numpy as np
        import torch
        import openmm, openmm.app as app, openmm.unit as unit
        from openmmtorch import TorchForce

        class EnergyAndForces(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, positions):
                return self.model.energy_and_forces(positions)

        pdb = app.PDBFile({str(ETHANOL_PDB)!r})
        forces = []
        for outputs_forces in (False, True):
            system = openmm.System()
            for atom in pdb.topology.atoms():
                system.addParticle(atom.element.mass)
            if outputs_forces:
                force = TorchForce(torch.jit.script(EnergyAndForces(torch.jit.load({str(exported32)!r}))))
                force.setOutputsForces(True)
            else:
                force = TorchForce({str(exported32)!r})
            system.addForce(force)
            integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
            sim = app.Simulation(pdb.topology, system, integrator, openmm.Platform.getPlatformByName("CPU"))
            sim.context.setPositions(pdb.positions)
            state = sim.context.getState(getForces=True)
            forces.append(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
            sim.step(20)
        e = sim.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        assert "painn_deploy" not in sys.modules
        print("MAXFORCE", np.abs(forces[0]).max())
        np.testing.assert_allclose(forces[1], forces[0], rtol=0, atol=1e-4 * np.abs(forces[0]).max())
        print("ENERGY", e)
    """)
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    energy = float(result.stdout.split("ENERGY")[1])
    assert np.isfinite(energy)
    assert float(result.stdout.split("MAXFORCE")[1].split()[0]) > 1.0  # forces to get wrong


def test_element_mismatch_is_an_error(exported32, tmp_path):
    pdb = app.PDBFile(str(ETHANOL_PDB))
    top = app.Topology()
    chain = top.addChain()
    res = top.addResidue("X", chain)
    atoms = list(pdb.topology.atoms())
    for a in atoms[:-1]:
        top.addAtom(a.name, a.element, res)
    with pytest.raises(TopologyMismatchError, match="8 atoms.*exported for 9"):
        create_force(exported32, top)
    swapped = app.Topology()
    res = swapped.addResidue("X", swapped.addChain())
    for a in [atoms[2], atoms[0], atoms[1]] + atoms[3:]:
        swapped.addAtom(a.name, a.element, res)
    with pytest.raises(TopologyMismatchError, match=r"atom 1: O \(model: C\)"):
        create_force(exported32, swapped)


def test_periodic_box_too_small(trained_checkpoint, tmp_path):
    from painn_deploy.deploy import export

    pdb_text = ETHANOL_PDB.read_text()
    boxed = tmp_path / "boxed.pdb"
    boxed.write_text("CRYST1   30.000   30.000   30.000  90.00  90.00  90.00 P 1           1\n" + pdb_text)
    model = tmp_path / "periodic.pt"
    meta = export(trained_checkpoint, model, pdb=str(boxed))
    assert meta["periodic"] is True
    small = tmp_path / "small.pdb"
    small.write_text("CRYST1    8.000    8.000    8.000  90.00  90.00  90.00 P 1           1\n" + pdb_text)
    with pytest.raises(BoxTooSmallError, match="less than twice the model cutoff"):
        create_force(model, app.PDBFile(str(small)).topology)
    ctx, _ = context_for_periodic(model, boxed)
    e, f = energy_forces(ctx)  # TorchForce with setOutputsForces, given the box by openmm-torch
    from painn_deploy.deploy import load

    pdb = app.PDBFile(str(boxed))
    pos = torch.tensor(np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)))
    box = torch.tensor(np.asarray(pdb.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)))
    ref = load(model).properties(pos, box)
    assert e == pytest.approx(float(ref["energy"]), rel=1e-6)
    np.testing.assert_allclose(f, ref["forces"].double().numpy(), rtol=1e-5, atol=1e-3)


def context_for_periodic(model, pdb_path):
    pdb = app.PDBFile(str(pdb_path))
    system, adapter = create_system(model, pdb.topology)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pdb.positions)
    return ctx, adapter


def test_preflight_position_checks():
    pos = np.asarray(app.PDBFile(str(ETHANOL_PDB)).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    check_positions(pos)
    with pytest.raises(UnitsError, match=r"coordinates look 10 times too large\. A PDB file stores Angstrom"):
        check_positions(pos * 10)
    with pytest.raises(UnitsError, match=r"look 10 times too small, e\.g\. nm written where Angstrom belong"):
        check_positions(pos / 10)
    overlapping = pos.copy()
    overlapping[4] = overlapping[3] + 1e-4
    with pytest.raises(InputError, match="atoms 4 and 5 are 0.002 Angstrom apart"):
        check_positions(overlapping)
    # two atoms at exactly the same place: the partner is named, not the atom itself (was "atoms 1 and 1")
    for first, second in ((0, 3), (3, 0), (2, 8)):
        coincident = pos.copy()
        coincident[second] = coincident[first]
        a, b = sorted((first + 1, second + 1))
        with pytest.raises(InputError, match=f"atoms {a} and {b} are 0.000 Angstrom apart"):
            check_positions(coincident)
    with pytest.raises(InputError, match="NaN"):
        check_positions(pos * np.nan)


def test_openmm_imported_before_torch_still_works(exported32, tmp_path):
    """A user script that imports openmm first: OpenMM fails to load the openmm-torch plugin
    (libnvrtc.so.12); painn_deploy loads it again once torch is imported."""
    script = tmp_path / "order.py"
    script.write_text(
        textwrap.dedent(f"""
        import openmm
        import openmm.app as app
        from painn_deploy.openmm import create_system
        pdb = app.PDBFile({str(ETHANOL_PDB)!r})
        system, _ = create_system({str(exported32)!r}, pdb.topology)
        ctx = openmm.Context(system, openmm.RPMDIntegrator(2, 300, 1, 0.0005), openmm.Platform.getPlatformByName("Reference"))
        for k in range(2):
            ctx.getIntegrator().setPositions(k, pdb.positions)
        print("ENERGY", ctx.getIntegrator().getState(0, getEnergy=True).getPotentialEnergy())
    """)
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ENERGY" in result.stdout


def test_errors_met_again_and_again_leave_the_process_running(tmp_path):
    """Each error of the deployed modules (a box too small through TorchForce and through ``load``, positions of
    another system, box lengths given for box vectors, a static list's overflow, ML atoms across a boundary through
    OpenMM-ML), met three times in one process, is raised with its type every time, and an atom at a NaN or
    infinite position gives NaN (OpenMM-ML's TorchForce; a cell list) or an error that says so (its python backend) (torch 2.9 crashed the process at the second meeting when the error
    was raised from inlined code, or the cell list failed on NaN)."""
    script = Path(__file__).with_name("errors_in_one_process.py")
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    met = [line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith("MET ")]
    expected = [
        "TorchForce BoxTooSmallError",
        "Model.properties BoxTooSmallError",
        "module.energy_and_forces TopologyMismatchError",
        "box lengths InputError",
        "static list NeighborListOverflowError",
        "OpenMM-ML InputError",
        "OpenMM-ML python at infinity (NaN positions named) InputError",
    ]
    assert met == expected * 3, result.stdout
    # atoms at NaN or infinite positions: NaN energy, no error (not "the ML atoms straddle a boundary"); the python
    # backend's NaN energy is an error that names them
    for nan in ("NAN OpenMM-ML inf torch True", "NAN cell list True"):
        assert result.stdout.count(nan) == 3, result.stdout
    assert result.stdout.rstrip().endswith("DONE")
