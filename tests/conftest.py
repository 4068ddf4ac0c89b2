"""Shared fixtures: small models and checkpoints made on the fly (no network, no ../shared)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from painn_deploy.model import PaiNNConfig, PaiNNPotential
from painn_deploy.resources import ETHANOL_SUBSET, STRUCTURES

# Small models on a shared 2-core machine: intra-op threads only add contention (and can make an
# evaluation 100x slower when the other core is busy).  Subprocesses inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

ETHANOL_NPZ = ETHANOL_SUBSET
ETHANOL_PDB = STRUCTURES["ethanol"]
ALL_TARGETS = ("energy", "forces", "dipole", "polarizability")


def randomize(model: PaiNNPotential, seed: int = 0) -> PaiNNPotential:
    """Give every parameter and statistic a non-trivial random value (fresh models have zero biases)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (0.5 / max(1, p.shape[-1]) ** 0.5 + 0.05))
        if model.energy_head is not None:
            model.energy_head.element_energies.copy_(torch.randn(model.energy_head.element_energies.shape, generator=g))
    return model


def small_potential(
    targets=ALL_TARGETS, dipole_model="eq13", n_features=16, seed=0, elements=(1, 6, 8)
) -> PaiNNPotential:
    config = PaiNNConfig(
        elements=elements, n_features=n_features, n_interactions=2, n_rbf=8, targets=targets, dipole_model=dipole_model
    )
    return randomize(PaiNNPotential(config), seed).double().eval()


@pytest.fixture(scope="session")
def ethanol():
    d = np.load(ETHANOL_NPZ)
    return d["nuclear_charges"], d["coords"]


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory):
    """A tiny model trained for two epochs on bundled ethanol data (all four heads)."""
    from painn_deploy.training import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(
        data=str(ETHANOL_NPZ), output=str(out), targets=ALL_TARGETS, n_train=40, n_val=10,
        n_features=16, n_interactions=2, n_rbf=8, max_epochs=2, batch_size=10, progress_bar=False,
    )  # fmt: skip
    train(cfg)
    return out / "best.ckpt"


@pytest.fixture(scope="session")
def exported64(trained_checkpoint, tmp_path_factory):
    from painn_deploy.deploy import export

    path = tmp_path_factory.mktemp("export") / "model64.pt"
    export(trained_checkpoint, path, dtype="float64")
    return path


@pytest.fixture(scope="session")
def exported32(trained_checkpoint, tmp_path_factory):
    from painn_deploy.deploy import export

    path = tmp_path_factory.mktemp("export") / "model32.pt"
    export(trained_checkpoint, path, dtype="float32")
    return path


def random_rotation(seed=0, reflect=False) -> np.ndarray:
    from painn_deploy.structures import random_rotation as rotation

    q = rotation(seed)
    return -q if reflect else q


def water_like_box(n_side=4, spacing_nm=0.35, seed=0):
    """A cubic box of n_side^3 rigid ethanol copies at random orientations (nm)."""
    from painn_deploy.structures import molecular_box

    mol = np.load(ETHANOL_NPZ)["coords"][0] * 0.1
    return molecular_box(
        [6, 6, 8, 1, 1, 1, 1, 1, 1], mol, n_side**3, spacing_nm=spacing_nm, seed=seed, min_distance_nm=0
    )


@pytest.fixture(scope="session")
def box_system():
    """A periodic box of 64 ethanol copies (576 atoms) and a small random float64 potential."""
    z, pos, box = water_like_box(n_side=4, spacing_nm=0.42)
    pot = small_potential(n_features=8)
    return pot, z, torch.tensor(pos), torch.tensor(box)


def checkpoint_meta(path: Path) -> dict:
    """The JSON header of a painn-simulate checkpoint."""
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + n])


def simulate_and_kill(args: list, output: Path, min_step: int = 200, timeout_s: float = 240.0):
    """Start painn-simulate with ``args`` in a subprocess and SIGKILL it once its checkpoint in ``output`` has
    reached ``min_step`` and the log already holds a row beyond that checkpoint (work to be redone).
    Returns (checkpoint step, last logged step) at the kill, or None if the run finished first."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with open(output.parent / f"{output.name}.stderr", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "painn_deploy.cli.simulate", *args],
            stdout=subprocess.DEVNULL, stderr=err, env=env,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            chk, log = output / "checkpoint.chk", output / "log.csv"
            if chk.is_file() and log.is_file():
                step = checkpoint_meta(chk)["step"]  # written atomically (os.replace): always whole
                lines = log.read_text().splitlines()
                last = (
                    int(lines[-1].split(",")[0])
                    if len(lines) > 1 and lines[-1].count(",") == lines[0].count(",")  # a whole row
                    else 0
                )
                if step >= min_step and last > step:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    assert proc.returncode == -signal.SIGKILL
                    return checkpoint_meta(chk)["step"], last
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (output.parent / f"{output.name}.stderr").read_text()[-2000:]
    return None
