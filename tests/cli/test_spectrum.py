"""painn-spectrum as a thin CLI over SpectrumConfig / compute_spectra: YAML config, overrides, exit codes, plots."""

import json
import warnings

import h5py
import numpy as np
import pytest

from painn_deploy import units
from painn_deploy.errors import InputError
from painn_deploy.spectra import SpectrumConfig, compute_spectra, ir_spectrum

DT = 0.001  # ps


def _write(path, seed=0, n=6000):
    rng = np.random.default_rng(seed)
    t = np.arange(n) * DT
    dip = np.zeros((n, 3))
    dip[:, 0] = 0.01 * np.cos(1700.0 * units.RAD_PER_PS_PER_CM1 * t + rng.uniform(0, 6.3)) + 1e-3 * rng.normal(size=n)
    with h5py.File(path, "w") as f:
        f.create_dataset("time", data=t).attrs["units"] = "ps"
        f.create_dataset("dipole", data=dip).attrs["units"] = "e*nm"
        f.attrs["temperature_K"] = 250.0
    return str(path), t, dip


def test_config_file_and_command_line_overrides(tmp_path, capsys):
    from painn_deploy.cli.spectrum import main

    f0, t, d0 = _write(tmp_path / "a.h5", 0)
    f1, _, d1 = _write(tmp_path / "b.h5", 1)
    cfg = tmp_path / "spectrum.yaml"
    cfg.write_text(
        f"files: [{f0}, {f1}]\noutput: {tmp_path / 'from_file'}\nresolution_cm1: 12\nwmax_cm1: 3000\n"
        "plots: false\nquantum_correction: standard\n"
    )
    assert main(["--config", str(cfg)]) == 0
    meta = json.loads((tmp_path / "from_file" / "metadata.json").read_text())
    assert meta["config"]["resolution_cm1"] == 12.0 and meta["n_runs"] == 2
    assert meta["settings"]["resolution_fwhm_cm1"] == pytest.approx(12.0, rel=1e-2)
    assert meta["quantum_correction"] == "standard" and meta["temperature_K"] == 250.0
    assert not list((tmp_path / "from_file").glob("*.png"))
    expected = ir_spectrum([t, t], [d0, d1], 250.0, resolution_cm1=12, wmax_cm1=3000, quantum_correction="standard")
    written = np.loadtxt(tmp_path / "from_file" / "ir.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(written[:, 1], expected.intensity, rtol=1e-8)
    # flags override the file; positional files replace its list
    out2 = tmp_path / "override"
    args = ["--config", str(cfg), f0, "-o", str(out2), "--resolution-cm1", "20"]
    assert main(args) == 0
    meta = json.loads((out2 / "metadata.json").read_text())
    assert meta["files"] == [f0] and meta["config"]["resolution_cm1"] == 20.0
    assert meta["settings"]["resolution_fwhm_cm1"] == pytest.approx(20.0, rel=1e-2)
    assert meta["temperature_K"] == 250.0 and meta["config"]["wmax_cm1"] == 3000.0  # kept from the file
    # beta must be the temperature the runs sampled: another one is refused, nothing written
    capsys.readouterr()
    assert main(args[:-2] + ["-o", str(tmp_path / "hot"), "--temperature-K", "300"]) == 2
    assert "--temperature-K 300 differs from the temperature the runs were sampled at (250 K" in capsys.readouterr().err
    assert not (tmp_path / "hot").exists()
    with h5py.File(f1, "a") as f:  # runs of two temperatures are not averaged
        f.attrs["temperature_K"] = 260.0
    assert main([f0, f1, "-o", str(tmp_path / "mixed")]) == 2
    err = capsys.readouterr().err
    assert "the files were run at different temperatures (250, 260 K)" in err and "separately" in err
    # the stored configuration is itself a valid configuration file (JSON is YAML)
    again = tmp_path / "again.json"
    again.write_text(json.dumps({**meta["config"], "output": str(tmp_path / "again")}))
    assert main(["--config", str(again)]) == 0
    np.testing.assert_array_equal(
        np.loadtxt(tmp_path / "again" / "ir.csv", delimiter=",", skiprows=1),
        np.loadtxt(out2 / "ir.csv", delimiter=",", skiprows=1),
    )
    capsys.readouterr()


def test_config_errors_name_the_problem(tmp_path, capsys):
    from painn_deploy.cli.spectrum import main

    f0, _, _ = _write(tmp_path / "a.h5")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"files: [{f0}]\nresolution: 5\nwmaxx: 3000\n")
    assert main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "'resolution'" in err and "'wmaxx'" in err and "unknown key" in err and "resolution_cm1" in err
    cfg.write_text(f"files: [{f0}]\nzero_pad: lots\n")
    assert main(["--config", str(cfg)]) == 2
    assert "'zero_pad' must be a number" in capsys.readouterr().err
    cfg.write_text("- just\n- a list\n")
    assert main(["--config", str(cfg)]) == 2
    assert "must be a mapping" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml does not exist" in capsys.readouterr().err
    assert main([]) == 2
    assert "no property files given" in capsys.readouterr().err
    assert main([f0, "--raman", "-o", str(tmp_path / "r")]) == 2
    assert (
        "--raman needs the 'polarizability' dataset, which this file lacks: record it with painn-simulate "
        "--record-polarizability (a model with a polarizability head), or leave out --raman"
    ) in capsys.readouterr().err
    with pytest.raises(InputError, match="window"):
        SpectrumConfig(files=(f0,), window="blackman")
    with pytest.raises(InputError, match="'plots' must be true or false"):
        SpectrumConfig.from_mapping({"files": [f0], "plots": "no"})


def test_output_path_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    from painn_deploy.cli.spectrum import main

    f0, _, _ = _write(tmp_path / "a.h5")
    existing = tmp_path / "existing_file"
    existing.write_text("keep me\n")
    assert main([f0, "-o", str(existing)]) == 2
    err = capsys.readouterr().err
    assert "exists and is a file" in err and "Traceback" not in err and "FileExistsError" not in err
    assert existing.read_text() == "keep me\n"


def test_earlier_results_are_kept_unless_overwrite(tmp_path, capsys):
    """A folder with an earlier run's metadata.json is refused before any work; --overwrite replaces that run's
    files and deletes those this run does not write again, and nothing else."""
    from painn_deploy.cli.spectrum import main

    f0, _, _ = _write(tmp_path / "a.h5")
    out = tmp_path / "out"
    assert main([f0, "-o", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "ir.png" in before
    capsys.readouterr()
    assert main([f0, "-o", str(out), "--resolution-cm1", "30"]) == 2
    err = capsys.readouterr().err
    assert "already holds the results of an earlier run" in err and "--overwrite" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (out / "notes.txt").write_text("mine")
    assert main([f0, "-o", str(out), "--resolution-cm1", "30", "--no-plots", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ir.csv", "metadata.json", "notes.txt"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["config"]["resolution_cm1"] == 30.0 and (out / "notes.txt").read_text() == "mine"
    assert "overwrite" not in meta["config"]  # the stored configuration, given again, replaces nothing unasked
    assert (out / "ir.csv").read_bytes() != before["ir.csv"]


def test_failed_run_exits_with_1(tmp_path, capsys, monkeypatch):
    import painn_deploy.cli.spectrum as cli

    f0, _, _ = _write(tmp_path / "a.h5")

    def broken(config):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "compute_spectra", broken)
    assert cli.main([f0, "-o", str(tmp_path / "out")]) == 1
    assert "the run failed: RuntimeError: disk on fire" in capsys.readouterr().err


def test_library_call_without_output_writes_nothing(tmp_path, monkeypatch):
    f0, t, d0 = _write(tmp_path / "a.h5")
    monkeypatch.chdir(tmp_path)
    res = compute_spectra(SpectrumConfig(files=(f0,), output=None, temperature_K=250.0))
    assert res.written == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]
    np.testing.assert_allclose(res.ir.intensity, ir_spectrum(t, d0, 250.0).intensity, rtol=1e-12)
    assert res.raman is None and "1 run(s)" in res.summary()


def test_plots_are_tex_free_and_show_the_standard_error_band(tmp_path):
    from matplotlib.collections import PolyCollection

    from painn_deploy.spectra.plots import spectrum_figure, unicode_units

    assert unicode_units("km mol^-1 (cm^-1)^-1") == "km mol⁻¹ (cm⁻¹)⁻¹"
    assert unicode_units("Angstrom^4 amu^-1 (cm^-1)^-1") == "Å⁴ amu⁻¹ (cm⁻¹)⁻¹"
    (_, t, d0), (_, _, d1) = _write(tmp_path / "a.h5", 0), _write(tmp_path / "b.h5", 1)
    two = ir_spectrum([t, t], [d0, d1], 300.0)
    one = ir_spectrum(t, d0, 300.0)
    for spectrum, bands in ((two, 1), (one, 0)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig = spectrum_figure([spectrum], labels=["MD"], ylabel=f"IR ({spectrum.units})")
            fig.canvas.draw()  # renders every glyph
        assert not [w for w in caught if "missing from" in str(w.message)]  # the font has ⁻ ¹ Å
        ax = fig.axes[0]
        for label in (ax.get_ylabel(), ax.get_xlabel()):
            assert "^" not in label and "$" not in label
        assert ax.get_ylabel() == "IR (km mol⁻¹ (cm⁻¹)⁻¹)" and ax.get_xlabel() == "wavenumber (cm⁻¹)"
        assert sum(isinstance(c, PolyCollection) for c in ax.collections) == bands
        assert ("standard error" in ax.get_title()) == (bands == 1)
