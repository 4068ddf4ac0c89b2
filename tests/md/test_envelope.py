"""The training data's envelope: stored by painn-train in the checkpoint and by the export in the artefact,
checked on the starting structure and at every log interval of a run: a warning as soon as a configuration leaves
the distances of the training data (which atoms, by how much), a stop beyond --envelope-margin."""

import re
import warnings

import numpy as np
import pytest

from painn_deploy.cli.simulate import main
from painn_deploy.deploy import Artefact, export
from painn_deploy.deploy import envelope as envelope_module
from painn_deploy.deploy.envelope import EnvelopeCheck, training_envelope
from painn_deploy.errors import InputError, SimulationInstabilityError, SimulationWarning
from painn_deploy.md import SimulationConfig, run_simulation
from painn_deploy.md.runner import MDRun
from painn_deploy.model.checkpoint import load_checkpoint

from ..conftest import ETHANOL_NPZ, ETHANOL_PDB, water_like_box
from .test_runner import config, pdb_positions_nm, read_log, write_pdb


def stretched(tmp_path, length_angstrom: float):
    """ethanol.pdb with the C1-H1 bond (atoms 1 and 4) stretched to ``length_angstrom``."""
    pos = pdb_positions_nm()
    bond = pos[3] - pos[0]
    pos[3] = pos[0] + bond / np.linalg.norm(bond) * length_angstrom / 10.0
    return write_pdb(tmp_path / f"stretched{length_angstrom}.pdb", pos)


# ---- the envelope itself --------------------------------------------------------------------------------------
def test_training_envelope_of_known_frames():
    """A bent O-H-H triangle (O at the origin): shortest pairs, nearest neighbours per element, the cutoff rule."""
    z = [8, 1, 1]
    frames = np.array(
        [
            [[0, 0, 0], [0.9, 0, 0], [0, 1.0, 0]],
            [[0, 0, 0], [1.1, 0, 0], [0, 0.95, 0]],
        ]
    )
    env = training_envelope(z, frames, cutoff_angstrom=5.0)
    assert env["n_frames"] == 2 and env["units"] == "Angstrom"
    assert env["shortest_angstrom"] == {"H-O": 0.9, "H-H": pytest.approx(np.hypot(0.9, 1.0), abs=1e-4)}
    nearest = env["longest_nearest_angstrom"]
    assert nearest["H"] == {"O": 1.1, "H": pytest.approx(np.hypot(1.1, 0.95), abs=1e-4), "any": 1.1}
    assert nearest["O"] == {"H": 0.95, "any": 0.95}  # O's nearest H: 0.9 A, then 0.95 A
    # a nearest neighbour beyond the cutoff in some frame: no bound (None); a pair never within it: no entry
    far = training_envelope(z, frames * np.array([1, 1, 1]) + np.array([[0, 0, 0], [0, 0, 0], [0, 5.0, 0]]), 5.0)
    assert far["longest_nearest_angstrom"]["H"]["H"] is None and "H-H" not in far["shortest_angstrom"]

    check = EnvelopeCheck(env, z)
    assert check.excursions(frames) == []  # the data itself is inside
    moved = frames[:1].copy()
    moved[0, 1] = [1.5, 0, 0]  # H1 0.4 A beyond the longest O-H
    worst = check.excursions(moved)[0]
    assert (worst.kind, worst.key, worst.atoms) == ("longest", "H->any", (1, 0))
    assert worst.distance == pytest.approx(1.5) and worst.beyond == pytest.approx(0.4)
    moved[0, 1] = [0.7, 0, 0]  # now too close
    short = [e for e in check.excursions(moved) if e.kind == "shortest"]
    assert short[0].key == "H-O" and short[0].beyond == pytest.approx(0.2)


def test_envelope_check_of_large_and_periodic_systems_matches_the_dense_one(monkeypatch):
    """Above DENSE_MAX_ATOMS one frame at a time through a k-d tree (periodic: minimum image), and blocks of rows
    for triclinic boxes: the same excursions as the all-pairs computation."""
    d = np.load(ETHANOL_NPZ)
    env = training_envelope(d["nuclear_charges"], d["coords"][:20], 5.0)
    z, pos_nm, box_nm = water_like_box(n_side=3, spacing_nm=0.5)
    rng = np.random.default_rng(1)
    frames = (pos_nm + rng.normal(scale=0.005, size=(2,) + pos_nm.shape)) * 10.0
    box = box_nm * 10.0
    check = EnvelopeCheck(env, z)

    def summary(excursions):
        return [(e.kind, e.key, e.atoms, e.frame, round(e.distance, 6)) for e in excursions]

    dense = check.excursions(frames, box)
    assert len(dense) >= 3
    monkeypatch.setattr(envelope_module, "DENSE_MAX_ATOMS", 8)
    assert summary(check.excursions(frames, box)) == summary(dense)  # k-d tree, periodic
    triclinic = box.copy()
    triclinic[1, 0] = 1e-4  # not orthorhombic: blocks of rows with the minimum image
    monkeypatch.setattr(envelope_module, "CHUNK_ELEMENTS", 2000)
    assert [e[:4] for e in summary(check.excursions(frames, triclinic))] == [e[:4] for e in summary(dense)]


def test_export_records_the_envelope_painn_train_stored(exported32, trained_checkpoint, tmp_path, monkeypatch, capsys):
    """painn-train stores the envelope of its training frames in the checkpoint, and the export copies it: no
    data file is needed to export (it is never read).  A checkpoint without one gives a model without the check,
    with a warning that says so."""
    import torch

    from painn_deploy import data as data_io
    from painn_deploy.cli.export import main

    envelope = Artefact(exported32).metadata["training_envelope"]
    assert envelope["source"] == "training data" and envelope["n_frames"] == 40
    assert str(ETHANOL_NPZ.resolve()) in envelope["frames"] and envelope["cutoff_angstrom"] == 5.0
    assert set(envelope["shortest_angstrom"]) == {"C-C", "C-H", "C-O", "H-H", "H-O"}
    assert 1.0 < envelope["longest_nearest_angstrom"]["H"]["any"] < 1.4
    record = load_checkpoint(trained_checkpoint)
    split = record["split"]["train"]
    frames = data_io.load(ETHANOL_NPZ).positions[split]
    expected = training_envelope(record["atomic_numbers"], frames, 5.0)
    assert envelope["shortest_angstrom"] == expected["shortest_angstrom"]
    assert envelope["longest_nearest_angstrom"] == expected["longest_nearest_angstrom"]

    def no_data(*args, **kwargs):
        raise AssertionError("the export read a data file")

    monkeypatch.setattr(data_io, "load", no_data)
    monkeypatch.chdir(tmp_path)
    meta = export(trained_checkpoint, tmp_path / "m.pt")
    assert meta["training_envelope"] == envelope
    without = tmp_path / "old.ckpt"
    ckpt = torch.load(trained_checkpoint, weights_only=False)
    del ckpt["painn"]["training_envelope"]
    torch.save(ckpt, without)
    assert main([str(without), "-o", str(tmp_path / "old.pt")]) == 0
    err = capsys.readouterr().err
    assert "the checkpoint stores no training envelope" in err and "cannot warn when a run" in err
    assert Artefact(tmp_path / "old.pt").metadata["training_envelope"]["source"] is None


# ---- in a run ---------------------------------------------------------------------------------------------------
def test_stretched_bond_in_the_starting_structure(exported32, tmp_path):
    """C1-H1 stretched to 1.8 A (the tiny model's data: hydrogens within 1.18 A of an atom) is refused before
    anything is written; 1.3 A (within the 0.3 A margin) runs with a warning naming the atoms."""
    bound = Artefact(exported32).metadata["training_envelope"]["longest_nearest_angstrom"]["H"]["any"]
    out = tmp_path / "far"
    with pytest.raises(InputError) as info:
        run_simulation(
            config(exported32, out, structure=str(stretched(tmp_path, 1.8)), steps=10, envelope_margin="0.3")
        )
    message = str(info.value)
    beyond = float(
        re.search(r"atom 4 \(H\) is 1\.800 Angstrom from its nearest atom \(atom 1, C\), (\S+) Angstrom", message)[1]
    )
    assert beyond == pytest.approx(1.8 - bound, abs=2e-3)
    assert f"further than any H atom's nearest atom in the training data ({bound:.3f} Angstrom)" in message
    assert "beyond the margin of 0.3 Angstrom (--envelope-margin)" in message and "--envelope-margin inf" in message
    assert not out.exists()

    with pytest.warns(SimulationWarning, match=r"the starting structure is outside the model's training data: atom 4 "
                      r"\(H\) is 1\.300 Angstrom from its nearest atom \(atom 1, C\)"):  # fmt: skip
        run_simulation(config(exported32, tmp_path / "near", structure=str(stretched(tmp_path, 1.3)), steps=0))
    # a refused option comes before any warning about the structure
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match="OpenMM platform 'Nowhere' is not available"):
            run_simulation(config(exported32, tmp_path / "refused", structure=str(stretched(tmp_path, 1.3)), steps=0,
                                  platform="Nowhere"))  # fmt: skip
    assert not [w for w in caught if issubclass(w.category, SimulationWarning)]
    # a percentage margin: 1.8 A is within 60% of the bound
    with pytest.warns(SimulationWarning, match="starting structure is outside"):
        run_simulation(config(exported32, tmp_path / "pct", structure=str(stretched(tmp_path, 1.8)), steps=0,
                              envelope_margin="60%"))  # fmt: skip


def test_only_bonds_stop_a_run(exported64, tmp_path):
    """Beyond the margin, an atom's nearest atom of an element it was always bonded to in the data stops the run;
    its nearest atom of an element it was not bonded to (a conformation: the carboxyl H and the next H) only
    warns."""
    from painn_deploy.deploy.envelope import Excursion

    assert Excursion("longest", "H->C", (0, 1), 1.6, 1.2, 0).bonded  # C-H: 1.2 <= 1.45 (0.76 + 0.31) Angstrom
    assert Excursion("longest", "C->C", (0, 1), 2.7, 1.85, 0).bonded  # hot data's C-C, pulled apart
    assert not Excursion("longest", "C->C", (0, 1), 2.9, 2.5, 0).bonded  # a 1-3 neighbour (C-O-C)
    assert not Excursion("longest", "H->H", (0, 1), 4.4, 4.0, 0).bonded
    assert Excursion("longest", "H->any", (0, 1), 4.4, 4.0, 0).bonded and Excursion("shortest", "H-H", (0, 1),
                                                                                     0.5, 0.9, 0).bonded  # fmt: skip

    def narrowed(nearest, output):
        narrow = dict(Artefact(exported64).metadata["training_envelope"])
        narrow["longest_nearest_angstrom"], narrow["shortest_angstrom"] = {"H": nearest}, {}
        run = MDRun(config(exported64, tmp_path / output, steps=20, log_interval=5, envelope_margin="0.05"))
        run.safety.envelope = EnvelopeCheck(narrow, run.atomic_numbers)
        return run

    with pytest.warns(SimulationWarning, match=r"step 5: outside .* from its nearest H atom .*; not a bond in the "
                      r"training data, so the run goes on"):  # fmt: skip
        assert narrowed({"H": 1.0}, "conformation").run().steps == 20
    with pytest.raises(SimulationInstabilityError, match=r"stopped at step 5 .* from its nearest C atom"):
        narrowed({"C": 1.0}, "bond").run()


@pytest.mark.parametrize("integrator", ["batched", "openmm"])
def test_warnings_name_the_bead_with_either_ring_polymer_integrator(exported64, tmp_path, integrator):
    narrow = dict(Artefact(exported64).metadata["training_envelope"])
    narrow["longest_nearest_angstrom"] = {"H": {"any": 1.0}}  # every C-H bond is beyond it
    narrow["shortest_angstrom"] = {}
    run = MDRun(config(exported64, tmp_path / integrator, steps=2, log_interval=2, beads=4,
                       rpmd_integrator=integrator, temperature_K=300.0))  # fmt: skip
    run.safety.envelope = EnvelopeCheck(narrow, run.atomic_numbers)
    with pytest.warns(SimulationWarning, match=r"step 2: outside the model's training data: atom \d \(H\) \(bead \d\)"):
        run.run()


def test_run_warns_when_it_leaves_the_data_and_stops_beyond_the_margin(exported64, tmp_path):
    """The tiny model's own envelope narrowed to C-H bonds of at most 1.10 A: a 300 K run warns at the first log
    step beyond it and stops (keeping the last checkpoint) once a hydrogen is 0.05 A further out."""
    narrow = dict(Artefact(exported64).metadata["training_envelope"])
    narrow["longest_nearest_angstrom"] = {"H": {"any": 1.10}}
    narrow["shortest_angstrom"] = {}

    def narrowed(margin, output):
        run = MDRun(config(exported64, tmp_path / output, steps=400, log_interval=5, checkpoint_interval=5,
                           temperature_K=300.0, envelope_margin=margin))  # fmt: skip
        run.safety.envelope = EnvelopeCheck(narrow, run.atomic_numbers)
        return run

    with pytest.warns(SimulationWarning) as caught:
        with pytest.raises(SimulationInstabilityError) as info:
            narrowed("0.05", "stopped").run()
    message = str(info.value)
    assert "left the model's training data: atom" in message and "(H) is 1.1" in message
    assert "beyond the margin of 0.05 Angstrom (--envelope-margin)" in message and "raise --envelope-margin" in message
    warned = [str(w.message) for w in caught if "outside the model's training data" in str(w.message)]
    assert warned and "from its nearest atom (atom" in warned[0] and "the run stops 0.05 Angstrom beyond" in warned[0]
    stopped_at = int(message.split("stopped at step ")[1].split()[0])
    first_warning = int(warned[0].split("step ")[1].split(":")[0])
    assert first_warning < stopped_at
    from ..conftest import checkpoint_meta

    assert checkpoint_meta(tmp_path / "stopped" / "checkpoint.chk")["step"] == stopped_at - 5

    # inf: warnings only, at most ten (a long run flooded its log), and the summary says how often and how far
    with pytest.warns(SimulationWarning) as caught:
        result = narrowed("inf", "warned").run()
    assert (
        result.steps == 400 and "checked configurations (every --log-interval steps) were outside" in result.summary()
    )
    warned = [str(w.message) for w in caught if "outside the model's training data" in str(w.message)]
    assert len(warned) == 10 and "after 10 such warnings, further ones are counted in the run's summary" in warned[-1]
    assert int(result.summary().split(" of ")[0].split()[-1]) > 10


def test_equilibration_is_checked_and_shows_progress(exported64, tmp_path, capsys):
    """--equilibration-steps go in blocks of --log-interval, each checked as a log step is: a stop there says that
    no checkpoint was written; a good equilibration prints its progress and leaves the outputs to the run."""
    narrow = dict(Artefact(exported64).metadata["training_envelope"])
    narrow["longest_nearest_angstrom"] = {"H": {"any": 1.0}}  # every C-H bond is beyond it: the first check stops
    narrow["shortest_angstrom"] = {}
    run = MDRun(config(exported64, tmp_path / "stopped", steps=20, equilibration_steps=20, log_interval=5,
                       envelope_margin="0.01"))  # fmt: skip
    run.safety.envelope = EnvelopeCheck(narrow, run.atomic_numbers)
    with pytest.raises(SimulationInstabilityError) as info:
        run.run()
    message = str(info.value)
    assert message.startswith("simulation stopped at equilibration step 5 (log): the configuration left the model")
    assert "No checkpoint was written (the run stopped before its first)" in message
    assert not (tmp_path / "stopped" / "checkpoint.chk").exists()

    # Ctrl-C or SIGTERM during equilibration: stopped after the current block, nothing to resume
    import signal

    from painn_deploy.errors import RunInterrupted

    run = MDRun(config(exported64, tmp_path / "asked", steps=20, equilibration_steps=20, log_interval=5))
    with pytest.raises(RunInterrupted, match=r"stopped by SIGTERM at equilibration step 5 of 20, before the run's "
                       r"first checkpoint: there is nothing to resume"):  # fmt: skip
        run._set_initial_state()
        run._equilibrate([signal.SIGTERM])

    result = run_simulation(config(exported64, tmp_path / "good", steps=10, equilibration_steps=20, log_interval=5,
                                   progress="lines"))  # fmt: skip
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in printed[1:5]] == [["equilibration", "step"]] * 4
    assert printed[4].startswith("equilibration step 20/20 (100.0%)") and printed[5].startswith("step 5/10")
    assert result.steps == 10 and read_log(tmp_path / "good" / "log.csv")["step"].tolist() == [5, 10]


def test_cli_exit_status_separates_failed_runs_from_bad_input(exported32, tmp_path, capsys):
    base = [str(ETHANOL_PDB), "--model", str(exported32), "--steps", "40", "--platform", "CPU", "--log-interval",
            "10", "--progress", "none", "--envelope-margin", "inf"]  # fmt: skip
    assert main(base + ["--output", str(tmp_path / "a"), "--max-force", "1"]) == 1  # the run failed
    assert "simulation stopped at step 10" in capsys.readouterr().err
    assert main(base + ["--output", str(tmp_path / "b"), "--envelope-margin", "-1"]) == 2  # bad input
    assert "--envelope-margin '-1' is not a distance" in capsys.readouterr().err
    with pytest.raises(InputError, match="--envelope-margin"):
        SimulationConfig(str(ETHANOL_PDB), envelope_margin="20 %%")
