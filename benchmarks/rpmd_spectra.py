"""The paper's workflow at CPU size: IR and Raman spectra of ethanol from classical MD and from
ring-polymer MD (every bead in one evaluation), with the bundled model, recording dipole and
polarizability every step; the nuclear quantum shift of the O-H and C-H stretch bands.

Both run painn-simulate's library (``run_simulation``) at 300 K, 0.5 fs, with ``--replicas`` copies for
statistics, ``--ps`` picoseconds each after 1 ps of equilibration; RPMD with ``--beads`` beads (PILE).
Spectra: ``painn_deploy.spectra.compute_spectra`` (RPMD files are Kubo-transformed; the classical ones
get the harmonic quantum correction, the same factor).  Band positions: the maximum of the IR line
shape in 3400-3900 cm^-1 (O-H stretch) and 2700-3200 cm^-1 (C-H stretches); its uncertainty is half the
grid spacing plus the spread of the peak over replicas.  Wall times, and the projected time of the
paper's 64-bead run (per step on this machine and, from benchmarks/results/gpu.md where it exists, on a
GPU).  Writes results/rpmd_spectra.{md,json,png}.

    python benchmarks/rpmd_spectra.py [--beads 16] [--replicas 4] [--ps 10]
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import numpy as np  # noqa: E402

BANDS = {"O-H stretch": (3400.0, 3900.0), "C-H stretches": (2700.0, 3200.0)}


def simulate(kind: str, beads: int, replicas: int, ps: float, output: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from painn_deploy.md import SimulationConfig, run_simulation

    steps = int(round(ps * 2000))
    cfg = SimulationConfig(
        structure=str(common.RESOURCES / "ethanol.pdb"), output=str(output), steps=steps,
        equilibration_steps=2000, temperature_K=300.0, timestep_fs=0.5, friction_per_ps=1.0,
        beads=beads if kind == "rpmd" else 1, replicas=replicas, record_dipole=True, record_polarizability=True,
        trajectory_interval=200, log_interval=1000, checkpoint_interval=10**9, platform="CPU", progress="none",
        threads=1, seed=11 if kind == "rpmd" else 7, overwrite=True,
    )  # fmt: skip
    start = time.perf_counter()
    result = run_simulation(cfg)
    return {"wall_s": time.perf_counter() - start, "ms_per_step": 0.5e-6 * 86400 / result.ns_per_day * 1e3,
            "steps": steps}  # fmt: skip


def spectra(files, output: Path):
    from painn_deploy.spectra import SpectrumConfig, compute_spectra

    return compute_spectra(SpectrumConfig(files=tuple(str(f) for f in files), output=str(output), ir=True,
                                          raman=True, resolution_cm1=15.0, overwrite=True))  # fmt: skip


def band_peaks(result) -> dict:
    """Peak positions (cm^-1) of the averaged IR line shape per band, and their spread over runs."""
    spectrum = result.ir
    out = {}
    nu = spectrum.wavenumber_cm1
    for name, (lo, hi) in BANDS.items():
        mask = (nu >= lo) & (nu <= hi)
        peak = float(nu[mask][np.argmax(spectrum.intensity[mask])])
        runs = [float(nu[mask][np.argmax(r[mask])]) for r in spectrum.runs]
        spacing = float(nu[1] - nu[0])
        spread = float(np.std(runs, ddof=1) / np.sqrt(len(runs))) if len(runs) > 1 else 0.0
        out[name] = (peak, spacing / 2 + spread)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", nargs=1, metavar="KIND")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--beads", type=int, default=16)
    p.add_argument("--replicas", type=int, default=4)
    p.add_argument("--ps", type=float, default=10.0)
    p.add_argument("--folder", default=str(common.RESULTS / ".rpmd_spectra"))
    p.add_argument("--out")
    args = p.parse_args()
    folder = Path(args.folder)
    if args.worker:
        kind = args.worker[0]
        Path(args.out).write_text(json.dumps(simulate(kind, args.beads, args.replicas, args.ps, folder / kind)))
        return
    timing = {}
    for kind in ("classical", "rpmd"):
        timing[kind] = common.run_worker(Path(__file__), [kind, "--beads", args.beads, "--replicas", args.replicas,
                                                          "--ps", args.ps, "--folder", folder], 1, timeout=4 * 3600)  # fmt: skip
        print(kind, timing[kind], flush=True)
    results = {kind: spectra([folder / kind / "properties.h5"], folder / f"{kind}_spectra") for kind in timing}
    peaks = {kind: band_peaks(r) for kind, r in results.items()}
    rows = []
    for band in BANDS:
        (c, c_err), (q, q_err) = peaks["classical"][band], peaks["rpmd"][band]
        rows.append({"band": band, "classical_cm1": c, "rpmd_cm1": q, "quantum_shift_cm1": q - c,
                     "uncertainty_cm1": float(np.hypot(c_err, q_err))})  # fmt: skip
    per_step = timing["rpmd"]["ms_per_step"]
    projected_ms = per_step * 64 / args.beads  # the batched evaluation's cost grows with the beads
    gpu = common.RESULTS / "gpu.json"
    gpu_note = "not measured on a GPU (no GPU was available)"
    if gpu.is_file():
        for row in json.loads(gpu.read_text())["rows"]:
            if row["case"].startswith("ethanol x 64") and "graph_ms" in row:
                gpu_note = f"{row['graph_ms']:.3f} ms per 64-bead evaluation with a CUDA graph on {json.loads(gpu.read_text())['device']}"
    notes = (
        f"Ethanol, bundled model, 300 K, 0.5 fs, {args.replicas} replicas x {args.ps:g} ps each (after 1 ps), classical "
        f"(BAOAB) and RPMD with {args.beads} beads (PILE, batched); IR band maxima at 15 cm^-1 resolution. Wall time: "
        f"classical {timing['classical']['wall_s']:.0f} s ({timing['classical']['ms_per_step']:.2f} ms/step for all "
        f"replicas), RPMD {timing['rpmd']['wall_s']:.0f} s ({per_step:.1f} ms/step). The paper's 64-bead run on this "
        f"machine (1 thread): ~{projected_ms:.0f} ms per step for {args.replicas} replicas, "
        f"~{projected_ms / args.replicas:.0f} ms per replica-step; on a GPU: {gpu_note}. Negative shift: the quantum "
        "(RPMD) band lies lower, the anharmonic red shift of zero-point motion."
    )
    common.write_table(
        "rpmd_spectra", rows, ["band", "classical_cm1", "rpmd_cm1", "quantum_shift_cm1", "uncertainty_cm1"], notes
    )
    overlay(results, common.RESULTS / "rpmd_spectra.png", args.beads)


def overlay(results: dict, path: Path, beads: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for kind, label in (("classical", "classical MD"), ("rpmd", f"RPMD, {beads} beads")):
        ir, raman = results[kind].ir, results[kind].raman
        axes[0].plot(ir.wavenumber_cm1, ir.intensity, label=label)
        axes[1].plot(raman.activity.wavenumber_cm1, raman.activity.intensity, label=label)
    axes[0].set_ylabel("IR (km mol⁻¹ (cm⁻¹)⁻¹)")
    axes[1].set_ylabel("Raman activity (Å⁴ amu⁻¹ (cm⁻¹)⁻¹)")
    axes[1].set_xlabel("wavenumber (cm⁻¹)")
    axes[0].set_xlim(0, 4000)
    for ax in axes:
        ax.legend()
    axes[0].set_title("Ethanol, 300 K: classical MD against ring-polymer MD (bundled PaiNN model)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
