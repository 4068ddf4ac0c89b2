"""Physics of the PaiNN potential in float64: symmetry, conservative forces, cutoff smoothness."""

import numpy as np
import pytest
import torch

from painn_deploy.deploy import PaiNNForceField
from painn_deploy.errors import InputError, UnknownElementError
from painn_deploy.model import PaiNNConfig

from ..conftest import random_rotation, small_potential

Z = [6, 6, 8, 1, 1, 1, 1, 1, 1]


@pytest.fixture(scope="module")
def ff():
    return PaiNNForceField(small_potential(), Z, dtype=torch.float64)


@pytest.fixture(scope="module")
def positions_nm(ethanol):
    return torch.tensor(ethanol[1][0] * 0.1)


def props(ff, pos):
    return {k: v.detach() for k, v in ff.properties(pos).items()}


@pytest.mark.parametrize("reflect", [False, True])
def test_rotation_reflection_equivariance(ff, positions_nm, reflect):
    R = torch.tensor(random_rotation(1, reflect))
    a, b = props(ff, positions_nm), props(ff, positions_nm @ R.T)
    assert abs(float(a["energy"] - b["energy"])) < 1e-10 * abs(float(a["energy"]))
    torch.testing.assert_close(b["forces"], a["forces"] @ R.T, rtol=0, atol=1e-10)
    torch.testing.assert_close(b["dipole"], R @ a["dipole"], rtol=0, atol=1e-12)
    torch.testing.assert_close(b["polarizability"], R @ a["polarizability"] @ R.T, rtol=0, atol=1e-12)
    assert float(torch.linalg.norm(a["dipole"])) > 1e-6  # the test would be vacuous for a zero dipole


def test_translation_invariance_and_origin_independent_dipole(ff, positions_nm):
    shift = torch.tensor([0.7, -1.3, 2.1], dtype=torch.float64)
    a, b = props(ff, positions_nm), props(ff, positions_nm + shift)
    assert abs(float(a["energy"] - b["energy"])) < 1e-9
    torch.testing.assert_close(a["forces"], b["forces"], rtol=0, atol=1e-10)
    torch.testing.assert_close(a["dipole"], b["dipole"], rtol=0, atol=1e-12)
    torch.testing.assert_close(a["polarizability"], b["polarizability"], rtol=0, atol=1e-12)


def test_charges_sum_to_zero_eq12_also_origin_independent(positions_nm):
    ff12 = PaiNNForceField(small_potential(dipole_model="eq12"), Z, dtype=torch.float64)
    shift = torch.tensor([3.0, 0.0, -2.0], dtype=torch.float64)
    torch.testing.assert_close(
        props(ff12, positions_nm)["dipole"], props(ff12, positions_nm + shift)["dipole"], rtol=0, atol=1e-12
    )


def test_eq12_and_eq13_differ(positions_nm):
    pot = small_potential()
    ff13 = PaiNNForceField(pot, Z, dtype=torch.float64)
    pot.dipole_head.use_atomic_dipoles = False
    ff12 = PaiNNForceField(pot, Z, dtype=torch.float64)
    assert not torch.allclose(props(ff13, positions_nm)["dipole"], props(ff12, positions_nm)["dipole"])


def test_permutation_invariance(positions_nm):
    perm = [1, 0, 2, 5, 3, 4, 8, 6, 7]  # swap the carbons, permute hydrogens
    pot = small_potential()
    a = props(PaiNNForceField(pot, Z, dtype=torch.float64), positions_nm)
    b = props(PaiNNForceField(pot, [Z[p] for p in perm], dtype=torch.float64), positions_nm[perm])
    assert abs(float(a["energy"] - b["energy"])) < 1e-9
    torch.testing.assert_close(b["forces"], a["forces"][perm], rtol=0, atol=1e-10)
    torch.testing.assert_close(b["dipole"], a["dipole"], rtol=0, atol=1e-12)
    torch.testing.assert_close(b["polarizability"], a["polarizability"], rtol=0, atol=1e-12)


def test_polarizability_symmetric(ff, positions_nm):
    alpha = props(ff, positions_nm)["polarizability"]
    torch.testing.assert_close(alpha, alpha.T, rtol=0, atol=0)


def test_forces_match_finite_differences(ff, positions_nm):
    forces = props(ff, positions_nm)["forces"]
    h = 1e-6
    rng = np.random.default_rng(0)
    for _ in range(6):
        i, k = int(rng.integers(9)), int(rng.integers(3))
        plus, minus = positions_nm.clone(), positions_nm.clone()
        plus[i, k] += h
        minus[i, k] -= h
        fd = -(float(ff(plus)) - float(ff(minus))) / (2 * h)
        assert fd == pytest.approx(float(forces[i, k]), rel=1e-6, abs=1e-6)


def test_smooth_at_cutoff():
    """Energy and forces of a pair are continuous as it crosses the cutoff (5 A = 0.5 nm)."""
    ff = PaiNNForceField(small_potential(), [8, 8], dtype=torch.float64)

    def at(r_nm):
        return props(ff, torch.tensor([[0.0, 0.0, 0.0], [r_nm, 0.0, 0.0]], dtype=torch.float64))

    below, above = at(0.5 - 1e-7), at(0.5 + 1e-7)
    assert abs(float(below["energy"] - above["energy"])) < 1e-8
    assert float(torch.max(torch.abs(below["forces"] - above["forces"]))) < 1e-6
    far, farther = at(0.6), at(0.9)
    assert float(far["energy"]) == float(farther["energy"])  # no interaction beyond the cutoff
    assert float(torch.max(torch.abs(far["forces"]))) == 0.0


def test_coincident_atoms_give_finite_forces():
    ff = PaiNNForceField(small_potential(), [1, 1, 8], dtype=torch.float64)
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.1, 0.0, 0.0]], dtype=torch.float64)
    out = props(ff, pos)
    assert all(bool(torch.all(torch.isfinite(v))) for v in out.values())


def test_unknown_element_is_named():
    with pytest.raises(UnknownElementError, match=r"Cl \(Z=17\)"):
        PaiNNForceField(small_potential(), [6, 17, 1], dtype=torch.float64)


def test_config_rejects_bad_options():
    with pytest.raises(InputError, match="unknown target"):
        PaiNNConfig(elements=(1,), targets=("energy", "charge"))
    with pytest.raises(InputError, match="forces.*needs.*energy"):
        PaiNNConfig(elements=(1,), targets=("forces",))
    with pytest.raises(InputError, match="unknown model hyperparameter"):
        PaiNNConfig.from_dict({"elements": [1], "n_feature": 3})


def test_scripted_equals_eager(ff, positions_nm):
    scripted = torch.jit.script(ff)
    a, b = props(ff, positions_nm), props(scripted, positions_nm)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-12, atol=1e-12)
