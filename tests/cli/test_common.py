"""What every command shares: options built from configuration dataclasses, and one exit-code policy."""

import importlib
from dataclasses import dataclass

import pytest

from painn_deploy.cli import common as cli_common
from painn_deploy.configuration import Config, load_config_file, option, parse_indices
from painn_deploy.errors import InputError, SimulationInstabilityError

COMMANDS = {  # module, the library call its main makes, a valid command line
    "painn-export": ("painn_deploy.cli.export", "export", ["best.ckpt", "-o", "model.pt"]),
    "painn-harmonic": ("painn_deploy.cli.harmonic", "compute_harmonic", ["model.pt", "molecule.pdb"]),
    "painn-train": ("painn_deploy.cli.train", "train", ["--data", "frames.npz"]),
    "painn-demo": ("painn_deploy.cli.demo", "run_demo", []),
    "painn-spectrum": ("painn_deploy.cli.spectrum", "compute_spectra", ["properties.h5"]),
}


@pytest.mark.parametrize("prog", sorted(COMMANDS))
def test_exit_codes_bad_input_2_failed_run_1(prog, monkeypatch, capsys):
    name, call, argv = COMMANDS[prog]
    cli = importlib.import_module(name)

    def bad_input(*args, **kwargs):
        raise InputError("this structure cannot be used")

    def failed_run(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, call, bad_input)
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"{prog}: error: this structure cannot be used\n"  # one line, no traceback

    def unstable(*args, **kwargs):  # a PainnDeployError of a run that failed on its way: 1, one line
        raise SimulationInstabilityError("simulation stopped at step 10")

    monkeypatch.setattr(cli, call, unstable)
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == f"{prog}: error: simulation stopped at step 10\n"

    def inside_the_model(*args, **kwargs):  # a typed error raised inside an exported (TorchScript) model
        raise RuntimeError("The following operation failed in the TorchScript interpreter.\n...\n"
                           "RuntimeError: BoxTooSmallError: the box is too small")  # fmt: skip

    monkeypatch.setattr(cli, call, inside_the_model)
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"{prog}: error: the box is too small\n"
    monkeypatch.setattr(cli, call, failed_run)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith(f"{prog}: error: the run failed: RuntimeError: disk on fire\n")
    assert cli.main([*argv, "--no-such-option"]) == 2  # argparse errors: usage and one line
    err = capsys.readouterr().err
    assert "unrecognized arguments: --no-such-option" in err and "Traceback" not in err
    assert cli.main(["--help"]) == 0
    assert "--config FILE.yaml" in capsys.readouterr().out

    def too_large(*args, **kwargs):  # numpy's MemoryError for an impossible size: one line with the remedy
        raise MemoryError("Unable to allocate 74.5 GiB for an array")

    monkeypatch.setattr(cli, call, too_large)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{prog}: error: not enough memory (Unable to allocate 74.5 GiB") and "Traceback" not in err
    less = cli_common.LESS_MEMORY.get(prog, "a smaller system")
    assert err.rstrip().endswith(f"ask for less ({less})")  # (this command's own options)

    def torch_too_large(*args, **kwargs):  # torch's CPU allocator raises a RuntimeError
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(cli, call, torch_too_large)
    assert cli.main(argv) == 1
    assert capsys.readouterr().err.startswith(f"{prog}: error: not enough memory ([enforce fail")


@dataclass(frozen=True)
class Example(Config):
    count: int = option(3, "--count", "how many", "N", "int")
    ratio: float = option(0.5, "--ratio", "a number")
    names: tuple = option(("a",), "--names", "words", "LIST", "list")
    atoms: tuple | None = option(None, "--atoms", "indices", "I", "indices")
    mode: str = option("x", "--mode", "a choice", kind=("x", "y"))
    flag: bool | None = option(None, "--flag", "a switch", kind="switch")


def test_options_are_checked_and_converted(tmp_path):
    assert parse_indices("0-3,7, 9") == (0, 1, 2, 3, 7, 9) and parse_indices([4, 2]) == (4, 2)
    for bad in ("3-1", "a", "-1", [1.5], True):
        with pytest.raises(ValueError):
            parse_indices(bad)
    e = Example(count=4.0, ratio="1e-3", names="b, c", atoms="0-2", flag=True)
    assert (e.count, e.ratio, e.names, e.atoms, e.flag) == (4, 1e-3, ("b", "c"), (0, 1, 2), True)
    assert e.as_dict()["names"] == ["b", "c"]
    for values, message in (
        ({"count": 2.5}, "'count' must be a whole number, got 2.5"),
        ({"ratio": True}, "'ratio' must be a number, got True"),
        ({"mode": "z"}, "'mode' must be one of x, y, got 'z'"),
        ({"atoms": "5-1"}, "'atoms' must be 0-based indices with ranges, e.g. 0-8,12, got '5-1'"),
        ({"flag": "yes"}, "'flag' must be true or false, got 'yes'"),
        (
            {"cuont": 1, "rato": 2},
            "unknown key\\(s\\) 'cuont' \\(did you mean 'count'\\?\\), 'rato' \\(did you mean "
            "'ratio'\\?\\); the known keys are atoms, count",
        ),
    ):
        with pytest.raises(InputError, match=message):
            Example.from_mapping(values)
    path = tmp_path / "example.yaml"
    path.write_text("count: 7\nratio: 2\n")
    assert Example.from_file(path, ratio=0.25) == Example(count=7, ratio=0.25)  # overrides win
    path.write_text("count: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config_file(path)


def test_numpy_scalars_are_the_numbers_they_hold():
    """A notebook's np.int64(100), np.float32(300) and np.True_ are options like Python's (np.int64 was refused as
    "must be a whole number, got np.int64(100)"); an array is not a number."""
    import numpy as np

    from painn_deploy.md import SimulationConfig

    cfg = SimulationConfig("x.pdb", steps=np.int64(100), temperature_K=np.float32(300), record_dipole=np.True_)
    assert (cfg.steps, cfg.temperature_K, cfg.record_dipole) == (100, 300.0, True)
    assert type(cfg.steps) is int and type(cfg.record_dipole) is bool
    with pytest.raises(InputError, match="'steps' must be a whole number"):
        SimulationConfig("x.pdb", steps=np.array([1, 2]))
    from painn_deploy.deploy.config import ExportConfig

    for atoms in (np.arange(3), list(np.arange(3)), np.where(np.arange(9) < 3)[0]):  # (index options too)
        assert ExportConfig("best.ckpt", "model.pt", atoms=atoms).atoms == (0, 1, 2)


def test_yaml_yes_and_no_are_the_choices_they_spell():
    """YAML reads ``linear: yes`` as True: a choice of yes/no takes it as "yes" (and False as "no")."""
    from painn_deploy.configuration import convert

    assert convert(("auto", "yes", "no"), True) == "yes" and convert(("auto", "yes", "no"), False) == "no"
    with pytest.raises(ValueError):
        convert(("x", "y"), True)


def test_a_key_given_twice_and_a_number_too_large_to_be_whole_are_refused(tmp_path):
    from painn_deploy.configuration import convert

    (tmp_path / "twice.yaml").write_text("steps: 10\ntemperature_K: 300\nsteps: 20\n")
    with pytest.raises(InputError, match=r"twice.yaml: the key\(s\) steps are given more than once"):
        load_config_file(tmp_path / "twice.yaml")
    (tmp_path / "merged.yaml").write_text("base: &b {steps: 10}\nrun:\n  <<: *b\n  temperature_K: 300\n")
    assert load_config_file(tmp_path / "merged.yaml")["run"] == {"steps": 10, "temperature_K": 300}
    assert convert("int", "1e4") == 10000
    for huge in (1e30, float("inf"), "nan"):  # (1e30 as an int: 1000000000000000019884624838656)
        with pytest.raises(ValueError):
            convert("int", huge)


def test_help_names_the_config_key_of_an_option_whose_flag_differs(tmp_path):
    """painn-spectrum's --molecules is n_molecules in a --config file, --no-plots is plots: the help says so (a
    user wrote molecules: 2 and no_plots: true, as the help's rule suggested, and was refused); the key works."""
    import argparse

    from painn_deploy.cli.spectrum import build_parser
    from painn_deploy.spectra import SpectrumConfig

    helps = {a.dest: a.help for a in build_parser()._actions if isinstance(a, argparse.Action)}
    assert helps["n_molecules"].endswith("[--config key: n_molecules]")
    assert helps["plots"].endswith("[--config key: plots]") and "config key" not in helps["resolution_cm1"]
    path = tmp_path / "spectrum.yaml"
    path.write_text("files: [a.h5]\nn_molecules: 2\nplots: false\n")
    assert SpectrumConfig.from_file(path) == SpectrumConfig(files=("a.h5",), n_molecules=2, plots=False)


def test_a_second_ctrl_c_says_what_is_kept_and_how_to_go_on(capsys):
    """Ctrl-C where nothing finishes the work first exits 130 in one line; painn-simulate's and painn-train's say
    which checkpoint is kept and how to continue (it said only "interrupted")."""
    import argparse

    def stop(args):
        raise KeyboardInterrupt

    for prog, expected in (("painn-simulate", "painn-simulate: interrupted (the last checkpoint is kept: painn-"
                                              "simulate --resume -o OUTPUT continues from it)"),
                           ("painn-spectrum", "painn-spectrum: interrupted\n")):  # fmt: skip
        assert cli_common.run_command(prog, argparse.ArgumentParser(), [], stop, None) == 130
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
