"""OpenMM-ML: MLPotential("painn", model=...) against painn-deploy's own forces, periodic boxes, mechanical
embedding in TIP3P water, and bad input.  Small systems (ethanol; ethanol + 150 waters) on Reference and CPU."""

import re
import subprocess
import sys
import warnings
from importlib.metadata import entry_points

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit
from openmmml import MLPotential

from painn_deploy.errors import (
    BoxTooSmallError,
    CheckpointError,
    InputError,
    SimulationWarning,
    TopologyMismatchError,
    UnknownElementError,
    from_torchscript,
)
from painn_deploy.openmm import create_system
from painn_deploy.openmm.mlpotential import PaiNNPotentialImplFactory
from painn_deploy.resources import BUNDLED_CHECKPOINT, RESOURCES
from painn_deploy.solvation import forcefield, solvate

from ..conftest import ETHANOL_PDB

PLATFORMS = ["Reference", "CPU"]
BACKENDS = ["python", "torch"]
CHECKPOINT = BUNDLED_CHECKPOINT
N_WATERS = 150  # box ~1.77 nm
PME_CUTOFF = 0.8 * unit.nanometer


@pytest.fixture(scope="module")
def model64(tmp_path_factory):
    """The bundled checkpoint exported in float64 for ethanol alone (non-periodic)."""
    from painn_deploy.deploy import export

    path = tmp_path_factory.mktemp("openmmml") / "ethanol64.pt"
    export(CHECKPOINT, path, dtype="float64")
    return path


@pytest.fixture(scope="module")
def solvated(tmp_path_factory):
    """Ethanol in 150 TIP3P waters (PDB written by the solvation helper and read back)."""
    path = tmp_path_factory.mktemp("openmmml") / "solvated.pdb"
    solvate(ETHANOL_PDB, path, n_waters=N_WATERS)
    pdb = app.PDBFile(str(path))
    ml_atoms = [a.index for a in pdb.topology.atoms() if a.residue.name == "EOH"]
    return pdb, ml_atoms


def ethanol():
    pdb = app.PDBFile(str(ETHANOL_PDB))
    return pdb.topology, pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)


def boxed(topology, width_nm):
    topology.setPeriodicBoxVectors(
        [openmm.Vec3(width_nm, 0, 0), openmm.Vec3(0, width_nm, 0), openmm.Vec3(0, 0, width_nm)]
    )
    return topology


def context(system, positions, platform="Reference"):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(positions)
    return ctx


def energy_forces(ctx, groups=-1):
    state = ctx.getState(getEnergy=True, getForces=True, groups=groups)
    return (
        state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
        state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer),
    )


def test_painn_is_registered_through_the_entry_point():
    (ep,) = [e for e in entry_points(group="openmmml.potentials") if e.name == "painn"]
    assert ep.value == "painn_deploy.openmm.mlpotential:PaiNNPotentialImplFactory"
    assert isinstance(MLPotential._implFactories["painn"], PaiNNPotentialImplFactory)
    assert "mechanical" in MLPotential("painn", model=RESOURCES / "ethanol_painn.pt").getSupportedEmbeddings()
    # this process imported openmmml first; importing painn-deploy first works too (no import cycle)
    code = (
        "import painn_deploy.openmm.mlpotential as m; from openmmml import MLPotential; "
        "assert type(MLPotential._implFactories['painn']) is m.PaiNNPotentialImplFactory"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_matches_painn_deploy_force(model64, platform, backend):
    """MLPotential.createSystem gives the energy and forces of painn-deploy's create_system (the same backend)."""
    topology, positions = ethanol()
    positions = positions + np.random.default_rng(0).normal(scale=0.005, size=positions.shape)
    reference, _ = create_system(model64, topology, backend)
    system = MLPotential("painn", model=model64, backend=backend, device="cpu").createSystem(topology)
    e_ref, f_ref = energy_forces(context(reference, positions, platform))
    e, f = energy_forces(context(system, positions, platform))
    # the CPU platform sums forces in float32 (Reference: double; measured differences 0 on both)
    tol = 1e-9 if platform == "Reference" else 1e-5
    assert e == pytest.approx(e_ref, rel=tol)
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=tol * 1e3)
    assert np.abs(f).max() > 10.0  # not trivially zero


@pytest.mark.parametrize("backend", BACKENDS)
def test_checkpoint_as_model(model64, backend):
    """model= a painn-train checkpoint: exported for the ML atoms on the fly; equal to its float64 export."""
    topology, positions = ethanol()
    system = MLPotential("painn", model=CHECKPOINT, dtype="float64", backend=backend).createSystem(topology)
    reference, _ = create_system(model64, topology, "torch")
    e, f = energy_forces(context(system, positions))
    e_ref, f_ref = energy_forces(context(reference, positions))
    assert e == pytest.approx(e_ref, rel=1e-12)
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_periodic_box_translation_and_wrapping(model64, backend):
    """With a box, the checkpoint is exported periodic (minimum image): moving the molecule across the box and
    wrapping every atom into it changes nothing.  A non-periodic artefact gives the same energy while the
    molecule stays whole, also when it sticks out of the box."""
    topology, positions = ethanol()
    width = 1.5
    topology = boxed(topology, width)
    periodic = MLPotential("painn", model=CHECKPOINT, dtype="float64", backend=backend).createSystem(topology)
    whole = MLPotential("painn", model=model64, backend=backend).createSystem(topology)
    ctx_periodic, ctx_whole = context(periodic, positions), context(whole, positions)
    e0, f0 = energy_forces(ctx_periodic)
    assert energy_forces(ctx_whole)[0] == pytest.approx(e0, rel=1e-12)  # no image within the cutoff
    worst_e, worst_f = 0.0, 0.0
    for shift in ([0.75, 0.0, 0.0], [1.4, 1.45, -0.1], [-3.1, 0.73, 2.9]):  # across one, two, three faces
        moved = positions + np.asarray(shift)
        ctx_periodic.setPositions(np.mod(moved, width))  # atom by atom: the molecule straddles the boundary
        e, f = energy_forces(ctx_periodic)
        ctx_whole.setPositions(moved)
        e_whole, _ = energy_forces(ctx_whole)
        worst_e = max(worst_e, abs(e - e0), abs(e_whole - e0))
        worst_f = max(worst_f, float(np.abs(f - f0).max()))
    assert worst_e < 1e-7  # measured 0 (below one ulp of -29910 kJ/mol)
    assert worst_f < 1e-7  # measured 7e-11 kJ/mol/nm


@pytest.mark.parametrize("backend", BACKENDS)
def test_mechanical_embedding(model64, solvated, backend):
    """createMixedSystem (mechanical embedding, amber14 TIP3P + OPLS-AA ethanol, PME): the ML force is
    painn-deploy's on the ethanol alone, and E_mixed = E_MM(all) - E_MM(ethanol) + E_ML(ethanol), forces alike."""
    pdb, ml_atoms = solvated
    positions = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    ff = forcefield()
    mm_system = ff.createSystem(pdb.topology, nonbondedMethod=app.PME, nonbondedCutoff=PME_CUTOFF)
    potential = MLPotential("painn", model=model64, backend=backend)
    mixed = potential.createMixedSystem(pdb.topology, mm_system, ml_atoms, forceGroup=1)  # MM forces: group 0
    ctx = context(mixed, positions)
    e_mixed, f_mixed = energy_forces(ctx)
    e_ml, f_ml = energy_forces(ctx, {1})
    e_mm_all, f_mm_all = energy_forces(context(mm_system, positions))
    eth_topology, _ = ethanol()
    eth_mm = ff.createSystem(eth_topology, nonbondedMethod=app.NoCutoff)
    e_mm_ml, f_mm_ml = energy_forces(context(eth_mm, positions[ml_atoms]))
    reference, _ = create_system(model64, eth_topology, "torch")
    e_ref, f_ref = energy_forces(context(reference, positions[ml_atoms]))

    assert e_ml == pytest.approx(e_ref, rel=1e-12)
    np.testing.assert_allclose(f_ml[ml_atoms], f_ref, rtol=0, atol=1e-8)
    assert not np.any(np.delete(f_ml, ml_atoms, axis=0))  # no ML forces on the water
    # measured: 1.5e-11 kJ/mol (of -33263) and 1.1e-12 kJ/mol/nm
    assert e_mixed == pytest.approx(e_mm_all - e_mm_ml + e_ml, abs=1e-6)
    expected = f_mm_all.copy()
    expected[ml_atoms] += f_ml[ml_atoms] - f_mm_ml
    np.testing.assert_allclose(f_mixed, expected, rtol=0, atol=1e-6)
    assert abs(e_mm_ml) > 1.0 and abs(e_mm_all - e_mm_ml) > 100.0  # the terms are not trivially zero
    # a few steps of MD run (constraints between ML atoms were removed; rigid water kept)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.0005 * unit.picosecond)
    sim = openmm.Context(mixed, integrator, openmm.Platform.getPlatformByName("CPU"))
    sim.setPositions(positions)
    integrator.step(5)
    assert np.isfinite(sim.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))


def test_interpolation_between_mm_and_ml(model64, solvated):
    """createMixedSystem(interpolate=True), OpenMM-ML's switch between the force field and ML/MM: at
    lambda_interpolate = 1 the energy and forces are the ML/MM system's, at 0 the force field's, and the ML
    ethanol stays one OpenMM molecule (its ties inside the CustomCVForce).  The TorchForce backend is refused
    with a message (OpenMM-ML's copy of it into the CustomCVForce would crash)."""
    pdb, ml_atoms = solvated
    positions = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    mm_system = forcefield().createSystem(pdb.topology, nonbondedMethod=app.PME, nonbondedCutoff=PME_CUTOFF)
    with pytest.raises(InputError, match="interpolate=True\\) needs the PythonForce backend"):
        MLPotential("painn", model=model64, backend="torch").createMixedSystem(
            pdb.topology, mm_system, ml_atoms, interpolate=True
        )
    potential = MLPotential("painn", model=model64)
    mixed = potential.createMixedSystem(pdb.topology, mm_system, ml_atoms)
    switch = potential.createMixedSystem(pdb.topology, mm_system, ml_atoms, interpolate=True)
    e_ml, f_ml = energy_forces(context(mixed, positions))
    e_mm, f_mm = energy_forces(context(mm_system, positions))
    ctx = context(switch, positions)
    assert sorted(ml_atoms) in [sorted(m) for m in ctx.getMolecules()]
    for value, (e_ref, f_ref) in ((1.0, (e_ml, f_ml)), (0.0, (e_mm, f_mm))):
        ctx.setParameter("lambda_interpolate", value)
        e, f = energy_forces(ctx)
        assert e == pytest.approx(e_ref, abs=1e-5)
        np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-5)
    assert abs(e_ml - e_mm) > 100.0  # the two ends differ


def test_ml_molecules_stay_whole_in_wrapped_output(model64, solvated):
    """createMixedSystem removes the ML atoms' bonds, by which OpenMM finds molecules: the potential ties each ML
    residue with bonds of no energy, so OpenMM's molecules hold the ML ethanol, and wrapped output
    (getState(enforcePeriodicBox=True), DCDReporter's default) keeps it whole across a face of the box."""
    pdb, ml_atoms = solvated
    positions = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    width = np.asarray(pdb.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)).diagonal()
    positions = positions + np.array([width[0] - positions[ml_atoms, 0].mean(), 0.0, 0.0])  # ethanol on the face
    mm_system = forcefield().createSystem(pdb.topology, nonbondedMethod=app.PME, nonbondedCutoff=PME_CUTOFF)
    mixed = MLPotential("painn", model=model64).createMixedSystem(pdb.topology, mm_system, ml_atoms)
    ctx = context(mixed, positions)
    assert sorted(ml_atoms) in [sorted(m) for m in ctx.getMolecules()]
    assert ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) < 0
    wrapped = ctx.getState(getPositions=True, enforcePeriodicBox=True).getPositions(asNumpy=True)
    assert np.ptp(wrapped.value_in_unit(unit.nanometer)[ml_atoms], axis=0).max() < 0.5  # whole


def test_mlmm_artefact(solvated, tmp_path):
    """An artefact exported for the whole solvated system with atoms= (it takes every particle's positions):
    the same ML force as the checkpoint exported here, on both backends; other ML atoms are refused."""
    from painn_deploy.deploy import export

    pdb, ml_atoms = solvated
    path = tmp_path / "solvated_ml.pt"
    with open(tmp_path / "solvated.pdb", "w") as f:
        app.PDBFile.writeFile(pdb.topology, pdb.positions, f, keepIds=True)
    export(CHECKPOINT, path, pdb=str(tmp_path / "solvated.pdb"), dtype="float64", atoms=ml_atoms)  # periodic
    positions = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    mm_system = forcefield().createSystem(pdb.topology, nonbondedMethod=app.PME, nonbondedCutoff=PME_CUTOFF)
    reference = MLPotential("painn", model=CHECKPOINT, dtype="float64")
    mixed = reference.createMixedSystem(pdb.topology, mm_system, ml_atoms, forceGroup=1)
    e_ref, f_ref = energy_forces(context(mixed, positions), {1})
    for backend in BACKENDS:
        potential = MLPotential("painn", model=path, backend=backend)
        mixed = potential.createMixedSystem(pdb.topology, mm_system, ml_atoms, forceGroup=1)
        e, f = energy_forces(context(mixed, positions), {1})
        assert e == pytest.approx(e_ref, rel=1e-12)  # measured: equal
        np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-8)
    with pytest.raises(TopologyMismatchError, match="was exported for ML/MM with ML atoms"):
        potential.createMixedSystem(pdb.topology, mm_system, ml_atoms[:3])


# ---- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["ethanol_painn.pt", "ethanol_painn.ckpt"])
def test_unknown_element(model):
    topology, _ = ethanol()
    sodium = topology.addResidue("NA", topology.addChain("B"))
    topology.addAtom("NA", app.element.sodium, sodium)
    with pytest.raises(UnknownElementError) as info:
        MLPotential("painn", model=RESOURCES / model).createSystem(topology)
    message = str(info.value)
    assert "Na (Z=11)" in message and "atom 9 (NA in residue NA" in message
    assert "it knows H, C, O" in message and "model the others with the MM force field" in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_molecule_across_boundary_needs_periodic_model(model64, backend):
    """A non-periodic artefact in a box: ML atoms wrapped one by one across a boundary are an error that says
    what happened and what to do (OpenMM passes it on as OpenMMException; from_torchscript types it)."""
    topology, positions = ethanol()
    width = 1.5
    system = MLPotential("painn", model=model64, backend=backend).createSystem(boxed(topology, width))
    ctx = context(system, np.mod(positions + [1.45, 0.75, 0.75], width))  # straddles the x = 0 face only
    with pytest.raises(openmm.OpenMMException, match="straddles a boundary of the periodic box") as info:
        ctx.getState(getEnergy=True)
    message = str(info.value)
    assert "across box vector a" in message and "the model is not periodic" in message
    assert "the painn-train checkpoint (model= in Python, --model for painn-simulate)" in message
    assert isinstance(from_torchscript(info.value), InputError)


def test_particle_order_and_box_checks(model64):
    topology, _ = ethanol()
    potential = MLPotential("painn", model=model64)
    mm_system = forcefield().createSystem(topology)
    with pytest.raises(TopologyMismatchError, match="does not match the model's particle order"):
        potential.createMixedSystem(topology, mm_system, [2, 1, 0, 3, 4, 5, 6, 7, 8])
    with pytest.raises(BoxTooSmallError, match="less than twice the model cutoff"):
        MLPotential("painn", model=CHECKPOINT).createSystem(boxed(topology, 0.9))
    with pytest.raises(InputError, match="does not take precision"):
        MLPotential("painn", model=model64, precision="double")
    with pytest.raises(InputError, match="needs model="):
        MLPotential("painn")


def test_ml_atoms_that_are_not_the_training_molecule_are_warned_about(model64, solvated):
    """Part of a residue as ML atoms (OpenMM-ML caps the cut bond with a link hydrogen, so the artefact's 9
    elements still match) and a checkpoint built for other chemistry (one water) run, with a warning that says
    what the model sees and what to give instead."""
    pdb, ml_atoms = solvated
    mm_system = forcefield().createSystem(pdb.topology, nonbondedMethod=app.PME, nonbondedCutoff=PME_CUTOFF)
    hydroxyl_h = [a.index for a in pdb.topology.atoms() if a.residue.name == "EOH" and a.element.symbol == "H"][-1]
    cut = [i for i in ml_atoms if i != hydroxyl_h]
    with pytest.warns(SimulationWarning, match="take only 8 of the 9 atoms of residue EOH .*Give whole residues"):
        MLPotential("painn", model=model64).createMixedSystem(pdb.topology, mm_system, cut)
    water = [a.index for a in next(r for r in pdb.topology.residues() if r.name == "HOH").atoms()]
    with pytest.warns(SimulationWarning, match=r"model's atoms \(H2O\) are not copies of its training molecule"):
        MLPotential("painn", model=CHECKPOINT).createMixedSystem(pdb.topology, mm_system, water)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimulationWarning)
        MLPotential("painn", model=CHECKPOINT).createMixedSystem(pdb.topology, mm_system, ml_atoms)


def test_solvation_missing_template(tmp_path):
    with pytest.raises(InputError) as info:
        solvate(RESOURCES / "aspirin.pdb", tmp_path / "out.pdb", n_waters=10)
    message = str(info.value)
    assert "no force-field template matches residue AIN" in message and "forcefield_files=" in message
    assert not (tmp_path / "out.pdb").exists()


def test_solvation_padding_in_the_wrong_unit(tmp_path, monkeypatch):
    """padding_nm of 0 or less is refused; 10 (Angstrom meant) warns with the size of the box before a minute of
    Modeller work (stopped here after the warning)."""
    for bad in (0.0, -1.0):
        with pytest.raises(
            InputError, match="padding_nm is the distance in nm between the solute and its periodic images"
        ):
            solvate(ETHANOL_PDB, tmp_path / "out.pdb", padding_nm=bad)

    def stop(*args, **kwargs):
        raise RuntimeError("stopped before Modeller")

    monkeypatch.setattr(app.Modeller, "addSolvent", stop)
    with pytest.warns(
        SimulationWarning, match="about 20 nm wide, with about 2[0-9,]{6} water molecules; padding_nm is in nm"
    ):
        with pytest.raises(RuntimeError, match="stopped before Modeller"):
            solvate(ETHANOL_PDB, tmp_path / "out.pdb", padding_nm=10.0)


# ---- more ------------------------------------------------------------------------------------------------------


def test_python_force_serializes(model64, tmp_path, monkeypatch):
    """XmlSerializer pickles the PythonForce's computation as its recipe: the model's absolute path and sha256, read
    at the first evaluation.  A System made with a relative path is read again from another directory; a file
    gone or replaced is an error at the evaluation (an error while OpenMM read the System ended the process)."""
    import shutil

    shutil.copy(model64, tmp_path / "model.pt")
    monkeypatch.chdir(tmp_path)
    topology, positions = ethanol()
    potential = MLPotential("painn", model="model.pt")
    system = potential.createSystem(topology)
    xml = openmm.XmlSerializer.serialize(system)
    monkeypatch.chdir(tmp_path.parent)
    copy = openmm.XmlSerializer.deserialize(xml)
    assert energy_forces(context(copy, positions))[0] == energy_forces(context(system, positions))[0]
    (tmp_path / "model.pt").rename(tmp_path / "moved.pt")
    for expected in (r"CheckpointError: .*model.pt does not exist.* give the model file at the path the System",
                     r"CheckpointError: the model .*model.pt is not the file this force was made with"):  # fmt: skip
        with pytest.raises(openmm.OpenMMException) as caught:
            energy_forces(context(openmm.XmlSerializer.deserialize(xml), positions))
        assert isinstance(from_torchscript(caught.value), CheckpointError)
        assert re.search(expected, str(caught.value)), str(caught.value)
        shutil.copy(CHECKPOINT, tmp_path / "model.pt")  # (another file at the path)
    # a System pickled by an older painn-deploy (a recipe without the sha256): named, with the fix
    import dataclasses

    from painn_deploy.openmm.mlpotential import PaiNNComputation

    recipe = dataclasses.replace(potential._impl.computations[-1].recipe)
    del recipe.__dict__["sha256"]
    with pytest.raises(RuntimeError, match=r"CheckpointError: the model .* could not be read again for this force "
                       r"\(AttributeError: .*sha256.*\); a System made by another painn-deploy must be made again"):  # fmt: skip
        PaiNNComputation(recipe)(None)


def test_cuda_graphs_need_a_model_with_fixed_shapes(tmp_path):
    """cudaGraphs=True with a cell-list model (shapes that depend on the positions) is refused when the System is
    built, before any capture could fail on the GPU; an all-pairs model is accepted."""
    from painn_deploy.deploy import export

    cell_list = tmp_path / "cell_list.pt"
    export(CHECKPOINT, cell_list, neighbor_mode="cell_list")
    topology, _ = ethanol()
    with pytest.raises(InputError, match=r"CUDA graphs need fixed shapes, and the model of these 9 ML atoms uses the "
                       r"cell_list neighbour list; export with painn-export --neighbor-list static"):  # fmt: skip
        MLPotential("painn", model=cell_list).createSystem(topology, cudaGraphs=True)
    MLPotential("painn", model=CHECKPOINT).createSystem(topology, cudaGraphs=True, backend="torch")


def test_devices_this_machine_lacks_are_named():
    """device='cuda' without a GPU, a device torch does not know, and CUDA graphs on the CPU are refused with the
    fix (were torch's own RuntimeErrors, or ignored)."""
    topology, _ = ethanol()
    with pytest.raises(InputError, match=r"device=gpu is not a torch device; give device=cpu or device=cuda"):
        MLPotential("painn", model=CHECKPOINT, device="gpu")
    with pytest.raises(InputError, match=r"cudaGraphs=True .* CUDA device only; this model runs on cpu"):
        MLPotential("painn", model=CHECKPOINT, device="cpu").createSystem(topology, cudaGraphs=True)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match=r"device=cuda: torch finds 0 CUDA device\(s\) here; give device=cpu"):
            MLPotential("painn", model=CHECKPOINT, device="cuda").createSystem(topology)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device(model64):
    topology, positions = ethanol()
    cpu = MLPotential("painn", model=model64, device="cpu").createSystem(topology)
    cuda = MLPotential("painn", model=model64, device="cuda").createSystem(topology)
    e_cpu, f_cpu = energy_forces(context(cpu, positions))
    e_cuda, f_cuda = energy_forces(context(cuda, positions))
    assert e_cuda == pytest.approx(e_cpu, rel=1e-10)
    np.testing.assert_allclose(f_cuda, f_cpu, rtol=0, atol=1e-6)


def test_a_known_residue_without_bonds_is_named_as_missing_conect_records():
    """Templates match residues by their bonds: an EOH residue read from a PDB without CONECT records has none,
    and the force field's EOH template then seems missing. The message says what is missing instead."""
    from openmm import app

    from painn_deploy.solvation import check_templates, forcefield

    pdb = app.PDBFile(str(RESOURCES / "ethanol.pdb"))
    topology = app.Topology()
    residue = topology.addResidue("EOH", topology.addChain())
    for atom in pdb.topology.atoms():
        topology.addAtom(atom.name, atom.element, residue)
    with pytest.raises(
        InputError, match="has a template of that name, but the residue has no bonds here: a PDB needs CONECT"
    ):
        check_templates(forcefield([], "tip3p"), topology, "no_bonds.pdb")
    check_templates(forcefield([], "tip3p"), pdb.topology, "ethanol.pdb")  # with its CONECT records: matched
