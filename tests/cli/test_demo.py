"""The quick-start pipeline end to end (tiny settings): train -> export -> MD with recording -> spectra."""

import csv

import numpy as np


def test_demo_pipeline_end_to_end(tmp_path):
    from painn_deploy.cli.demo import run_demo

    result = run_demo(tmp_path, train_minutes=0.4, md_ps=1.0, features=16, temperature_K=100.0)
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
