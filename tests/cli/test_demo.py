"""The quick-start pipeline end to end (tiny settings): train -> export -> MD with recording -> spectra."""

import csv

import numpy as np


def test_demo_pipeline_end_to_end(tmp_path, monkeypatch, capsys):
    """Each step is a library call: the other commands' entry points are not used."""
    import importlib

    from painn_deploy.cli.demo import main
    from painn_deploy.demo import DemoConfig, run_demo

    def not_a_library_call(*args, **kwargs):
        raise AssertionError("painn-demo called another command's main()")

    for name in ("train", "export", "simulate", "spectrum", "harmonic"):
        monkeypatch.setattr(importlib.import_module(f"painn_deploy.cli.{name}"), "main", not_a_library_call)
    assert main(["--md-ps", "-1", "-o", str(tmp_path / "x")]) == 2
    assert "must be positive" in capsys.readouterr().err and not (tmp_path / "x").exists()
    result = run_demo(DemoConfig(output=str(tmp_path), train_minutes=0.4, md_ps=1.0, features=16, temperature_K=100.0))
    spectra = tmp_path / "spectra"
    pngs = sorted(p.name for p in spectra.glob("*.png"))
    csvs = sorted(p.name for p in spectra.glob("*.csv"))
    assert any("ir" in n for n in pngs) and any("raman" in n for n in pngs)
    assert any("ir" in n for n in csvs)
    with open(next(spectra.glob("*ir*.csv"))) as f:
        rows = list(csv.DictReader(f))
    intensity = np.array([float(next(v for k, v in r.items() if k.startswith("intensity"))) for r in rows])
    assert np.all(np.isfinite(intensity)) and intensity.max() > 0
    assert result["md"].frames_recorded == 2000
    assert (tmp_path / "train" / "learning_curve.png").is_file()
    assert result["spectra"].ir is not None and result["spectra"].raman is not None
    # a second demo in the same folder is refused before any work, leaving the first one as it was
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert main(["-o", str(tmp_path), "--train-minutes", "0.1"]) == 2
    assert "is not an empty folder (an earlier demo?)" in capsys.readouterr().err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
