#!/usr/bin/env python
"""Peer benchmark: SchNetPack 2.2's own PaiNN on the painn_deploy data, split and hyperparameters.

Runs inside the SchNetPack virtual environment (see setup_schnetpack_env.sh), NOT in the
painn_deploy environment.  It only uses SchNetPack's public API: the model, training task,
data pipeline and MD driver all come from the installed `schnetpack` package.

Subcommands (each prints a short table and writes a JSON file given by --out):

  train  SchNetPack PaiNN (n_atom_basis=128, 3 interactions, BesselRBF(20), cosine cutoff 5 A)
         with Atomwise energy + Forces, DipoleMoment(vector repr.) and Polarizability heads,
         trained for a fixed wall-clock budget; best-validation weights; test MAEs and
         training throughput.
  md     SchNetPack's MD driver (schnetpack.md: System, VelocityVerlet, LangevinThermostat,
         SchNetPackCalculator + NeighborListMD) on a PDB structure; median ms per MD step
         and median ms of the bare model call (energy + forces of one structure).

Units inside SchNetPack: eV, Angstrom, e*Angstrom, Angstrom^3 (energies converted from kcal/mol
with 4.184 / 96.48533212331002 eV per kcal/mol).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from typing import Dict, List

import numpy as np

# kcal/mol -> eV, the same exact-SI factor painn_deploy.units uses
# (4.184 kJ/mol per kcal/mol; e * N_A / 1000 = 96.48533212331002 kJ/mol per eV).
KCAL_PER_MOL_TO_EV = 4.184 / 96.48533212331002

ALL_TARGETS = ("energy", "forces", "dipole", "polarizability")
# SchNetPack property keys for our target names
SPK_KEY = {
    "energy": "energy",
    "forces": "forces",
    "dipole": "dipole_moment",
    "polarizability": "polarizability",
}


# ----------------------------------------------------------------------------- helpers
def set_threads(n: int) -> None:
    import torch

    if n and n > 0:
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(1 if n == 1 else n)
        except RuntimeError:
            pass  # already set (interop threads can only be set once, before parallel work)


def versions() -> Dict[str, str]:
    from importlib.metadata import version

    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("schnetpack", "ase", "pytorch_lightning", "torchmetrics", "numpy"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # pragma: no cover
            out[pkg] = "n/a"
    return out


def write_json(path: str, obj: dict) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")


def print_table(title: str, rows: List[tuple]) -> None:
    print(f"\n== {title} ==")
    w = max(len(str(r[0])) for r in rows) if rows else 10
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.6g}"
        print(f"  {str(k):<{w}}  {v}")
    print()


def load_or_make_split(path: str, n_frames: int, n_train: int, n_val: int) -> Dict[str, np.ndarray]:
    """Load {train,val,test} index arrays; create a contiguous smoke-test split if the file is missing."""
    if os.path.exists(path):
        s = np.load(path, allow_pickle=False)
        split = {k: np.asarray(s[k], dtype=np.int64) for k in ("train", "val", "test")}
        created = False
    else:
        if n_train + n_val >= n_frames:
            raise SystemExit(f"--n-train + --n-val ({n_train}+{n_val}) must be < number of frames ({n_frames})")
        split = {
            "train": np.arange(0, n_train, dtype=np.int64),
            "val": np.arange(n_train, n_train + n_val, dtype=np.int64),
            "test": np.arange(n_train + n_val, n_frames, dtype=np.int64),
        }
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        np.savez(path, **split)
        created = True
    for k, v in split.items():
        if v.size and (v.min() < 0 or v.max() >= n_frames):
            raise SystemExit(f"split '{k}' has indices outside [0, {n_frames})")
    return split | {"_created": created}


def npz_to_spk_db(npz_path: str, db_path: str, targets: List[str]) -> int:
    """Convert the painn_deploy .npz to a SchNetPack ASE-db (eV, Angstrom, e*A, A^3). Row i+1 = frame i."""
    from ase import Atoms
    from ase.db import connect
    from schnetpack.data import ASEAtomsData

    d = np.load(npz_path, allow_pickle=False)
    Z = np.asarray(d["nuclear_charges"], dtype=np.int64)
    R = np.asarray(d["coords"], dtype=np.float64)
    n_frames = R.shape[0]
    units = {}
    arrays = {}
    if "energy" in targets or "forces" in targets:
        # energy is always stored (forces are its derivative)
        units["energy"] = "eV"
        arrays["energy"] = np.asarray(d["energies"], np.float64).reshape(n_frames, 1) * KCAL_PER_MOL_TO_EV
    if "forces" in targets:
        units["forces"] = "eV/Ang"
        arrays["forces"] = np.asarray(d["forces"], np.float64) * KCAL_PER_MOL_TO_EV
    if "dipole" in targets:
        units["dipole_moment"] = "e*Ang"
        arrays["dipole_moment"] = np.asarray(d["dipoles"], np.float64).reshape(n_frames, 1, 3)
    if "polarizability" in targets:
        units["polarizability"] = "Ang*Ang*Ang"
        arrays["polarizability"] = np.asarray(d["polarizabilities"], np.float64).reshape(n_frames, 1, 3, 3)

    # create() writes SchNetPack's metadata (units); rows are then written in one transaction,
    # which is exactly what ASEAtomsData.add_systems() stores, only faster.
    ASEAtomsData.create(db_path, distance_unit="Ang", property_unit_dict=units)
    with connect(db_path, use_lock_file=False) as conn:
        for i in range(n_frames):
            atoms = Atoms(numbers=Z, positions=R[i])
            conn.write(atoms, data={k: v[i] for k, v in arrays.items()})
    return n_frames


# ----------------------------------------------------------------------------- model
def build_model(targets: List[str], n_atom_basis=128, n_interactions=3, n_rbf=20, cutoff=5.0, energy_std_scale=True):
    """SchNetPack NeuralNetworkPotential with the paper's PaiNN and the requested heads."""
    import schnetpack as spk
    import schnetpack.transform as trn

    radial = spk.nn.radial.BesselRBF(n_rbf=n_rbf, cutoff=cutoff)
    painn = spk.representation.PaiNN(
        n_atom_basis=n_atom_basis,
        n_interactions=n_interactions,
        radial_basis=radial,
        cutoff_fn=spk.nn.cutoff.CosineCutoff(cutoff),
    )
    outputs = []
    postprocessors = [trn.CastTo64()]
    if "energy" in targets or "forces" in targets:
        outputs.append(spk.atomistic.Atomwise(n_in=n_atom_basis, output_key="energy", aggregation_mode="sum"))
        if energy_std_scale:
            # per-atom std of the training energies (SchNetPack's ScaleProperty, as in its response.yaml
            # experiment); applied before Forces, so forces are scaled consistently.
            outputs.append(trn.ScaleProperty(input_key="energy", output_key="energy"))
        if "forces" in targets:
            outputs.append(spk.atomistic.Forces(energy_key="energy", force_key="forces"))
        # per-atom mean (RemoveOffsets in the data pipeline) is added back at inference
        postprocessors.append(trn.AddOffsets("energy", add_mean=True, add_atomrefs=False))
    if "dipole" in targets:
        outputs.append(
            spk.atomistic.DipoleMoment(
                n_in=n_atom_basis,
                dipole_key="dipole_moment",
                use_vector_representation=True,
                correct_charges=True,
                predict_magnitude=False,
            )
        )
    if "polarizability" in targets:
        outputs.append(spk.atomistic.Polarizability(n_in=n_atom_basis, polarizability_key="polarizability"))
    model = spk.model.NeuralNetworkPotential(
        representation=painn,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=outputs,
        postprocessors=postprocessors,
    )
    return model


def count_params(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def make_task_outputs(targets: List[str], weights: Dict[str, float]):
    import schnetpack as spk
    import torch
    import torchmetrics

    outs = []
    for t in targets:
        outs.append(
            spk.task.ModelOutput(
                name=SPK_KEY[t],
                loss_fn=torch.nn.MSELoss(),
                loss_weight=weights[t],
                metrics={"mae": torchmetrics.regression.MeanAbsoluteError()},
            )
        )
    return outs


# ----------------------------------------------------------------------------- train
def cmd_train(args) -> None:
    import torch

    set_threads(args.threads)
    import pytorch_lightning as pl
    import schnetpack as spk
    import schnetpack.transform as trn
    from schnetpack.data.loader import _atoms_collate_fn

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for t in targets:
        if t not in ALL_TARGETS:
            raise SystemExit(f"unknown target {t!r}; choose from {ALL_TARGETS}")
    if "forces" in targets and "energy" not in targets:
        targets.insert(0, "energy")  # forces are -dE/dR: the energy head is needed anyway
    weights = {
        "energy": args.w_energy,
        "forces": args.w_forces,
        "dipole": args.w_dipole,
        "polarizability": args.w_polarizability,
    }

    pl.seed_everything(args.seed, workers=True)
    n_frames_npz = int(np.load(args.data, allow_pickle=False)["coords"].shape[0])
    split = load_or_make_split(args.split, n_frames_npz, args.n_train, args.n_val)

    tmp = tempfile.TemporaryDirectory(prefix="spk_painn_")
    workdir = tmp.name
    t0 = time.perf_counter()
    db_path = os.path.join(workdir, "data.db")
    npz_to_spk_db(args.data, db_path, targets)
    spk_split = os.path.join(workdir, "split.npz")
    np.savez(spk_split, train_idx=split["train"], val_idx=split["val"], test_idx=split["test"])
    t_convert = time.perf_counter() - t0

    transforms = [
        trn.SubtractCenterOfMass(),
        trn.RemoveOffsets("energy", remove_mean=True, remove_atomrefs=False),
        trn.MatScipyNeighborList(cutoff=args.cutoff),
        trn.CastTo32(),
    ]
    if "energy" not in targets:
        transforms.pop(1)
    dm = spk.data.AtomsDataModule(
        datapath=db_path,
        batch_size=args.batch_size,
        val_batch_size=args.eval_batch_size,
        test_batch_size=args.eval_batch_size,
        split_file=spk_split,
        transforms=transforms,
        num_workers=0,
        pin_memory=False,
        load_properties=[SPK_KEY[t] for t in targets],
    )
    # data setup (reads split, computes the per-atom energy mean/std over the training set):
    # done before the clock starts, like the data conversion.
    t0 = time.perf_counter()
    dm.setup("fit")
    model = build_model(
        targets,
        args.n_atom_basis,
        args.n_interactions,
        args.n_rbf,
        args.cutoff,
        energy_std_scale=not args.no_energy_std_scale,
    )
    model.initialize_transforms(dm)
    t_setup = time.perf_counter() - t0
    stats = {}
    if "energy" in targets:
        mean, std = dm.get_stats("energy", True, False)
        stats = {"energy_mean_per_atom_eV": float(mean), "energy_std_per_atom_eV": float(std)}

    n_train = len(split["train"])
    info = {
        "epochs": 0,
        "steps": 0,
        "train_frames": 0,
        "val_time_s": 0.0,
        "train_step_time_s": 0.0,
        "best_val_loss": float("inf"),
        "best_epoch": None,
        "best_step": None,
        "val_history": [],
    }
    best_state = {"sd": copy.deepcopy(model.state_dict())}

    if args.loop == "lightning":
        train_wall = _train_lightning(args, model, dm, targets, weights, info, best_state)
    else:
        train_wall = _train_plain(args, model, dm, targets, weights, info, best_state, _atoms_collate_fn)

    info["epochs"] = info["train_frames"] / n_train  # fractional epochs (each epoch = all training frames)
    model.load_state_dict(best_state["sd"])
    model.eval()

    # ---- test
    t0 = time.perf_counter()
    test = evaluate(model, dm.test_dataloader(), targets)
    t_test = time.perf_counter() - t0

    if args.save_model:
        os.makedirs(os.path.dirname(os.path.abspath(args.save_model)) or ".", exist_ok=True)
        model.do_postprocessing = True
        torch.save(model, args.save_model)  # same as AtomisticTask.save_model: full module pickle

    frames_per_s = info["train_frames"] / train_wall if train_wall > 0 else float("nan")
    frames_per_s_steps = (
        info["train_frames"] / info["train_step_time_s"] if info["train_step_time_s"] > 0 else float("nan")
    )
    result = {
        "tool": "schnetpack",
        "subcommand": "train",
        "versions": versions(),
        "training_path": (
            "schnetpack.task.AtomisticTask + pytorch_lightning.Trainer "
            "(SchNetPack's own training path; AtomsDataModule reads the ASE db and builds "
            "MatScipy neighbour lists per batch, num_workers=0)"
            if args.loop == "lightning"
            else "plain PyTorch loop over schnetpack.model.NeuralNetworkPotential; dataset items "
            "(incl. neighbour lists) pre-loaded into memory before the clock starts"
        ),
        "loop": args.loop,
        "data": os.path.abspath(args.data),
        "split": os.path.abspath(args.split),
        "split_created_contiguous": bool(split["_created"]),
        "n_train": n_train,
        "n_val": len(split["val"]),
        "n_test": len(split["test"]),
        "targets": targets,
        "hyperparameters": {
            "representation": "schnetpack.representation.PaiNN",
            "n_atom_basis": args.n_atom_basis,
            "n_interactions": args.n_interactions,
            "radial_basis": f"schnetpack.nn.radial.BesselRBF(n_rbf={args.n_rbf})",
            "cutoff_A": args.cutoff,
            "cutoff_fn": "schnetpack.nn.cutoff.CosineCutoff",
            "heads": {
                "energy": "Atomwise(sum) + ScaleProperty(per-atom std)"
                if not args.no_energy_std_scale
                else "Atomwise(sum)",
                "forces": "Forces (-dE/dR)",
                "dipole": "DipoleMoment(use_vector_representation=True, correct_charges=True)",
                "polarizability": "Polarizability",
            },
            "energy_standardisation": (
                "RemoveOffsets(remove_mean=True) per-atom mean of training energies; "
                + ("ScaleProperty per-atom std" if not args.no_energy_std_scale else "no std scaling")
            ),
            "loss": "sum_k w_k * MSE_k (eV, eV/A, e*A, A^3)",
            "loss_weights": {t: weights[t] for t in targets},
            "optimizer": "torch.optim.AdamW",
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "batch_size": args.batch_size,
            "lr_schedule": "none (constant)",
            "ema": "none",
            "n_params": count_params(model),
            "dtype": "float32",
        },
        "energy_stats": stats,
        "threads": args.threads,
        "budget_s": args.budget_s,
        "budget_counts": "training steps + per-epoch validation (whole training loop wall time)",
        "data_conversion_s": t_convert,
        "data_setup_s": t_setup,
        "train_wall_s": train_wall,
        "train_step_time_s": info["train_step_time_s"],
        "val_time_s": info["val_time_s"],
        "epochs_completed": info["epochs"],
        "optimizer_steps": info["steps"],
        "train_frames_processed": info["train_frames"],
        "train_frames_per_s": frames_per_s,
        "train_frames_per_s_steps_only": frames_per_s_steps,
        "train_frames_per_s_steps_only_definition": (
            "training frames / summed time of the optimizer steps (forward, loss, backward, AdamW step); "
            "excludes validation and, for --loop lightning, fetching batches from the ASE db + neighbour lists"
        ),
        "best_val_loss": info["best_val_loss"],
        "best_epoch": info["best_epoch"],
        "val_history": info["val_history"],
        "test_eval_s": t_test,
        "test": test,
        "saved_model": os.path.abspath(args.save_model) if args.save_model else None,
    }
    write_json(args.out, result)

    rows = [
        ("training path", args.loop),
        ("threads", args.threads),
        ("train frames / val / test", f"{n_train} / {len(split['val'])} / {len(split['test'])}"),
        ("budget (s)", args.budget_s),
        ("train wall (s)", train_wall),
        ("epochs / steps", f"{info['epochs']:.2f} / {info['steps']}"),
        ("frames/s (whole loop)", frames_per_s),
        ("frames/s (optimizer steps only)", frames_per_s_steps),
        ("best val loss", info["best_val_loss"]),
    ]
    for t in targets:
        m = test[t]
        if t == "energy":
            rows.append(("test MAE energy (kcal/mol | eV)", f"{m['mae_kcal_mol']:.4f} | {m['mae']:.5f}"))
        elif t == "forces":
            rows.append(("test MAE forces (kcal/mol/A | eV/A)", f"{m['mae_kcal_mol']:.4f} | {m['mae']:.5f}"))
        elif t == "dipole":
            rows.append(("test MAE dipole (e*A)", f"{m['mae']:.5f}"))
        else:
            rows.append(("test MAE polarizability (A^3)", f"{m['mae']:.5f}"))
    print_table(f"SchNetPack PaiNN train: {os.path.basename(args.data)}", rows)
    print(f"wrote {args.out}")
    tmp.cleanup()


class _BudgetCallbackFactory:
    """Builds a Lightning callback (imported lazily) for the wall-clock budget and best-val tracking."""

    @staticmethod
    def make(budget_s, info, best_state, n_train, max_epochs):
        import pytorch_lightning as pl

        class BudgetCallback(pl.Callback):
            def __init__(self):
                self.t_start = None
                self.t_end = None
                self.t_val = None
                self.t_batch = None

            def on_train_start(self, trainer, pl_module):
                self.t_start = time.perf_counter()

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                self.t_batch = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                now = time.perf_counter()
                info["train_step_time_s"] += now - self.t_batch
                info["steps"] += 1
                info["train_frames"] += int(batch["_n_atoms"].shape[0])
                if now - self.t_start >= budget_s:
                    trainer.should_stop = True  # Lightning validates once more, then stops

            def on_validation_start(self, trainer, pl_module):
                self.t_val = time.perf_counter()

            def on_validation_end(self, trainer, pl_module):
                info["val_time_s"] += time.perf_counter() - self.t_val
                vl = trainer.callback_metrics.get("val_loss")
                if vl is None:
                    return
                vl = float(vl)
                info["val_history"].append(
                    {"step": info["steps"], "val_loss": vl, "t_s": time.perf_counter() - self.t_start}
                )
                if vl < info["best_val_loss"]:
                    info["best_val_loss"] = vl
                    info["best_epoch"] = trainer.current_epoch
                    info["best_step"] = info["steps"]
                    best_state["sd"] = copy.deepcopy(pl_module.model.state_dict())

            def on_train_end(self, trainer, pl_module):
                self.t_end = time.perf_counter()

        return BudgetCallback()


def _train_lightning(args, model, dm, targets, weights, info, best_state) -> float:
    import pytorch_lightning as pl
    import schnetpack as spk
    import torch

    task = spk.task.AtomisticTask(
        model=model,
        outputs=make_task_outputs(targets, weights),
        optimizer_cls=torch.optim.AdamW,
        optimizer_args={"lr": args.lr, "weight_decay": args.weight_decay},
    )
    cb = _BudgetCallbackFactory.make(args.budget_s, info, best_state, len(dm.train_idx), args.max_epochs)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=args.max_epochs,
        min_epochs=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        inference_mode=False,
        callbacks=[cb],
        check_val_every_n_epoch=1,
        deterministic=False,
    )
    trainer.fit(task, datamodule=dm)
    wall = cb.t_end - cb.t_start
    return wall


def _loss(pred, batch, targets, weights):
    import torch.nn.functional as F

    loss = 0.0
    for t in targets:
        k = SPK_KEY[t]
        loss = loss + weights[t] * F.mse_loss(pred[k], batch[k])
    return loss


def _train_plain(args, model, dm, targets, weights, info, best_state, collate) -> float:
    import torch

    # pre-load every item once (ASE-db read + transforms incl. neighbour list) -- not timed
    train_items = [dm.train_dataset[i] for i in range(len(dm.train_dataset))]
    val_items = [dm.val_dataset[i] for i in range(len(dm.val_dataset))]
    val_batches = [
        collate(val_items[i : i + args.eval_batch_size]) for i in range(0, len(val_items), args.eval_batch_size)
    ]
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    model.do_postprocessing = False
    gen = torch.Generator().manual_seed(args.seed)
    t_start = time.perf_counter()
    done = False
    epoch = 0
    while not done and (args.max_epochs < 0 or epoch < args.max_epochs):
        model.train()
        perm = torch.randperm(len(train_items), generator=gen).tolist()
        for b in range(0, len(perm), args.batch_size):
            t0 = time.perf_counter()
            batch = collate([train_items[i] for i in perm[b : b + args.batch_size]])  # fresh tensors
            # targets first: the model writes its outputs into the input dict under the same keys
            tgt = {SPK_KEY[t]: batch[SPK_KEY[t]] for t in targets}
            opt.zero_grad(set_to_none=True)
            pred = model(batch)
            loss = _loss(pred, tgt, targets, weights)
            loss.backward()
            opt.step()
            now = time.perf_counter()
            info["train_step_time_s"] += now - t0
            info["steps"] += 1
            info["train_frames"] += int(batch["_n_atoms"].shape[0])
            if now - t_start >= args.budget_s:
                done = True
                break
        if not done:
            epoch += 1
        # validation (loss averaged over frames, like Lightning's batch-size-weighted val_loss)
        tv = time.perf_counter()
        model.eval()
        tot, n = 0.0, 0
        for vb in val_batches:
            pred = model(dict(vb))  # copy: the model writes its outputs into the input dict
            nb = int(vb["_n_atoms"].shape[0])
            tot += float(_loss(pred, vb, targets, weights).detach()) * nb
            n += nb
        vl = tot / max(n, 1)
        info["val_time_s"] += time.perf_counter() - tv
        info["val_history"].append({"step": info["steps"], "val_loss": vl, "t_s": time.perf_counter() - t_start})
        if vl < info["best_val_loss"]:
            info["best_val_loss"] = vl
            info["best_epoch"] = epoch
            info["best_step"] = info["steps"]
            best_state["sd"] = copy.deepcopy(model.state_dict())
    return time.perf_counter() - t_start


def evaluate(model, loader, targets) -> Dict[str, Dict[str, float]]:
    """Component-wise MAE / RMSE over the loader (predictions without post-processing vs the
    mean-removed targets of the same pipeline, so the energy offset cancels)."""
    import torch

    model.eval()
    pp = model.do_postprocessing
    model.do_postprocessing = False
    abs_err = {t: [] for t in targets}
    for batch in loader:
        pred = model(dict(batch))  # copy: the model writes its outputs into the input dict
        for t in targets:
            k = SPK_KEY[t]
            e = (pred[k].detach().double() - batch[k].double()).reshape(-1)
            abs_err[t].append(e)
    model.do_postprocessing = pp
    out = {}
    for t in targets:
        e = torch.cat(abs_err[t])
        mae = float(e.abs().mean())
        rmse = float(torch.sqrt((e**2).mean()))
        unit = {"energy": "eV", "forces": "eV/A", "dipole": "e*A", "polarizability": "A^3"}[t]
        m = {
            "mae": mae,
            "rmse": rmse,
            "unit": unit,
            "mae_definition": {
                "energy": "per molecule",
                "forces": "per Cartesian component",
                "dipole": "per Cartesian component",
                "polarizability": "per tensor component (9 per molecule)",
            }[t],
        }
        if t in ("energy", "forces"):
            m["mae_kcal_mol"] = mae / KCAL_PER_MOL_TO_EV
            m["rmse_kcal_mol"] = rmse / KCAL_PER_MOL_TO_EV
            m["unit_kcal"] = "kcal/mol" if t == "energy" else "kcal/mol/A"
        out[t] = m
    return out


# ----------------------------------------------------------------------------- md
def cmd_md(args) -> None:
    import torch

    set_threads(args.threads)
    import ase.io
    import schnetpack as spk
    import schnetpack.transform as trn
    from schnetpack import md
    from schnetpack.md.calculators import SchNetPackCalculator
    from schnetpack.md.neighborlist_md import NeighborListMD
    from schnetpack.md.simulation_hooks import LangevinThermostat, SimulationHook

    torch.manual_seed(args.seed)
    atoms = ase.io.read(args.pdb)
    atoms.set_pbc(False)
    atoms.set_cell(np.zeros((3, 3)))

    tmp = tempfile.TemporaryDirectory(prefix="spk_md_")
    if args.model == "untrained":
        model = build_model(["energy", "forces"], args.n_atom_basis, args.n_interactions, args.n_rbf, args.cutoff)
        # An AddOffsets whose mean never came from a datamodule holds a shape-(1,) buffer, which
        # SchNetPackCalculator's log message cannot format (TypeError in schnetpack 2.2.0); a trained
        # model holds a 0-d mean. Give the untrained model a 0-d zero mean as well.
        for pp in model.postprocessors:
            if isinstance(pp, trn.AddOffsets):
                pp.mean = torch.zeros((), dtype=pp.mean.dtype)
        model_file = os.path.join(tmp.name, "untrained_model.pt")
        torch.save(model, model_file)
        model_desc = (
            f"untrained PaiNN (n_atom_basis={args.n_atom_basis}, n_interactions={args.n_interactions}, "
            f"BesselRBF({args.n_rbf}), cutoff {args.cutoff} A), energy+forces heads"
        )
    else:
        model_file = args.model
        model_desc = f"trained model {os.path.abspath(args.model)}"

    nbl_cls = {
        "ase": trn.ASENeighborList,
        "matscipy": trn.MatScipyNeighborList,
        "torch": trn.TorchNeighborList,
        "vesin": trn.VesinNeighborList,
    }[args.nbl]
    cutoff = args.cutoff
    if args.model != "untrained":
        m = spk.utils.load_model(model_file, device="cpu")
        cutoff = float(m.representation.cutoff)
        del m
    neighbor_list = NeighborListMD(cutoff=cutoff, cutoff_shell=args.cutoff_shell, base_nbl=nbl_cls)
    calculator = SchNetPackCalculator(
        model_file=model_file,
        force_key="forces",
        energy_unit="eV",
        position_unit="Angstrom",
        neighbor_list=neighbor_list,
        energy_key="energy",
        required_properties=[],
    )
    system = md.System()
    system.load_molecules(atoms, n_replicas=1, position_unit_input="Angstrom")
    md.MaxwellBoltzmannInit(args.temperature, remove_translation=True, remove_rotation=True).initialize_system(system)
    integrator = md.integrators.VelocityVerlet(time_step=args.timestep_fs)
    thermostat = LangevinThermostat(temperature_bath=args.temperature, time_constant=args.tau_fs)

    class StepTimer(SimulationHook):
        """Records a perf_counter timestamp at the end of every MD step."""

        def __init__(self):
            super().__init__()
            self.stamps = []

        def on_simulation_start(self, simulator):
            self.stamps.append(time.perf_counter())

        def on_step_finalize(self, simulator):
            self.stamps.append(time.perf_counter())

    timer = StepTimer()
    simulator = md.Simulator(system, integrator, calculator, simulator_hooks=[thermostat, timer], progress=False)
    dtype = {32: torch.float32, 64: torch.float64}[args.precision]
    simulator = simulator.to(dtype).to("cpu")

    total_steps = args.warmup + args.steps
    t0 = time.perf_counter()
    simulator.simulate(total_steps)
    t_total = time.perf_counter() - t0
    dts = np.diff(np.asarray(timer.stamps)) * 1e3  # ms per step; stamps[0] = after initial force call
    timed = dts[args.warmup :]
    temperature_end = float(system.temperature.mean())
    n_pairs = int(calculator._generate_input(system)["_idx_i"].shape[0])

    # ---- bare model call: SchNetPack model forward + forces on one structure (inputs prebuilt,
    #      neighbour list excluded), and calculator.calculate() (neighbour list + model + unit handling)
    inputs = calculator._generate_input(system)
    model = calculator.model

    def one_call():
        inp = {k: (v.detach().clone() if v.dtype.is_floating_point else v) for k, v in inputs.items()}
        out = model(inp)
        return out["forces"]

    for _ in range(args.call_warmup):
        one_call()
    call_ms = []
    for _ in range(args.call_repeats):
        t = time.perf_counter()
        one_call()
        call_ms.append((time.perf_counter() - t) * 1e3)
    calc_ms = []
    for _ in range(args.call_repeats):
        t = time.perf_counter()
        calculator.calculate(system)
        calc_ms.append((time.perf_counter() - t) * 1e3)

    def q(a, p):
        return float(np.percentile(a, p))

    result = {
        "tool": "schnetpack",
        "subcommand": "md",
        "versions": versions(),
        "pdb": os.path.abspath(args.pdb),
        "n_atoms": len(atoms),
        "model": model_desc,
        "n_params": count_params(model),
        "model_outputs": sorted(model.model_outputs or []),
        "md_driver": (
            "schnetpack.md.Simulator + System + integrators.VelocityVerlet + "
            "simulation_hooks.LangevinThermostat + calculators.SchNetPackCalculator"
        ),
        "neighbor_list": f"NeighborListMD(cutoff={cutoff}, cutoff_shell={args.cutoff_shell}, base_nbl={nbl_cls.__name__})",
        "n_pairs_within_cutoff": n_pairs,
        "precision": f"float{args.precision}",
        "device": "cpu",
        "threads": args.threads,
        "timestep_fs": args.timestep_fs,
        "temperature_K": args.temperature,
        "thermostat_time_constant_fs": args.tau_fs,
        "warmup_steps": args.warmup,
        "timed_steps": int(timed.size),
        "ms_per_step_median": float(np.median(timed)),
        "ms_per_step_mean": float(np.mean(timed)),
        "ms_per_step_p10": q(timed, 10),
        "ms_per_step_p90": q(timed, 90),
        "steps_per_s": 1e3 / float(np.median(timed)),
        "ns_per_day": args.timestep_fs * 1e-6 * 86400 * 1e3 / float(np.median(timed)),
        "model_call_ms_median": float(np.median(call_ms)),
        "model_call_ms_p10": q(call_ms, 10),
        "model_call_ms_p90": q(call_ms, 90),
        "model_call_definition": "calculator.model(inputs): PairwiseDistances + PaiNN + Atomwise + Forces "
        "(autograd), inputs incl. neighbour list prebuilt",
        "calculator_calculate_ms_median": float(np.median(calc_ms)),
        "calculator_calculate_definition": "calculator.calculate(system): NeighborListMD.get_neighbors + "
        "model call + writing forces/energy into the System",
        "call_repeats": args.call_repeats,
        "total_wall_s": t_total,
        "final_temperature_K": temperature_end,
    }
    write_json(args.out, result)
    rows = [
        ("pdb", os.path.basename(args.pdb)),
        ("atoms / pairs", f"{len(atoms)} / {n_pairs}"),
        ("model", "untrained" if args.model == "untrained" else os.path.basename(args.model)),
        ("threads / precision", f"{args.threads} / float{args.precision}"),
        ("warm-up / timed steps", f"{args.warmup} / {timed.size}"),
        ("ms/step median (p10-p90)", f"{np.median(timed):.3f} ({q(timed, 10):.3f}-{q(timed, 90):.3f})"),
        ("model call ms median", float(np.median(call_ms))),
        ("calculator.calculate ms median", float(np.median(calc_ms))),
        (f"ns/day ({args.timestep_fs} fs)", result["ns_per_day"]),
        ("T at end (K)", temperature_end),
    ]
    print_table("SchNetPack MD", rows)
    print(f"wrote {args.out}")
    tmp.cleanup()


# ----------------------------------------------------------------------------- CLI
def cmd_box(args) -> None:
    """Energy and forces of SchNetPack's PaiNN (untrained, float32) for a periodic box: median time of
    timed calls and the growth of the process's maximum resident set (peak memory)."""
    import resource

    import torch

    set_threads(args.threads)
    import ase.io
    import schnetpack.transform as trn

    torch.manual_seed(args.seed)
    atoms = ase.io.read(args.pdb)
    model = build_model(["energy", "forces"], args.n_atom_basis, args.n_interactions, args.n_rbf, args.cutoff).float()
    converter = trn.ASENeighborList(cutoff=args.cutoff)
    inputs = {
        "_atomic_numbers": torch.tensor(atoms.numbers, dtype=torch.long),
        "_positions": torch.tensor(atoms.positions, dtype=torch.float32),
        "_cell": torch.tensor(np.asarray(atoms.cell), dtype=torch.float32).unsqueeze(0),
        "_pbc": torch.tensor(atoms.pbc),
        "_n_atoms": torch.tensor([len(atoms)]),
        "_idx_m": torch.zeros(len(atoms), dtype=torch.long),
    }
    inputs = converter(inputs)
    n_pairs = int(inputs["_idx_i"].shape[0])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for k in range(args.warmup + args.repeats):
        inp = {key: (v.detach().clone() if v.dtype.is_floating_point else v) for key, v in inputs.items()}
        t = time.perf_counter()
        model(inp)["forces"].sum().item()
        if k >= args.warmup:
            times.append(time.perf_counter() - t)
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024.0
    result = {"tool": "schnetpack", "subcommand": "box", "versions": versions(), "n_atoms": len(atoms),
              "n_pairs": n_pairs, "ms_per_call": float(np.median(times) * 1e3), "peak_mem_mb": peak_mb,
              "threads": args.threads, "neighbor_list": "ASENeighborList (built once, not timed)"}  # fmt: skip
    write_json(args.out, result)
    print(json.dumps(result, indent=1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common_model(sp):
        sp.add_argument("--n-atom-basis", type=int, default=128)
        sp.add_argument("--n-interactions", type=int, default=3)
        sp.add_argument("--n-rbf", type=int, default=20)
        sp.add_argument("--cutoff", type=float, default=5.0, help="Angstrom")
        sp.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--out", required=True, help="results JSON")

    t = sub.add_parser("train", help="train SchNetPack PaiNN for a wall-clock budget")
    t.add_argument("--data", required=True, help="painn_deploy .npz data file")
    t.add_argument("--split", required=True, help=".npz with int arrays train/val/test (created if missing)")
    t.add_argument("--n-train", type=int, default=1000, help="only used to create a missing split")
    t.add_argument("--n-val", type=int, default=200, help="only used to create a missing split")
    t.add_argument("--budget-s", type=float, required=True, help="training wall-clock budget (s)")
    t.add_argument("--targets", default="energy,forces,dipole,polarizability")
    t.add_argument("--w-energy", type=float, default=0.05)
    t.add_argument("--w-forces", type=float, default=0.95)
    t.add_argument("--w-dipole", type=float, default=1.0)
    t.add_argument("--w-polarizability", type=float, default=1.0)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--batch-size", type=int, default=10)
    t.add_argument("--eval-batch-size", type=int, default=100)
    t.add_argument("--max-epochs", type=int, default=-1, help="-1 = only the budget limits training")
    t.add_argument(
        "--loop",
        choices=["lightning", "plain"],
        default="lightning",
        help="lightning: SchNetPack's AtomisticTask + Lightning Trainer (default); "
        "plain: plain PyTorch loop over the same SchNetPack model, data pre-loaded",
    )
    t.add_argument(
        "--no-energy-std-scale",
        action="store_true",
        help="do not scale the energy output by the per-atom training std (ScaleProperty)",
    )
    t.add_argument("--save-model", default=None, help="torch.save() the best SchNetPack model here")
    common_model(t)
    t.set_defaults(func=cmd_train)

    m = sub.add_parser("md", help="time SchNetPack's MD driver")
    m.add_argument("--model", default="untrained", help="model file from `train --save-model`, or 'untrained'")
    m.add_argument("--pdb", required=True)
    m.add_argument("--steps", type=int, default=1000, help="timed steps (after --warmup)")
    m.add_argument("--warmup", type=int, default=50)
    m.add_argument("--timestep-fs", type=float, default=0.5)
    m.add_argument("--temperature", type=float, default=300.0)
    m.add_argument("--tau-fs", type=float, default=100.0, help="Langevin time constant (1/friction), fs")
    m.add_argument("--precision", type=int, choices=[32, 64], default=32)
    m.add_argument(
        "--nbl",
        choices=["ase", "matscipy", "torch", "vesin"],
        default="ase",
        help="base neighbour list wrapped by NeighborListMD",
    )
    m.add_argument("--cutoff-shell", type=float, default=2.0, help="NeighborListMD buffer (A)")
    m.add_argument("--call-repeats", type=int, default=200)
    m.add_argument("--call-warmup", type=int, default=20)
    common_model(m)
    m.set_defaults(func=cmd_md)

    b = sub.add_parser("box", help="energy and forces of a periodic box: time and peak memory")
    b.add_argument("--pdb", required=True)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--repeats", type=int, default=3)
    common_model(b)
    b.set_defaults(func=cmd_box)

    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
