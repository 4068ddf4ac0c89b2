"""Checkpoints and the output directory: damaged checkpoints refused (the run's files untouched), the previous
checkpoint kept and resumable bit for bit, a previous run never overwritten silently (--overwrite), and a run's
missing files named on --resume.  Short runs of the session's tiny float64 model at 150 K, one thread (they
leave the tiny model's training distances at once: warnings only, see test_runner.config)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from painn_deploy.cli.simulate import main
from painn_deploy.errors import CheckpointError, InputError
from painn_deploy.md import run_simulation
from painn_deploy.md.rundir import CHECKPOINT_FORMAT, decode_checkpoint, encode_checkpoint
from painn_deploy.resources import BUNDLED_MODEL

from ..conftest import ETHANOL_PDB, checkpoint_meta
from .test_runner import config, load_traj, read_log_text, read_properties

pytestmark = pytest.mark.filterwarnings("ignore::painn_deploy.errors.SimulationWarning")
RECORDED = dict(
    temperature_K=150.0, record_dipole=True, record_interval=2, trajectory_interval=10, log_interval=25,
    checkpoint_interval=50, seed=5,
)  # fmt: skip


def snapshot(folder: Path) -> dict:
    """Every file of a folder (hidden ones too) with its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def cli_args(model, output, steps, *extra):
    return [
        str(ETHANOL_PDB), "--model", str(model), "--output", str(output), "--steps", str(steps), "--platform", "CPU",
        "--temperature", "150", "--record-dipole", "--record-interval", "2", "--trajectory-interval", "10",
        "--log-interval", "25", "--checkpoint-interval", "50", "--seed", "5", "--progress", "none",
        "--envelope-margin", "inf", *extra,
    ]  # fmt: skip


def test_damaged_checkpoint_is_refused_and_the_previous_one_resumes_bit_for_bit(
    exported64, tmp_path, capsys, monkeypatch
):
    """Regression: a checkpoint truncated to half its size was resumed silently (exit 0, garbage state).  The
    previous one, named as the hint names it, is the run's own even where the current directory holds a file of
    that name (another run's state was taken from there)."""
    reference, damaged = tmp_path / "reference", tmp_path / "damaged"
    run_simulation(config(exported64, reference, steps=200, **RECORDED))
    run_simulation(config(exported64, damaged, steps=150, **RECORDED))
    assert checkpoint_meta(damaged / "checkpoint.chk")["step"] == 150
    assert checkpoint_meta(damaged / "checkpoint.prev.chk")["step"] == 100
    chk = damaged / "checkpoint.chk"
    os.truncate(chk, chk.stat().st_size // 2)
    before = snapshot(damaged)

    with pytest.raises(CheckpointError) as info:
        run_simulation(config(exported64, damaged, steps=200, resume=True, **RECORDED))
    message = str(info.value)
    assert "checkpoint.chk is damaged and cannot be resumed" in message and "truncated" in message
    assert "checkpoint.prev.chk (step 100) is intact: resume from it with --resume-from checkpoint.prev.chk" in message
    assert snapshot(damaged) == before  # no file changed, none added or removed
    # the command line: exit status 2, the message, no traceback
    assert main(cli_args(exported64, damaged, 200, "--resume")) == 2
    err = capsys.readouterr().err
    assert "painn-simulate: error: --resume:" in err and "--resume-from checkpoint.prev.chk" in err
    assert "Traceback" not in err
    assert snapshot(damaged) == before

    # resuming from the previous checkpoint continues exactly as the uninterrupted run
    monkeypatch.chdir(reference)  # (where another run's checkpoint.prev.chk, of step 150, lies)
    run_simulation(config(exported64, damaged, steps=200, resume_from="checkpoint.prev.chk", **RECORDED))
    assert read_log_text(damaged / "log.csv") == read_log_text(reference / "log.csv")
    assert np.array_equal(load_traj(damaged).xyz, load_traj(reference).xyz)
    a, b = read_properties(damaged / "properties.h5"), read_properties(reference / "properties.h5")
    assert a["time"].shape == (100,)
    for name in ("time", "dipole"):
        assert np.array_equal(a[name], b[name]), name
    for name in ("checkpoint.chk", "checkpoint.prev.chk"):
        assert (damaged / name).read_bytes() == (reference / name).read_bytes(), name


def test_checkpoint_verification_names_the_damage():
    meta = {"step": 7, "trajectory_frames": 1, "trajectory_bytes": 10, "property_frames": 0, "model_sha256": "ab"}
    blob = encode_checkpoint(meta, b"openmm state bytes")
    header, state = decode_checkpoint(blob)
    assert state == b"openmm state bytes" and header["step"] == 7 and header["checkpoint_format"] == CHECKPOINT_FORMAT

    cases = {
        "truncated": blob[: len(blob) // 2],
        "extended": blob + b"\0",
        "flipped": blob[:-40] + bytes([blob[-40] ^ 1]) + blob[-39:],  # a bit of the state, same length
        "tiny": blob[:20],
        # the format before checksums: [length][header][state], no trailer
        "old format": len(json.dumps(meta)).to_bytes(8, "little") + json.dumps(meta).encode() + b"x" * 40,
    }
    patterns = {
        "truncated": "truncated",
        "extended": "truncated or extended",
        "flipped": "SHA-256 checksum does not match",
        "tiny": "too short for a checkpoint",
        "old format": f"not a checkpoint of format {CHECKPOINT_FORMAT}",
    }
    for name, damaged in cases.items():
        with pytest.raises(CheckpointError, match=patterns[name]):
            decode_checkpoint(damaged)
    # a header entry of the wrong type, with a valid checksum: refused too
    bad = encode_checkpoint(dict(meta, step=-1), b"state")
    with pytest.raises(CheckpointError, match="'step' is missing or invalid"):
        decode_checkpoint(bad)
    body = bad[:-32]
    assert hashlib.sha256(body).digest() == bad[-32:]


def test_resume_names_missing_files_and_changes_nothing(exported64, exported32, tmp_path, capsys):
    """Regression: --resume with run.json deleted ended in a FileNotFoundError traceback."""
    out = tmp_path / "run"
    run_simulation(config(exported64, out, steps=50, **RECORDED))
    (out / "run.json").rename(tmp_path / "run.json")
    before = snapshot(out)
    with pytest.raises(InputError, match=r"run\.json is missing; it records the options .* --overwrite"):
        run_simulation(config(exported64, out, steps=100, resume=True, **RECORDED))
    assert main(cli_args(exported64, out, 100, "--resume")) == 2
    err = capsys.readouterr().err
    assert "run.json is missing" in err and "Traceback" not in err
    assert snapshot(out) == before
    (tmp_path / "run.json").rename(out / "run.json")
    # another model: the run's own named (it said "another model; use the same --model")
    with pytest.raises(InputError, match=r"was written with another model \(.*64.*\.pt, sha256 [0-9a-f]{12}\.\.\.\) "
                       r"than --model .*32.*\.pt \(sha256 [0-9a-f]{12}\.\.\.\); resume with the run's model, or leave "
                       r"--model out"):  # fmt: skip
        run_simulation(config(exported32, out, steps=100, resume=True, **RECORDED))

    # a trajectory shorter than the checkpoint says (or gone): named, nothing cut or appended
    dcd = out / "trajectory.dcd"
    dcd.rename(tmp_path / "trajectory.dcd")
    before = snapshot(out)
    with pytest.raises(InputError, match=r"trajectory\.dcd is missing \(the checkpoint counts 5 frames\)"):
        run_simulation(config(exported64, out, steps=100, resume=True, **RECORDED))
    assert snapshot(out) == before
    (tmp_path / "trajectory.dcd").rename(dcd)
    with h5py.File(out / "properties.h5", "a") as f:
        for name in ("time", "dipole"):
            f[name].resize(10, axis=0)
    before = snapshot(out)
    with pytest.raises(InputError, match=r"properties\.h5 holds 10 frames, fewer than the checkpoint's 25"):
        run_simulation(config(exported64, out, steps=100, resume=True, **RECORDED))
    assert snapshot(out) == before
    with pytest.raises(InputError, match="there is no checkpoint"):
        run_simulation(config(exported64, out, steps=100, resume_from="nonexistent.chk", **RECORDED))


def test_a_previous_run_is_not_overwritten_without_overwrite(exported64, tmp_path, capsys):
    """Regression: a new run into a finished run's folder overwrote it silently and left its properties.h5
    behind (which painn-spectrum then analysed)."""
    out = tmp_path / "run"
    run_simulation(config(exported64, out, steps=50, **RECORDED))  # records: properties.h5
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    plain = dict(RECORDED, record_dipole=False)
    with pytest.raises(
        InputError, match=r"already holds a previous run .*--resume to continue that run, or --overwrite"
    ):
        run_simulation(config(exported64, out, steps=30, **plain))
    args = cli_args(exported64, out, 30)
    assert main([a for a in args if a != "--record-dipole"]) == 2
    assert "already holds a previous run" in capsys.readouterr().err
    assert snapshot(out) == before

    # --overwrite: the old run's files are deleted first, nothing stale remains; other files are left alone
    result = run_simulation(config(exported64, out, steps=30, overwrite=True, **plain))
    assert result.steps == 30
    names = {p.name for p in out.iterdir()}
    assert names == {
        "run.json",
        "log.csv",
        "trajectory.dcd",
        "checkpoint.chk",
        "checkpoint.prev.chk",
        "final.pdb",
        "notes.txt",
    }
    assert checkpoint_meta(out / "checkpoint.chk")["step"] == 30
    assert checkpoint_meta(out / "checkpoint.chk")["property_frames"] == 0
    assert [r[0] for r in read_log_text(out / "log.csv")] == ["25", "30"]
    assert json.loads((out / "run.json").read_text())["config"]["steps"] == 30
    assert (out / "notes.txt").read_text() == "mine"

    # a folder with other files only is refused too (they could be anything)
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.pdb").write_text("")
    with pytest.raises(
        InputError, match=r"already holds other files \(a\.pdb\); give a new --output or an empty folder"
    ):
        run_simulation(config(exported64, other, steps=10))
    with pytest.raises(InputError, match="give one of them"):
        config(exported64, out, steps=10, resume=True, overwrite=True)


def test_a_log_with_other_columns_is_resumed_with_the_current_ones(tmp_path):
    """A log written by another version (here with a column classical runs no longer have) keeps its rows up
    to the checkpoint, in the current columns, and is never left truncated."""
    from painn_deploy.md.outputs import LOG_COLUMNS, CsvLog

    old = ("step", "time_ps", "potential_kj_per_mol", "kinetic_kj_per_mol", "total_kj_per_mol", "temperature_K",
           "quantum_kinetic_kj_per_mol", "speed_ns_per_day")  # fmt: skip
    rows = [[str(step), "0.05", "-1.0", "2.0", "1.0", "300.0", "2.0", "30.0"] for step in (100, 200)]
    path = tmp_path / "log.csv"
    path.write_text("\n".join(",".join(r) for r in [list(old), *rows]) + "\n")
    log = CsvLog(path, LOG_COLUMNS, resume_step=100)
    log.close()
    lines = path.read_text().splitlines()
    assert lines == [",".join(LOG_COLUMNS), "100,0.05,-1.0,2.0,1.0,300.0,30.0"]
    # a row cut short by a killed process is dropped, not kept as a broken row
    for cut in ("125,0.0625,-2", "125,0.0625,-2.0,2.0,1.0,300.0,3"):  # (in a field, or in the last one)
        path.write_text("\n".join([",".join(LOG_COLUMNS), "100,0.05,-1.0,2.0,1.0,300.0,30.0", cut]))
        CsvLog(path, LOG_COLUMNS, resume_step=200).close()
        assert path.read_text().splitlines() == [",".join(LOG_COLUMNS), "100,0.05,-1.0,2.0,1.0,300.0,30.0"]


def test_a_log_missing_rows_before_the_checkpoint_is_named_on_resume(tmp_path):
    """A log.csv cut short, replaced or removed before --resume has fewer rows than the checkpoint counted: the run
    says so (and goes on); a log that holds every row up to the checkpoint is resumed silently, whatever the
    log interval was (here rows every 100 steps, then 10)."""
    import warnings

    from painn_deploy.errors import SimulationWarning
    from painn_deploy.md.outputs import LOG_COLUMNS, CsvLog

    path = tmp_path / "log.csv"

    def resume(steps, resume_step, expected_rows):
        path.write_text(",".join(LOG_COLUMNS) + "\n" + "".join(f"{s},0,0,0,0,300,30\n" for s in steps))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            CsvLog(path, LOG_COLUMNS, resume_step, expected_rows).close()
        return " ".join(str(w.message) for w in caught if issubclass(w.category, SimulationWarning))

    assert resume((100, 200, 210, 220), 225, 4) == "" and resume((100,), 150, 1) == ""
    assert resume((100,), 150, None) == ""  # (a checkpoint that does not count its rows)
    message = resume((25, 50), 100, 4)
    assert message.startswith("log.csv holds rows up to step 50, but the checkpoint at step 100 counted 4 rows: the "
                              "rows in between are lost") and "adds its rows after step 50" in message  # fmt: skip
    assert [line.split(",")[0] for line in path.read_text().splitlines()[1:]] == ["25", "50"]
    assert resume((), 100, 4).startswith("log.csv holds no rows, but the checkpoint at step 100 counted 4 rows")
    path.unlink()
    with pytest.warns(SimulationWarning, match="log.csv is missing, but the checkpoint at step 100 counted 4 rows"):
        CsvLog(path, LOG_COLUMNS, 100, 4).close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_with_a_checkpoint_that_resumes(tmp_path, signum):
    """Ctrl-C, or a batch scheduler's SIGTERM, finishes the current block of steps, writes a checkpoint there
    and exits 130 with one line; --resume then completes the run as if uninterrupted."""
    model = BUNDLED_MODEL  # (stable however far a loaded host gets before the signal lands)
    out, reference = tmp_path / "stopped", tmp_path / "reference"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # a shell's background job starts with Ctrl-C ignored, which painn-simulate keeps: the child starts as from a
    # terminal, whatever started pytest
    proc = subprocess.Popen([sys.executable, "-m", "painn_deploy.cli.simulate", *cli_args(model, out, 100_000)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        log = out / "log.csv"
        if log.is_file() and len(log.read_text().splitlines()) > 3:  # past the first checkpoint (step 50)
            break
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 128 + signum, err[-2000:]  # 130 for Ctrl-C, 143 for SIGTERM, as shells report them
    assert "Traceback" not in err and f"stopped by {signal.Signals(signum).name} at step" in err
    stopped_at = int(err.split(" at step ")[1].split()[0])
    assert 50 < stopped_at < 100_000 and checkpoint_meta(out / "checkpoint.chk")["step"] == stopped_at
    steps = stopped_at + 60
    assert main(["--resume", "-o", str(out), "--steps", str(steps)]) == 0  # (the other options from its run.json)
    record = json.loads((out / "run.json").read_text())  # the continuation recorded; the start's options kept
    assert record["config"]["steps"] == 100_000 and len(record["resumed"]) == 1
    assert record["resumed"][0]["from_step"] == stopped_at and record["resumed"][0]["steps"] == steps
    assert main(["--resume", "-o", str(tmp_path / "elsewhere")]) == 2  # (no run.json there: named)
    assert main(cli_args(model, reference, steps)) == 0
    assert read_log_text(out / "log.csv") == read_log_text(reference / "log.csv")
    assert np.array_equal(
        read_properties(out / "properties.h5")["dipole"], read_properties(reference / "properties.h5")["dipole"]
    )


def test_a_resume_with_another_model_changes_nothing_and_names_the_way_on(trained_checkpoint, exported64, tmp_path,
                                                                          monkeypatch):  # fmt: skip
    """A run started from a checkpoint keeps its own export: a resume with another checkpoint is refused before
    anything is exported (the run's model.pt was overwritten, and no export is bit for bit the one before, so the run
    could never be resumed again); a run on the bundled model that a newer painn-deploy replaced says so."""
    from painn_deploy.md import build
    from painn_deploy.resources import BUNDLED_CHECKPOINT

    out = tmp_path / "from_checkpoint"
    run_simulation(config(trained_checkpoint, out, steps=50, **RECORDED))
    model_pt = (out / "model.pt").read_bytes()
    with pytest.raises(InputError, match=r"--resume: the run's model .*model.pt was exported from another checkpoint "
                       r"than .*ethanol_painn.ckpt \(sha256 [0-9a-f]{12}\.\.\.\): resume with the checkpoint the run "
                       r"started with, or leave --model out"):  # fmt: skip
        run_simulation(config(BUNDLED_CHECKPOINT, out, steps=100, resume=True, **RECORDED))
    assert (out / "model.pt").read_bytes() == model_pt
    # the run's export gone: refused, nothing exported in its place (a new export could never resume the run)
    (out / "model.pt").rename(tmp_path / "kept.pt")
    with pytest.raises(InputError, match=r"the run's own export of it, .*model.pt, is not there"):
        run_simulation(config(trained_checkpoint, out, steps=100, resume=True, **RECORDED))
    assert not (out / "model.pt").exists()
    (tmp_path / "kept.pt").rename(out / "model.pt")
    assert run_simulation(config(trained_checkpoint, out, steps=100, resume=True, **RECORDED)).steps == 100
    # a run started with an exported model, resumed with a checkpoint: the run's model named
    other = tmp_path / "from_artefact"
    run_simulation(config(exported64, other, steps=50, **RECORDED))
    with pytest.raises(InputError, match=r"the run started with the model .*model64.pt; resume with it"):
        run_simulation(config(trained_checkpoint, other, steps=100, resume=True, **RECORDED))
    assert not (other / "model.pt").exists()

    from dataclasses import replace

    bundled = tmp_path / "bundled"
    run_simulation(replace(config(BUNDLED_MODEL, bundled, steps=50, **RECORDED), model=None))
    monkeypatch.setattr(build, "BUNDLED_MODEL", exported64)  # (another export of an ethanol model, as a new release)
    with pytest.raises(InputError, match=r"written with another version of the bundled model \(sha256 [0-9a-f]{12}"
                       r"\.\.\.; this painn-deploy's is [0-9a-f]{12}\.\.\.\): a run cannot continue with another "
                       r"model\. Start it again"):  # fmt: skip
        run_simulation(replace(config(BUNDLED_MODEL, bundled, steps=100, resume=True, **RECORDED), model=None))


def test_resume_from_another_directory_finds_the_runs_files(exported64, tmp_path, monkeypatch):
    """painn-simulate --resume -o DIR from another directory: the structure and model the run named by relative
    paths are found in the directory it started in (run.json records it), and are not taken for changed options."""
    import shutil

    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir(), elsewhere.mkdir()
    shutil.copy(ETHANOL_PDB, start / "eth.pdb")
    shutil.copy(exported64, start / "model.pt")
    monkeypatch.chdir(start)
    assert main(["eth.pdb", "--model", "model.pt", "-o", "run", "--steps", "20", "--log-interval", "10",
                 "--checkpoint-interval", "10", "--platform", "CPU", "--progress", "none",
                 "--envelope-margin", "inf"]) == 0  # fmt: skip
    monkeypatch.chdir(elsewhere)
    shutil.copy(ETHANOL_PDB, elsewhere / "eth.pdb")  # (files of the same names here, one of them another model:
    shutil.copy(BUNDLED_MODEL, elsewhere / "model.pt")  # the run's own are taken)
    assert main(["--resume", "-o", "../start/run", "--steps", "40"]) == 0
    assert checkpoint_meta(start / "run" / "checkpoint.chk")["step"] == 40
    (elsewhere / "eth.pdb").unlink(), (elsewhere / "model.pt").unlink()
    assert main(["../start/eth.pdb", "--model", "../start/model.pt", "-o", "../start/run", "--steps", "60",
                 "--log-interval", "10", "--checkpoint-interval", "10", "--platform", "CPU", "--progress", "none",
                 "--envelope-margin", "inf", "--resume"]) == 0  # (the same files named from here)  # fmt: skip
    # a copy of the project, the original moved away: the copy resumes with its own files (relative to it), also
    # from elsewhere
    shutil.copytree(start, tmp_path / "copy")
    start.rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path / "copy")
    assert main(["--resume", "-o", "run", "--steps", "80"]) == 0
    monkeypatch.chdir(elsewhere)
    assert main(["--resume", "-o", "../copy/run", "--steps", "100"]) == 0
    assert checkpoint_meta(tmp_path / "copy" / "run" / "checkpoint.chk")["step"] == 100


def test_found_paths_take_the_runs_directory_only_for_files_found_there(tmp_path, monkeypatch):
    """OpenMM's own force-field names and files found nowhere stay as given; empty entries are dropped; the run's
    directory is found from where its output is now."""
    from painn_deploy.md.rundir import found_paths, run_root, same_files

    assert run_root("run", tmp_path / "copy" / "run", "/gone") == str(tmp_path / "copy")
    assert run_root("sub/run", tmp_path / "a" / "sub" / "run", "/gone") == str(tmp_path / "a")
    assert run_root("/abs/run", tmp_path / "run", "/started/here") == "/started/here"

    (tmp_path / "run_dir").mkdir()
    (tmp_path / "run_dir" / "eth.pdb").write_text("")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    stored = {"structure": "eth.pdb", "forcefield_file": "amber14/GLYCAM_06j-1.xml,", "model": None}
    found = found_paths(stored, str(tmp_path / "run_dir"))
    assert found == {"structure": str(tmp_path / "run_dir" / "eth.pdb"), "forcefield_file": "amber14/GLYCAM_06j-1.xml",
                     "model": None}  # fmt: skip
    assert same_files("structure", "eth.pdb", "../run_dir/eth.pdb", str(tmp_path / "run_dir"))
    assert not same_files("structure", "eth.pdb", "eth.pdb", str(tmp_path / "run_dir"))
    # OpenMM's own names next to a file: each entry as what it is (the name was joined to a directory, and a resume
    # from elsewhere was refused as a changed --forcefield-file); a structure's name may hold a comma
    (tmp_path / "run_dir" / "extra.xml").write_text("")
    stored = "amber14/GLYCAM_06j-1.xml, extra.xml"
    found = found_paths({"forcefield_file": stored}, str(tmp_path / "run_dir"))["forcefield_file"]
    assert found == f"amber14/GLYCAM_06j-1.xml,{tmp_path / 'run_dir' / 'extra.xml'}"
    assert same_files("forcefield_file", stored, found, str(tmp_path / "run_dir"))
    assert not same_files("forcefield_file", stored, "amber14/GLYCAM_06j-1.xml", str(tmp_path / "run_dir"))
    (tmp_path / "run_dir" / "x,y.pdb").write_text("")
    assert found_paths({"structure": "x,y.pdb"}, str(tmp_path / "run_dir"))["structure"] == str(
        tmp_path / "run_dir" / "x,y.pdb"
    )
