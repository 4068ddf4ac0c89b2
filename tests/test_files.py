from dataclasses import replace as dataclasses_replace
from pathlib import Path

import pytest

from painn_deploy.errors import CheckpointError, InputError
from painn_deploy.files import require_file


def test_a_missing_input_file_is_named_with_where_it_was_looked_for_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.pdb").write_text("END\n")
    assert require_file("here.pdb", "structure file", "give a PDB file") == tmp_path.joinpath("here.pdb").relative_to(
        tmp_path
    )
    with pytest.raises(InputError, match=rf"structure file gone.pdb does not exist \(in {tmp_path}\); give a PDB"):
        require_file("gone.pdb", "structure file", "give a PDB file")
    with pytest.raises(CheckpointError, match=r"model .*runs is a directory, not a file; give"):
        (tmp_path / "runs").mkdir()
        require_file(tmp_path / "runs", "model", "give an exported model", CheckpointError)


def test_a_file_in_the_wrong_place_is_named_for_what_it_is(tmp_path, exported32, trained_checkpoint):
    """Messages about a file given as the wrong input say what the file is, and what to give instead."""
    import h5py
    import numpy as np

    from painn_deploy.deploy import Artefact
    from painn_deploy.files import what_file
    from painn_deploy.model.checkpoint import load_checkpoint
    from painn_deploy.resources import ETHANOL_SUBSET, STRUCTURES

    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["time"] = np.zeros(2)
    np.save(tmp_path / "a.npy", np.zeros(2))
    (tmp_path / "m.xyz").write_text("1\n\nH 0 0 0\n")
    assert what_file(ETHANOL_SUBSET) == "a NumPy .npz archive (data, not a model)"
    assert what_file(STRUCTURES["ethanol"]) == "a PDB structure"
    assert what_file(exported32) == "a model exported by painn-export"
    assert what_file(trained_checkpoint).startswith("a PyTorch file written by torch.save")
    assert what_file(tmp_path / "p.h5").startswith("an HDF5 file")
    assert what_file(tmp_path / "a.npy") == "a NumPy array (.npy)"
    assert what_file(tmp_path / "m.xyz") == "an XYZ structure file"
    assert what_file(tmp_path / "missing") == ""

    fix = r"give an exported model \(.pt, from painn-export\) or a painn-train checkpoint \(.ckpt\)"
    with pytest.raises(CheckpointError, match=rf"ethanol_gfn2xtb_subset.npz is a NumPy .npz archive .*; {fix}"):
        Artefact(ETHANOL_SUBSET)
    with pytest.raises(CheckpointError, match=rf"ethanol.pdb is a PDB structure, not an exported model; {fix}"):
        Artefact(STRUCTURES["ethanol"])
    with pytest.raises(  # (an artefact, not "or a checkpoint": Artefact reads exported models only)
        CheckpointError, match=r"is a PyTorch file written by torch.save .*not an exported model: export it with "
    ):
        Artefact(trained_checkpoint)
    with pytest.raises(CheckpointError, match=r"is a model exported by painn-export, not a painn-train checkpoint "
                       r"\(already exported: use it as it is\); give a checkpoint that painn-train wrote"):  # fmt: skip
        load_checkpoint(exported32)
    with pytest.raises(CheckpointError, match=r"ethanol.pdb is a PDB structure, not a painn-train checkpoint"):
        load_checkpoint(STRUCTURES["ethanol"])


def test_a_checkpoint_is_recognised_by_its_content_whatever_its_name(tmp_path, exported32, trained_checkpoint):
    """One rule for "checkpoint or exported model" (painn-simulate, painn-harmonic, OpenMM-ML): a checkpoint
    saved as model.pt is still a checkpoint, and is exported for the structure."""
    import shutil

    from painn_deploy.files import is_checkpoint
    from painn_deploy.md import SimulationConfig
    from painn_deploy.md.build import resolve_model
    from painn_deploy.resources import STRUCTURES
    from painn_deploy.structures import read_pdb

    renamed = tmp_path / "model.pt"
    shutil.copy(trained_checkpoint, renamed)
    assert is_checkpoint(trained_checkpoint) and is_checkpoint(renamed) and not is_checkpoint(exported32)
    z, _, _ = read_pdb(STRUCTURES["ethanol"])
    cfg = SimulationConfig(structure=str(STRUCTURES["ethanol"]), model=str(renamed), output=str(tmp_path / "run"))
    assert resolve_model(cfg, tmp_path / "run", z) == tmp_path / "run" / "model.pt"
    assert resolve_model(dataclasses_replace(cfg, model=str(exported32)), tmp_path / "run", z) == exported32
    truncated = tmp_path / "best.ckpt"  # a damaged checkpoint is named as one, with the fix
    truncated.write_bytes(Path(trained_checkpoint).read_bytes()[:5000])
    with pytest.raises(
        CheckpointError, match="best.ckpt .*the file is truncated or not a checkpoint. Use the previous"
    ):
        resolve_model(dataclasses_replace(cfg, model=str(truncated)), tmp_path / "run", z)
