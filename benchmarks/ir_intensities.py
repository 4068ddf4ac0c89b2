"""Absolute IR intensities from MD against the harmonic ones of the same model, made cheap by replicas.

1. Harmonic analysis of the bundled model (float64 from its checkpoint): normal modes and IR intensities
   (double harmonic approximation, km/mol).
2. painn-simulate with ``--replicas 16`` at 30 K (BAOAB, 1/ps, 0.5 fs), recording the dipole every step:
   16 independent trajectories in one batched evaluation per step.
3. The IR line shape with the harmonic quantum correction (F = 1: the classical line shape
   beta omega^2 I_cl, whose band integral for a harmonic mode is its harmonic intensity at any temperature, up
   to the ratio of measured to nominal temperature), integrated over the vibrational range (from 150 cm^-1
   below the lowest mode to 150 cm^-1 above the highest) and over four regions, scaled by the run's measured
   temperature against the nominal one, against the sums of the harmonic intensities.  The standard error
   comes from the replicas.  Target: within 5%.  (quantum_correction="none", the quantum absorption formula
   applied to the uncorrected classical correlation, multiplies each band by (1 - exp(-x))/x, x = hbar
   omega / kT: at 30 K that is 1/14 at 300 cm^-1 and 1/144 at 3000 cm^-1.)

    python benchmarks/ir_intensities.py [--replicas 16] [--ps 20]
"""

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import numpy as np  # noqa: E402

TEMPERATURE_K = 30.0
REGIONS_CM1 = ((0.0, 600.0), (600.0, 1700.0), (2600.0, 3300.0), (3300.0, 4000.0))  # torsions, fingerprint, C-H, O-H


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", type=int, default=16)
    p.add_argument("--ps", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", action="store_true")
    p.add_argument("--out")
    args = p.parse_args()
    if not args.worker:
        result = common.run_worker(Path(__file__), ["--replicas", args.replicas, "--ps", args.ps], 1, timeout=4 * 3600)
        report(result, args)
        return
    import torch

    torch.set_num_threads(1)
    from painn_deploy.deploy import export, load
    from painn_deploy.md import SimulationConfig, run_simulation
    from painn_deploy.spectra import SpectrumConfig, compute_spectra, harmonic_analysis
    from painn_deploy.structures import read_pdb

    tmp = Path(tempfile.mkdtemp())
    export(common.RESOURCES / "ethanol_painn.ckpt", tmp / "model64.pt", dtype="float64")
    z, pos, _ = read_pdb(common.RESOURCES / "ethanol.pdb")
    harmonic = harmonic_analysis(load(tmp / "model64.pt").module, pos, z, minimize=True)
    out = tmp / "md"
    cfg = SimulationConfig(structure=str(common.RESOURCES / "ethanol.pdb"), output=str(out), steps=int(args.ps * 2000),
                           equilibration_steps=4000, temperature_K=TEMPERATURE_K, friction_per_ps=1.0,
                           replicas=args.replicas, record_dipole=True, log_interval=200, trajectory_interval=10**6,
                           checkpoint_interval=10**9, progress="none", platform="CPU", threads=1, seed=5)  # fmt: skip
    md = run_simulation(cfg)
    with open(out / "log.csv") as f:
        temperature = float(np.mean([float(r["temperature_K"]) for r in csv.DictReader(f)]))
    spectra = compute_spectra(SpectrumConfig(files=(str(out / "properties.h5"),), output=None, ir=True,
                                             resolution_cm1=4.0, quantum_correction="harmonic"))  # fmt: skip
    ir = spectra.ir
    lo = float(harmonic.wavenumber_cm1.min()) - 150.0
    hi = float(harmonic.wavenumber_cm1.max()) + 150.0
    band = (ir.wavenumber_cm1 >= lo) & (ir.wavenumber_cm1 <= hi)
    dnu = float(ir.wavenumber_cm1[1] - ir.wavenumber_cm1[0])
    per_run = ir.runs[:, band].sum(axis=1) * dnu
    regions = {}
    for a, b in REGIONS_CM1:
        inside = (ir.wavenumber_cm1 >= a) & (ir.wavenumber_cm1 < b)
        modes = (harmonic.wavenumber_cm1 >= a) & (harmonic.wavenumber_cm1 < b)
        regions[f"{a:g}-{b:g}"] = {
            "harmonic": float(harmonic.ir_intensity_km_per_mol[modes].sum()), "modes": int(modes.sum()),
            "md_runs": (ir.runs[:, inside].sum(axis=1) * dnu).tolist(),
        }  # fmt: skip
    Path(args.out).write_text(json.dumps({
        "harmonic_total_km_per_mol": float(harmonic.ir_intensity_km_per_mol.sum()), "regions": regions,
        "md_total_km_per_mol_runs": per_run.tolist(), "temperature_K": temperature, "range_cm1": [lo, hi],
        "ms_per_step": 0.5e-6 * 86400 / md.ns_per_day * 1e3,
    }))  # fmt: skip


def report(result: dict, args) -> None:
    runs = np.asarray(result["md_total_km_per_mol_runs"])
    harmonic = result["harmonic_total_km_per_mol"]
    scale = TEMPERATURE_K / result["temperature_K"]
    mean, se = runs.mean(), runs.std(ddof=1) / np.sqrt(len(runs))
    rows = [
        {"quantity": "harmonic IR intensity, sum over the 21 modes (km/mol)", "value": harmonic},
        {
            "quantity": f"MD band integral {result['range_cm1'][0]:.0f}-{result['range_cm1'][1]:.0f} cm^-1 (km/mol)",
            "value": float(mean),
            "stderr": float(se),
        },  # fmt: skip
        {"quantity": "measured temperature (K)", "value": result["temperature_K"]},
        {"quantity": "MD / harmonic, unscaled", "value": float(mean / harmonic), "stderr": float(se / harmonic)},
        {
            "quantity": "MD / harmonic, scaled by T_nominal / T_measured",
            "value": float(mean * scale / harmonic),
            "stderr": float(se * scale / harmonic),
        },  # fmt: skip
    ]
    for name, region in result.get("regions", {}).items():
        md = np.asarray(region["md_runs"]) * scale
        rows.append({
            "quantity": f"{name} cm^-1 ({region['modes']} modes): MD / harmonic, scaled",
            "value": float(md.mean() / region["harmonic"]),
            "stderr": float(md.std(ddof=1) / np.sqrt(len(md)) / region["harmonic"]),
        })  # fmt: skip
    notes = (
        f"Bundled model; {args.replicas} replicas x {args.ps:g} ps at {TEMPERATURE_K:g} K in one run of painn-simulate "
        f"({result['ms_per_step']:.2f} ms per step for all replicas, 1 thread), BAOAB 1/ps, 0.5 fs, dipole every step; "
        "IR with the harmonic quantum correction (F = 1, the classical line shape), 4 cm^-1 resolution; standard error over the replicas. Harmonic: "
        "the checkpoint's float64 model, minimised, Hessian by central differences of the forces."
    )
    common.write_table("ir_intensities", rows, ["quantity", "value", "stderr"], notes)


if __name__ == "__main__":
    main()
