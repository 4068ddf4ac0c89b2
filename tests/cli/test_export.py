"""painn-export as a thin CLI over ExportConfig / painn_deploy.deploy.export: YAML config, --atoms, errors."""

import numpy as np

from painn_deploy.deploy import load_metadata

from ..conftest import ETHANOL_PDB


def _solvated(path):
    """ethanol (atoms 0-8) and two water molecules 0.8 nm away."""
    from painn_deploy.structures import read_pdb, write_pdb

    z, pos, _ = read_pdb(ETHANOL_PDB)
    water = np.array([[0.0, 0.0, 0.0], [0.0957, 0.0, 0.0], [-0.024, 0.0927, 0.0]])
    write_pdb(path, [*z, 8, 1, 1, 8, 1, 1], np.concatenate([pos, water + [0.8, 0, 0], water + [0, 0.8, 0]]))
    return path


def test_config_file_flags_and_ml_atoms(trained_checkpoint, tmp_path, capsys):
    from painn_deploy.cli.export import main

    pdb = _solvated(tmp_path / "solvated.pdb")
    cfg = tmp_path / "export.yaml"
    cfg.write_text(
        f"checkpoint: {trained_checkpoint}\noutput: {tmp_path / 'a.pt'}\npdb: {pdb}\natoms: 0-8\ndtype: float64\n"
    )
    assert main(["--config", str(cfg), "-o", str(tmp_path / "b.pt")]) == 0  # the flag wins
    meta = load_metadata(tmp_path / "b.pt")
    assert meta["atom_indices"] == list(range(9)) and meta["n_particles"] == 15 and meta["dtype"] == "float64"
    assert not (tmp_path / "a.pt").exists()
    assert "15 particles (9 of them the model's), float64" in capsys.readouterr().out
    argv = [str(trained_checkpoint), "-o", str(tmp_path / "c.pt"), "--pdb", str(pdb)]
    for extra, message in (
        (["--atoms", "0-8,20"], "ML atom indices [20] are outside the atoms 0 to 14 of the system"),
        (["--atoms", "0-8,8"], "the ML atom indices contain duplicates"),
        (["--atoms", "8-0"], "argument --atoms: expected 0-based indices with ranges, e.g. 0-8,12, got '8-0'"),
        (["--pair-capacity", "lots"], "argument --pair-capacity: expected a whole number, got 'lots'"),
        (["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    ):
        assert main(argv + extra) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert main([str(trained_checkpoint), "-o", str(tmp_path / "c.pt"), "--atoms", "0-8"]) == 2
    assert "give its PDB with --pdb" in capsys.readouterr().err
    cfg.write_text(f"checkpoint: {trained_checkpoint}\noutput: {tmp_path / 'a.pt'}\nneighbour_list: auto\n")
    assert main(["--config", str(cfg)]) == 2
    assert "unknown key(s) 'neighbour_list'" in capsys.readouterr().err
    assert main([]) == 2
    assert "give the checkpoint (CKPT) and the output file" in capsys.readouterr().err
    assert not (tmp_path / "c.pt").exists()


def test_an_existing_output_is_kept_and_a_too_small_pair_capacity_is_named(trained_checkpoint, tmp_path, capsys):
    from painn_deploy.cli.export import main
    from painn_deploy.structures import read_pdb, write_pdb

    out = tmp_path / "model.pt"
    out.write_bytes(b"a model the user wants to keep")
    for argv, message in (
        ([str(trained_checkpoint), "-o", str(out)], "model.pt already exists; give another -o, or --overwrite"),
        ([str(trained_checkpoint), "-o", str(tmp_path)], "is a directory; give a file name, e.g."),
        ([str(trained_checkpoint), "-o", str(trained_checkpoint), "--overwrite"], "is an input of the export"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert out.read_bytes() == b"a model the user wants to keep"
    from painn_deploy.model.checkpoint import load_checkpoint

    assert load_checkpoint(trained_checkpoint)["atomic_numbers"]  # the refused export left the checkpoint alone
    assert main([str(trained_checkpoint), "-o", str(out), "--overwrite"]) == 0
    assert load_metadata(out)["n_particles"] == 9

    z, pos, _ = read_pdb(ETHANOL_PDB)
    write_pdb(tmp_path / "box.pdb", z, pos, np.eye(3) * 1.5)
    static = [str(trained_checkpoint), "-o", str(tmp_path / "s.pt"), "--pdb", str(tmp_path / "box.pdb")]
    assert main(static + ["--neighbor-list", "static", "--pair-capacity", "3"]) == 2
    err = capsys.readouterr().err
    assert "--pair-capacity 3 is smaller than the 72 pairs of the structure itself" in err and "Traceback" not in err
    assert main(static + ["--pair-capacity", "20000"]) == 2  # (without --neighbor-list static it would be ignored)
    assert "--pair-capacity sizes the static neighbour list, but the list is auto: add --neighbor-list static" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "s.pt").exists()


def test_a_box_narrower_than_twice_the_cutoff_is_refused_in_one_line(trained_checkpoint, tmp_path, capsys):
    """A periodic PDB whose box is too small for the model: exit 2 and one line that gives the width needed and
    the fix, before anything is built (not a traceback from the model's own check)."""
    from painn_deploy.cli.export import main
    from painn_deploy.structures import read_pdb, write_pdb

    z, pos, _ = read_pdb(ETHANOL_PDB)
    pdb = tmp_path / "tight.pdb"
    write_pdb(pdb, z, pos - pos.mean(axis=0) + 0.35, box_nm=np.diag([0.709, 0.709, 0.709]))
    assert main([str(trained_checkpoint), "-o", str(tmp_path / "m.pt"), "--pdb", str(pdb)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "is 0.709 nm wide at its narrowest" in err and "less than twice the model cutoff (1.000 nm)" in err
    assert "solvate with more padding" in err and not (tmp_path / "m.pt").exists()
