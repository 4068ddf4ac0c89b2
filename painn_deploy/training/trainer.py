"""``train(config)``: data -> split -> statistics -> Lightning fit -> best.ckpt, curves, test errors."""

import csv
import logging
import math
import signal
import sys
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.exceptions import SIGTERMException

from .. import data as data_io
from ..deploy.envelope import training_envelope
from ..elements import formula
from ..errors import CheckpointError, DataWarning, InputError, RunInterrupted, TrainingDivergedError
from ..files import check_writable, file_sha256, require_file, write_json
from ..model import PaiNNConfig, PaiNNPotential
from ..model.checkpoint import load_checkpoint, potential_from_record
from ..spectra.plots import unicode_units
from ..structures import fragment_index
from ..units import MODEL_UNITS, NM_PER_ANGSTROM
from .batching import FrameTensors, predict_batch
from .checkpoint import atomic_torch_save, painn_record
from .config import TrainConfig
from .task import PaiNNTask


class _NoAdvertisements(logging.Filter):
    """Drops Lightning's tips that advertise its cloud services: noise in a training log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_NoAdvertisements())

CURVES = {
    "train_loss": "training",
    "val_loss": "validation",
    "val_loss_smoothed": "validation, smoothed (picks best.ckpt)",
}


def _check_same_data(record: dict, data: data_io.MoleculeDataset, last: Path) -> None:
    """--resume continues on the data the run started with, read in the same units."""
    started = record.get("data") or {}
    if started.get("sha256") and data.sha256 and started["sha256"] != data.sha256:
        raise InputError(
            f"--resume: {data.source} is not the file the run in {last.parent} started with (its SHA-256 differs); "
            f"give that file, or start a new run in another --output"
        )
    then = started.get("units") or asdict(data.units)  # (no units recorded: nothing to compare)
    now = asdict(data.units)
    changed = [f"{k} {then[k]} -> {now[k]}" for k in now if then.get(k) != now[k]]
    if changed:
        raise InputError(
            f"--resume would read {data.source} in other units than the run started with ({', '.join(changed)}); "
            f"give the original ones with --length-unit / --energy-unit / --force-unit / --dipole-unit / "
            f"--polarizability-unit"
        )


#: What --resume may change: how long and on what hardware the run goes on, and where its data file now is
#: (checked by its SHA-256).  Every other option shapes the model, its split or its optimisation.
RESUME_MAY_CHANGE = {"max_epochs", "max_time_s", "early_stopping_patience", "accelerator", "devices", "num_nodes",
                     "strategy", "num_workers", "progress_bar", "data", "output", "resume",
                     # the units as read are compared by _check_same_data (a unit given or left to the format alike)
                     "length_unit", "energy_unit", "force_unit", "dipole_unit", "polarizability_unit"}  # fmt: skip


def _check_resume(record: dict, cfg: TrainConfig, data: data_io.MoleculeDataset, last: Path) -> None:
    """--resume continues the run as it started: the same data, read alike, the same options (but
    :data:`RESUME_MAY_CHANGE`), and more epochs than it has trained."""
    _check_same_data(record, data, last)
    if "molecules" not in record and max(fragment_index(data.atomic_numbers, data.positions[0] * NM_PER_ANGSTROM)) > 0:
        raise InputError(
            f"--resume: the run in {last.parent} trained its dipole and polarizability heads on whole frames (it "
            "predates heads per molecule), and its frames hold several molecules: resuming would change what they "
            "learn. Start a new run in another --output"
        )
    started, now = record.get("train_config") or {}, cfg.as_dict()

    def plain(value):
        if isinstance(value, (tuple, list)):
            return list(value)
        return {"32-true": "32", "64-true": "64"}.get(value, value) if isinstance(value, str) else value

    changed = [
        f"{key} {started[key]!r} -> {now[key]!r}"
        for key in now
        if key in started and key not in RESUME_MAY_CHANGE and plain(started[key]) != plain(now[key])
    ]
    if changed:
        raise InputError(
            f"--resume continues the run in {last.parent} as it started, but these options differ: "
            f"{'; '.join(changed)}. Give them as they were (drop the flags that change them: --resume reads "
            f"{last.parent / 'config.yaml'}), or start a new run in another --output"
        )
    done = int(record.get("epoch", -1)) + 1  # (the epoch in which it was saved, counted from 0)
    if cfg.max_epochs <= done:
        raise InputError(
            f"--resume: the run in {last.parent} has trained {done} epochs; give --max-epochs above {done}"
        )


#: Elements that form monatomic ions (Li, Na, K, Rb, Cs, Mg, Ca, Sr, Ba, F, Cl, Br, I).
ION_FORMERS = {3, 11, 19, 37, 55, 12, 20, 38, 56, 9, 17, 35, 53}


def _warn_charged_fragments(data: data_io.MoleculeDataset, molecules: list) -> None:
    """The heads keep each molecule's latent charges neutral: say so when a frame's molecules include a lone
    atom of an ion-forming element, whose charge they cannot give it."""
    z = [int(a) for a in data.atomic_numbers]
    lone = sorted({formula([z[i]]) for i, m in enumerate(molecules) if molecules.count(m) == 1 and z[i] in ION_FORMERS})
    if lone:
        warnings.warn(
            f"the frames of {data.source} hold {max(molecules) + 1} molecules (covalently bonded fragments), among "
            f"them lone {', '.join(lone)} atoms: the dipole and polarizability heads keep the latent charges of each "
            "molecule neutral, so an ion cannot carry its charge and the dipoles of ion pairs will be wrong "
            "(energies and forces are not affected)",
            DataWarning,
            stacklevel=3,
        )


def load_data(cfg: TrainConfig) -> data_io.MoleculeDataset:
    file_units = data_io.FileUnits(
        cfg.length_unit, cfg.energy_unit, cfg.dipole_unit, cfg.polarizability_unit, cfg.force_unit
    )
    data = data_io.load(cfg.data, file_units, cfg.targets)
    data.require(cfg.targets)
    data_io.check_units(data)
    return data


class CheckpointAndCurves(pl.Callback):
    """After each validation: write last.ckpt, best.ckpt when the smoothed validation loss
    improved (both atomically), history.csv and learning_curve.png; with ``report_s``, print the epoch's
    validation errors, at most every ``report_s`` seconds (where no progress bar shows them)."""

    def __init__(self, output: Path, record_extra: dict, report_s: float | None = None):
        self.output = output
        self.record_extra = record_extra
        self.best = math.inf
        self.history: list = []
        self.report_s = report_s
        self.reported = -math.inf

    def state_dict(self):
        return {"best": self.best, "history": self.history}

    def load_state_dict(self, state):
        self.best = state["best"]
        self.history = state["history"]
        # the checkpoint's own epoch got its training loss after the checkpoint was written: history.csv has it
        written = self.output / "history.csv"
        if written.is_file() and self.history:
            with open(written, newline="") as f:
                losses = {int(r["epoch"]): r.get("train_loss") for r in csv.DictReader(f) if r.get("epoch")}
            for row in self.history:
                if "train_loss" not in row and losses.get(row["epoch"]):
                    row["train_loss"] = float(losses[row["epoch"]])

    def _save(self, trainer, pl_module, name):
        ckpt = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        ckpt["painn"] = painn_record(
            pl_module.deployable(), epoch=trainer.current_epoch, processes=_processes(trainer), **self.record_extra
        )
        atomic_torch_save(ckpt, self.output / name)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics.pop("train_loss", None)  # (the previous epoch's: this epoch's comes at its end, on_train_epoch_end)
        row = {"epoch": trainer.current_epoch, "lr": trainer.optimizers[0].param_groups[0]["lr"]}
        row.update(metrics)
        self.history.append(row)
        current = metrics.get("val_loss_smoothed", math.inf)
        if current < self.best:
            self.best = current
            self._save(trainer, pl_module, "best.ckpt")
        self._save(trainer, pl_module, "last.ckpt")
        write_history(self.history, self.output)
        if self.report_s is not None and time.monotonic() - self.reported >= self.report_s:
            self.reported = time.monotonic()
            print(epoch_line(row), flush=True)

    def on_train_epoch_end(self, trainer, pl_module):
        """The epoch's training loss, which Lightning aggregates only after the validation that wrote its row."""
        loss = trainer.callback_metrics.get("train_loss")
        if not trainer.is_global_zero or loss is None or not self.history:
            return
        if self.history[-1]["epoch"] == trainer.current_epoch:
            self.history[-1]["train_loss"] = float(loss)
            write_history(self.history, self.output)


#: Seconds between the epoch lines printed where no progress bar shows the training (a log file, painn-demo)
EPOCH_LINE_EVERY_S = 30.0
#: Ratio of the test to the training frames' force RMS beyond which the split's line says they differ
SPLIT_FORCE_RMS_RATIO = 1.25


def split_summary(data, split: dict, cfg: TrainConfig) -> str:
    """Which frames each split takes, with the force RMS of the training and test frames, and a note where the
    two differ (a file of several temperatures or molecules, of which a contiguous training block sees the first
    only)."""
    rms = {}
    if data.forces is not None:
        rms = {name: float(np.sqrt(np.mean(data.forces[split[name]] ** 2))) for name in ("train", "test")}
    parts = []
    for name, label in (("train", "training frames"), ("val", "validation"), ("test", "test")):
        idx = split[name]
        where = f"{idx[0]}-{idx[-1]}" if cfg.split == "contiguous" and len(idx) else f"{len(idx)}"
        parts.append(f"{label} {where}" + (f" (force RMS {rms[name]:.3g} eV/Angstrom)" if name in rms else ""))
    line = f"split ({cfg.split}" + (f", seed {cfg.seed}" if cfg.split == "random" else "") + "): " + ", ".join(parts)
    ratio = rms["test"] / rms["train"] if rms and rms["train"] > 0 and rms["test"] > 0 else 1.0
    if not 1 / SPLIT_FORCE_RMS_RATIO <= ratio <= SPLIT_FORCE_RMS_RATIO:
        fix = "--split random mixes the file's frames" if cfg.split == "contiguous" else "more --n-train frames help"
        line += (
            f"; the test frames' forces are {max(ratio, 1 / ratio):.2f} times {'larger' if ratio > 1 else 'smaller'}"
            f" than the training frames', so the test errors are on frames unlike those trained on (other "
            f"temperatures or molecules?); {fix}"
        )
    return line


def epoch_line(row: dict) -> str:
    """One line of an epoch's validation: the loss and the mean absolute errors, with their units."""
    maes = [
        f"{key[4:-4]} {row[key]:.4g} {MODEL_UNITS[key[4:-4]]}"
        for key in sorted(row)
        if key.startswith("val_") and key.endswith("_mae") and key[4:-4] in MODEL_UNITS
    ]
    line = f"epoch {row['epoch']}: validation loss {row.get('val_loss', math.nan):.4g}"
    return line + ("; MAE " + ", ".join(maes) if maes else "")


def write_history(history: list, output: Path) -> None:
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    with open(output / "history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    plot_learning_curve(history, output / "learning_curve.png")


def learning_curve_figure(history: list):
    """The learning curve: losses and one validation MAE panel per target (Agg canvas, Unicode labels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    maes = sorted({k for row in history for k in row if k.startswith("val_") and k.endswith("_mae")})
    fig = Figure(figsize=(4 * (1 + len(maes)), 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 1 + len(maes), squeeze=False)[0]
    epochs = [row["epoch"] for row in history]
    for key, label in CURVES.items():
        axes[0].semilogy(epochs, [row.get(key, np.nan) for row in history], label=label)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss (model units)")
    axes[0].legend(fontsize=7)
    for ax, key in zip(axes[1:], maes):
        target = key[4:-4]
        ax.semilogy(epochs, [row.get(key, np.nan) for row in history])
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation MAE, {target} ({unicode_units(MODEL_UNITS[target])})")
    return fig


def plot_learning_curve(history: list, path: Path) -> None:
    learning_curve_figure(history).savefig(path, dpi=110)


def _processes(trainer) -> dict:
    """How the run was distributed: processes in all, nodes, the Lightning strategy."""
    return {
        "world_size": trainer.world_size,
        "num_nodes": trainer.num_nodes,
        "strategy": type(trainer.strategy).__name__,
    }


def train(cfg: TrainConfig) -> dict:
    """Train a model; returns a summary dict (paths, test errors, processes).  Outputs go to ``cfg.output``.

    In a multi-process (DDP) run every process trains; rank 0 alone writes, evaluates and returns the full
    summary, the others return ``{"global_rank", "world_size", "num_nodes", "strategy"}``.
    """
    output = Path(cfg.output)
    last = output / "last.ckpt"
    # the other processes of a multi-process (DDP) run start once rank 0 is in fit(): rank 0 checks and writes
    main_process = pl.utilities.rank_zero_only.rank == 0
    if main_process:
        if output.exists() and not output.is_dir():
            raise InputError(f"--output {output} exists and is a file; give a folder")
        check_writable(output, "--output")
        if cfg.resume and not last.is_file():
            raise InputError(f"--resume: no {last} to continue from; start a new run without --resume")
        if not cfg.resume and (output / "best.ckpt").exists():
            raise InputError(f"{output} already holds a trained model; use --resume to continue or another --output")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    data = load_data(cfg)
    if main_process and cfg.resume:
        _check_resume(load_checkpoint(last), cfg, data, last)
    if main_process:
        print(f"data: {len(data)} frames of {formula(data.atomic_numbers)} from {cfg.data}; {data.units.describe()}")
    elements = sorted(set(int(z) for z in data.atomic_numbers))
    split = data_io.make_split(len(data), cfg.n_train, cfg.n_val, cfg.split, cfg.seed)
    if main_process:
        print(split_summary(data, split, cfg))
    stats = data_io.statistics(data, split["train"], elements)
    model = PaiNNPotential(
        PaiNNConfig(
            elements=tuple(elements),
            n_features=cfg.n_features,
            n_interactions=cfg.n_interactions,
            n_rbf=cfg.n_rbf,
            cutoff_angstrom=cfg.cutoff_angstrom,
            targets=cfg.targets,
            dipole_model=cfg.dipole_model,
        )
    )
    apply_statistics(model, stats)
    if main_process:  # the data and options are usable: only now is the output folder made
        output.mkdir(parents=True, exist_ok=True)
        (output / "config.yaml").write_text(_yaml(cfg.as_dict()))
        data_io.save_split(split, output / "split.npz")

    frames = FrameTensors(data, elements)
    if main_process:
        _warn_charged_fragments(data, frames.molecules)
    loader = lambda idx, shuffle: torch.utils.data.DataLoader(  # noqa: E731
        idx.tolist(), batch_size=cfg.batch_size, shuffle=shuffle, collate_fn=frames.collate, num_workers=cfg.num_workers
    )
    record_extra = {
        "atomic_numbers": data.atomic_numbers.tolist(),
        "molecules": frames.molecules,  # each atom's molecule: the exported model's, too
        "statistics": stats,
        "split": {k: v.tolist() for k, v in split.items()},
        "data": {
            "path": str(Path(cfg.data).resolve()),
            "sha256": data.sha256,
            "frames": len(data),
            "units": asdict(data.units),
        },
        "train_config": cfg.as_dict(),
        "example_frames_angstrom": data.positions[split["train"][:3]].tolist(),
        "training_envelope": dict(
            training_envelope(data.atomic_numbers, data.positions[split["train"]], cfg.cutoff_angstrom),
            source="training data",
            frames=f"the {len(split['train'])} training frames of {Path(cfg.data).resolve()}",
            data_sha256=data.sha256,
        ),
    }
    progress_bar = sys.stderr.isatty() if cfg.progress_bar is None else cfg.progress_bar
    callback = CheckpointAndCurves(output, record_extra, report_s=None if progress_bar else EPOCH_LINE_EVERY_S)
    callbacks = [
        callback,
        pl.callbacks.EarlyStopping(
            "val_loss_smoothed", patience=cfg.early_stopping_patience, check_on_train_epoch_end=False, strict=False
        ),
    ]
    try:  # the hardware options go to Lightning as they are: what it refuses is bad input
        trainer = pl.Trainer(
            max_epochs=cfg.max_epochs,
            max_time={"seconds": cfg.max_time_s} if cfg.max_time_s > 0 else None,
            accelerator=cfg.accelerator,
            devices=cfg.devices,
            num_nodes=cfg.num_nodes,
            strategy=cfg.strategy,
            precision=cfg.precision,
            callbacks=callbacks,
            inference_mode=False,  # validation needs autograd for forces
            enable_checkpointing=False,
            logger=pl.loggers.CSVLogger(str(output), name="logs"),
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            # (Lightning warns when an epoch has fewer batches than this)
            log_every_n_steps=max(1, min(10, math.ceil(cfg.n_train / cfg.batch_size))),
            gradient_clip_val=None,
        )
    except (MisconfigurationException, ValueError, TypeError) as exc:
        raise InputError(
            f"Lightning refused the hardware options (--accelerator {cfg.accelerator}, --devices {cfg.devices}, "
            f"--strategy {cfg.strategy}, --num-nodes {cfg.num_nodes}, --precision {cfg.precision}): {exc}"
        ) from None
    task = PaiNNTask(model, cfg.as_dict())
    t0 = time.perf_counter()
    sigint = signal.getsignal(signal.SIGINT)  # (Lightning ignores Ctrl-C after the first: restored below)
    try:
        trainer.fit(
            task, loader(split["train"], True), loader(split["val"], False), ckpt_path=str(last) if cfg.resume else None
        )
    except SystemExit as exc:  # Lightning's answer to Ctrl-C (exit 1) and to SIGTERM (SIGTERMException)
        signum = signal.SIGTERM if isinstance(exc, SIGTERMException) else signal.SIGINT
        kept = (
            "last.ckpt holds the last finished validation and best.ckpt the best"
            if last.is_file()
            else "no validation finished yet, so there is nothing to resume from"
        )
        raise RunInterrupted(
            f"training stopped by {signal.Signals(signum).name} in epoch {trainer.current_epoch}; {kept}. Continue "
            f"with the same command and --resume",
            signum,
        ) from None
    finally:
        signal.signal(signal.SIGINT, sigint)
    train_seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:  # rank 0 evaluates and reports
        return {"global_rank": trainer.global_rank, **_processes(trainer)}
    best = output / "best.ckpt"
    diverged = [row["epoch"] for row in callback.history if not math.isfinite(row.get("val_loss", 0.0))]
    if diverged:
        where = "best.ckpt holds the best epoch before it" if best.is_file() else "no checkpoint was worth keeping"
        raise TrainingDivergedError(
            f"the validation loss became NaN or infinite in epoch {diverged[0]} and training stopped ({where}): the "
            f"training diverged. Lower --lr (now {cfg.lr:g}), or check the data"
        )
    if not best.is_file():
        raise InputError("training stopped before the first validation; no checkpoint was written")
    test = evaluate(best, data, split["test"])
    record_ckpt = torch.load(best, map_location="cpu", weights_only=False)
    record_ckpt["painn"]["test_errors"] = test
    atomic_torch_save(record_ckpt, best)
    summary = {
        "best_checkpoint": str(best),
        "epochs": trainer.current_epoch,
        "train_seconds": train_seconds,
        "train_frames_per_second": trainer.current_epoch * len(split["train"]) / max(train_seconds, 1e-9),
        "train_batches_per_epoch_per_process": trainer.num_training_batches,
        **_processes(trainer),
        "global_rank": 0,
        "n_test": len(split["test"]),
        "test_errors": test,
    }
    write_json(output / "summary.json", summary, indent=2)
    return summary


def apply_statistics(model: PaiNNPotential, stats: dict) -> None:
    with torch.no_grad():
        if model.energy_head is not None and "element_energies" in stats:
            model.energy_head.element_energies.copy_(torch.tensor(stats["element_energies"]))
            model.energy_head.scale.fill_(stats["energy_scale"])
        if model.polarizability_head is not None and "polarizability_isotropic_mean" in stats:
            model.polarizability_head.isotropic_mean.fill_(stats["polarizability_isotropic_mean"])
            model.polarizability_head.scale.fill_(stats["polarizability_scale"])


def predict(
    potential: PaiNNPotential, data: data_io.MoleculeDataset, indices, batch_size: int = 50, molecules=None
) -> dict:
    """Predictions (model units) of ``potential`` (any dtype) on frames ``indices``; ``molecules``: each atom's,
    as in training (default: the covalent fragments of the first frame, :class:`FrameTensors`)."""
    dtype = next(potential.parameters()).dtype
    frames = FrameTensors(data, potential.config.elements, dtype=dtype, molecules=molecules)
    out: dict = {}
    for start in range(0, len(indices), batch_size):
        b = frames.collate(np.asarray(indices[start : start + batch_size]))
        res = predict_batch(potential, b, with_forces="energy" in potential.config.targets, training=False)
        if "forces" in res:
            res["forces"] = res["forces"].reshape(b["frames"], -1, 3)
        for k, v in res.items():
            out.setdefault(k, []).append(v.detach().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate(checkpoint, data: data_io.MoleculeDataset, indices) -> dict:
    """Test errors {target: {mae, rmse, unit}} in model units of a checkpoint on frames ``indices``."""
    record = load_checkpoint(checkpoint)
    # (a checkpoint without molecules was trained with one molecule per frame)
    molecules = record.get("molecules") or [0] * len(data.atomic_numbers)
    potential = potential_from_record(record)
    pred = predict(potential, data, indices, molecules=molecules)
    errors = {}
    for t in potential.config.targets:
        ref = data.target(t)
        if ref is None or t not in pred:
            continue
        err = pred[t] - ref[np.asarray(indices)]
        errors[t] = {
            "mae": float(np.mean(np.abs(err))),
            "rmse": float(np.sqrt(np.mean(err**2))),
            "unit": MODEL_UNITS[t],
        }
    return errors


def checkpoint_test_errors(checkpoint, data: str | None = None) -> dict:
    """Test errors (as :func:`evaluate`) of a painn-train checkpoint on the test split saved in it, read from
    ``data`` or, by default, from where painn-train read the data (the absolute path it recorded).  Data other than
    the checkpoint's (SHA-256) are refused: the saved split would mix training frames into the test set."""
    record = load_checkpoint(checkpoint)
    if "train_config" not in record or "split" not in record:
        raise CheckpointError(
            f"{checkpoint} stores no training configuration and split; was it written by painn-train?"
        )
    cfg = TrainConfig.from_mapping(record["train_config"], source=f"{checkpoint} (its training configuration)")
    recorded = (record.get("data") or {}).get("path", cfg.data)
    if data is None and not Path(recorded).is_file():
        raise InputError(
            f"the data {checkpoint} was trained on is no longer at {recorded}; give its current path with --data"
        )
    path = require_file(data or recorded, "data file", "give the data the model was trained on with --data")
    trained_on = (record.get("data") or {}).get("sha256")
    if trained_on and file_sha256(path) != trained_on:
        raise InputError(
            f"{path} is not the data {checkpoint} was trained on (its SHA-256 differs): the saved test split would "
            f"take other frames, some of them training frames. Give the original file with --data"
        )
    return evaluate(checkpoint, load_data(replace(cfg, data=str(path))), np.asarray(record["split"]["test"]))


def _yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)
