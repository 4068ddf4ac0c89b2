"""The saved artefact run on PyTorch's meta device, which has shapes but no data: any value read back to the host
(``.item()``, ``bool(tensor)``, a data-dependent shape) and any tensor made on the CPU instead of on the inputs'
device fails there.  A CPU guard of what a CUDA step and its graph capture need, for the TorchScript that
openmm-torch loads (``torch.export`` of the eager module is tested in test_module.py)."""

import io

import pytest
import torch

from painn_deploy.deploy import ForcesOutput, PaiNNForceField
from painn_deploy.md.rpmd import normal_modes

from ..conftest import small_potential
from .test_module import ETHANOL_Z, ethanol_frames, small_box, static_module


def on_meta(module):
    """``module`` scripted, saved and loaded onto the meta device (as ``torch.jit.load(path, map_location=...)``)."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    buffer.seek(0)
    return torch.jit.load(buffer, map_location="meta")


def meta(x):
    return None if x is None else x.to("meta")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fixed_shape_paths_run_on_a_device_without_data(dtype):
    pot = small_potential(n_features=8)
    molecule = PaiNNForceField(pot, ETHANOL_Z, dtype=torch.float64)
    frames = ethanol_frames(4).to(dtype)
    loaded = on_meta(molecule)
    for pos in (frames[0], frames):
        energy, forces, s, v = loaded.energy_forces_features(meta(pos), None)
        assert energy.device.type == "meta" and energy.dtype == torch.float64 and forces.dtype == dtype
        assert forces.shape == pos.shape and s.shape == pos.shape[:-1] + (8,)
        assert set(loaded.responses(s, v, meta(pos))) == {"dipole", "polarizability"}
    # beads of two ring polymers in their normal modes, one evaluation (TorchForce with setOutputsForces)
    rings = ForcesOutput(molecule, 4, torch.tensor(normal_modes(2)))
    energy, forces = on_meta(rings)(meta(frames.reshape(-1, 3)), None)
    assert energy.shape == () and forces.shape == (36, 3) and forces.device.type == "meta"

    z, frame, box = small_box(n_side=3)
    static = static_module(pot, z, frame, box, capacity=20000)
    energy, forces, _, _ = on_meta(static).energy_forces_features(meta(frame.expand(2, -1, -1).to(dtype)), meta(box))
    assert energy.shape == (2,) and forces.shape == (2,) + frame.shape


def test_the_meta_device_finds_what_it_guards_against():
    """The cell list's shapes depend on the positions: it cannot run without data (the guard above would see a
    fixed-shape path that turned data-dependent)."""
    pot = small_potential(n_features=8)
    z, frame, box = small_box(n_side=3)
    cell_list = PaiNNForceField(pot, z, True, "cell_list", torch.float64)
    with pytest.raises(Exception):  # noqa: B017 (torch's own error, whichever the first data-dependent op gives)
        on_meta(cell_list).energy_forces_features(meta(frame), meta(box))
