"""The Lightning module: losses, metrics, optimiser and schedule of the paper's recipe."""

import math

import lightning.pytorch as pl
import torch
from torch.optim.swa_utils import AveragedModel

from ..model import PaiNNPotential
from .batching import predict_batch


def ema_with_warmup(decay: float):
    """AveragedModel's update of an exponential moving average whose decay grows as (1 + n) / (10 + n) towards
    ``decay`` over its first n updates (as TensorFlow's ExponentialMovingAverage with num_updates): a short training
    averages its recent weights, not its first ones (with 0.999 from the start, 300 steps leave 74% of the random
    initial weights in the average)."""

    @torch.no_grad()
    def update(averaged: list, current: list, num_averaged) -> None:
        n = float(num_averaged)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1.0 + n) / (10.0 + n)))

    return update


class PaiNNTask(pl.LightningModule):
    """Trains a :class:`PaiNNPotential` with weighted MSE losses (model units).

    loss = (1 - rho) MSE(E) + rho MSE(F) + w_mu MSE(mu) + w_alpha MSE(alpha); the learning rate
    is halved when the exponentially smoothed validation loss stops improving.
    """

    def __init__(self, model: PaiNNPotential, train_config: dict):
        super().__init__()
        self.model = model
        self.cfg = train_config
        self.targets = model.config.targets
        self.weights = {
            "energy": 1.0 - train_config["rho"],
            "forces": train_config["rho"],
            "dipole": train_config["dipole_weight"],
            "polarizability": train_config["polarizability_weight"],
        }
        decay = train_config["ema_decay"]
        self.ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(decay)) if decay > 0 else None
        if self.ema is not None:  # averaged, not trained: no gradients (DDP would wait for them)
            self.ema.requires_grad_(False)
        self.smoothed_val_loss = math.nan
        self._val_sums: dict = {}

    def deployable(self) -> PaiNNPotential:
        """The weights to save and export: the EMA weights when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def _predict(self, model, batch, training: bool) -> dict:
        return predict_batch(model, batch, "forces" in self.targets, training)

    def _loss(self, out, batch):
        losses = {t: torch.mean((out[t] - batch[t]) ** 2) for t in self.targets}
        return sum(self.weights[t] * losses[t] for t in self.targets), losses

    def training_step(self, batch, batch_idx):
        out = self._predict(self.model, batch, training=True)
        loss, _ = self._loss(out, batch)
        self.log(
            "train_loss",
            loss,
            prog_bar=True,
            on_step=False,
            on_epoch=True,
            batch_size=batch["frames"],
            sync_dist=True,
        )
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def validation_step(self, batch, batch_idx):
        with torch.enable_grad():
            out = self._predict(self.deployable(), batch, training=False)
        loss, _ = self._loss({k: v.detach() for k, v in out.items()}, batch)
        n = batch["frames"]
        sums = self._val_sums
        sums["loss"] = sums.get("loss", 0.0) + float(loss) * n
        sums["n"] = sums.get("n", 0) + n
        for t in self.targets:
            err = (out[t].detach() - batch[t]).double()
            sums[f"{t}_abs"] = sums.get(f"{t}_abs", 0.0) + float(err.abs().mean()) * n
            sums[f"{t}_sq"] = sums.get(f"{t}_sq", 0.0) + float((err**2).mean()) * n

    def on_validation_epoch_end(self):
        sums, self._val_sums = self._val_sums, {}
        if not sums or self.trainer.sanity_checking:  # (Lightning's check of the untrained model is not a result)
            return
        if self.trainer.world_size > 1:  # every process gets the sums over all validation frames
            keys = sorted(sums)
            total = self.trainer.strategy.reduce(
                torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64, device=self.device), reduce_op="sum"
            )
            sums = dict(zip(keys, total.tolist()))
        n = sums["n"]
        val_loss = sums["loss"] / n
        s = self.cfg["smoothing"]
        self.smoothed_val_loss = (
            val_loss if math.isnan(self.smoothed_val_loss) else s * self.smoothed_val_loss + (1 - s) * val_loss
        )
        metrics = {"val_loss": val_loss}
        for t in self.targets:
            metrics[f"val_{t}_mae"] = sums[f"{t}_abs"] / n
            metrics[f"val_{t}_rmse"] = math.sqrt(sums[f"{t}_sq"] / n)
        self.log_dict(metrics, prog_bar=False, sync_dist=True)
        self.log("val_loss_smoothed", self.smoothed_val_loss, prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg["lr"], weight_decay=self.cfg["weight_decay"])
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=self.cfg["lr_factor"], patience=self.cfg["lr_patience"]
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss_smoothed", "strict": False}}

    def on_save_checkpoint(self, checkpoint):
        checkpoint["smoothed_val_loss"] = self.smoothed_val_loss

    def on_load_checkpoint(self, checkpoint):
        self.smoothed_val_loss = checkpoint.get("smoothed_val_loss", math.nan)
