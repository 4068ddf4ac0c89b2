"""Training benchmark on ethanol (GFN2-xTB): 1000 training frames (contiguous split; 200 validation,
the remaining 4800 frames are the test set), a fixed wall-clock budget on 1 pinned thread.

Rows: painn-deploy (paper recipe, Eq. 13 dipole), SchNetPack 2.2's PaiNN (same split, budget, loss
weights, hyperparameters; its own Lightning training), and the paper's dipole ablation: painn-deploy
with the Eq. 12 (charges-only) dipole.  Reports test MAEs of E, F, mu, alpha, the ratio of our
errors to SchNetPack's, and training throughput (frames/s).

    python benchmarks/training.py [--budget-s 300]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DATA = common.SHARED_DATA / "ethanol_gfn2xtb.npz"
TARGETS = ("energy", "forces", "dipole", "polarizability")
UNITS = {"energy": "eV", "forces": "eV/A", "dipole": "e*A", "polarizability": "A^3"}


def worker(dipole_model: str, budget_s: float, split_path: str, threads: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from painn_deploy import data as data_io
    from painn_deploy.training import TrainConfig, evaluate, train
    from painn_deploy.training.trainer import load_data

    out = Path(tempfile.mkdtemp()) / "run"
    cfg = TrainConfig(data=str(DATA), output=str(out), targets=TARGETS, n_train=1000, n_val=200, split="contiguous",
                      max_time_s=budget_s, max_epochs=100000, dipole_model=dipole_model, progress_bar=False)  # fmt: skip
    t = time.perf_counter()
    summary = train(cfg)
    wall = time.perf_counter() - t
    split = data_io.load_split(split_path)
    saved = data_io.load_split(out / "split.npz")
    assert all(np.array_equal(split[k], saved[k]) for k in split), "the split differs from the shared one"
    errors = evaluate(out / "best.ckpt", load_data(cfg), split["test"])
    return {
        "test_mae": {k: v["mae"] for k, v in errors.items()},
        "frames_per_s": summary["train_frames_per_second"],
        "epochs": summary["epochs"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": wall,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--worker", nargs=1, metavar="DIPOLE_MODEL")
    p.add_argument("--budget-s", type=float, default=300.0)
    p.add_argument("--split")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        Path(args.out).write_text(json.dumps(worker(args.worker[0], args.budget_s, args.split, args.threads)))
        return
    from painn_deploy import data as data_io

    common.RESULTS.mkdir(parents=True, exist_ok=True)
    split_path = common.RESULTS / "ethanol_split.npz"
    n_frames = len(__import__("numpy").load(DATA)["energies"])
    data_io.save_split(data_io.make_split(n_frames, 1000, 200, "contiguous"), split_path)
    budget = args.budget_s
    ours = common.run_worker(
        Path(__file__), ["eq13", "--budget-s", budget, "--split", split_path], 1, timeout=int(budget * 4 + 600)
    )
    ablation = common.run_worker(
        Path(__file__), ["eq12", "--budget-s", budget, "--split", split_path], 1, timeout=int(budget * 4 + 600)
    )
    peer = common.run_peer(
        ["train", "--data", DATA, "--split", split_path, "--budget-s", budget], 1, timeout=int(budget * 4 + 600)
    )
    rows = []
    for name, r in (("painn-deploy (Eq. 13)", ours), ("painn-deploy (Eq. 12, charges only)", ablation)):
        row = {"model": name, "frames_per_s": r["frames_per_s"], "epochs": r["epochs"]}
        row.update({f"{t}_mae": r["test_mae"][t] for t in TARGETS})
        rows.append(row)
    if peer:
        test = peer["test"]
        row = {
            "model": "SchNetPack 2.2 PaiNN",
            "frames_per_s": peer["train_frames_per_s"],
            "epochs": peer["epochs_completed"],
        }
        row.update({f"{t}_mae": float(test[t]["mae"]) for t in TARGETS})
        rows.append(row)
        ratio = {"model": "ratio ours / SchNetPack"}
        ratio.update({f"{t}_mae": rows[0][f"{t}_mae"] / row[f"{t}_mae"] for t in TARGETS})
        ratio["frames_per_s"] = rows[0]["frames_per_s"] / row["frames_per_s"]
        rows.append(ratio)
    notes = (
        f"Ethanol GFN2-xTB, 1000 training frames (contiguous), 200 validation, 4800 test, {budget:g} s wall-clock budget "
        f"each, 1 pinned thread, F=128, 3 blocks, 20 sine RBF, 5 A cutoff, AdamW lr 5e-4 wd 0.01, batch 10, loss weights "
        f"E 0.05, F 0.95, mu 1, alpha 1. MAE units: {', '.join(f'{k} {v}' for k, v in UNITS.items())}. The Eq. 12 row is "
        f"the paper's dipole ablation (charges only vs charges + atomic dipoles)."
    )
    common.write_table("training", rows, ["model", "energy_mae", "forces_mae", "dipole_mae", "polarizability_mae",
                                          "frames_per_s", "epochs"], notes)  # fmt: skip
    (common.RESULTS / "training_raw.json").write_text(
        json.dumps({"ours": ours, "eq12": ablation, "schnetpack": peer}, indent=1)
    )


if __name__ == "__main__":
    main()
