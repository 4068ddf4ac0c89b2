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
