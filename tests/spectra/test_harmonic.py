"""Tests of the harmonic analysis (painn_deploy.spectra.harmonic) and the painn-harmonic CLI.

Analytic torch models follow the exported-model contract: forward(positions_nm) -> energy
(kJ/mol); properties(positions_nm) -> energy, forces, dipole (e*nm), polarizability (nm^3).
"""

import csv
import json
import math
import re
import warnings
from typing import Dict

import numpy as np
import pytest
import torch

from painn_deploy import units
from painn_deploy.elements import masses_amu
from painn_deploy.errors import InputError
from painn_deploy.spectra.harmonic import HarmonicWarning, external_basis, harmonic_analysis
from painn_deploy.units import IR_KM_PER_MOL_PER_E2_PER_AMU

WN = units.WAVENUMBER_PER_RAD_PER_PS  # cm^-1 per rad/ps


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny tensors: intra-op threads only add contention (100x slower on a busy 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


EXTERNAL_TOL_CM1 = 0.5  # projected-out curvature left by the residual force (fmax 1e-3 kJ/mol/nm)


def _bond_polarizability(d: torch.Tensor, r0: float, a0: float, a1: float, b0: float, b1: float) -> torch.Tensor:
    """(a0 + a1 (r - r0)) 1 + (b0 + b1 (r - r0)) (u u^T - 1/3) for a bond vector d."""
    r = torch.sqrt((d * d).sum())
    u = d / r
    eye = torch.eye(3, dtype=d.dtype, device=d.device)
    return (a0 + a1 * (r - r0)) * eye + (b0 + b1 * (r - r0)) * (torch.outer(u, u) - eye / 3.0)


class Diatomic(torch.nn.Module):
    """E = k/2 (r - r0)^2; dipole q (r_2 - r_1); bond polarizability linear in r."""

    def __init__(self, k=2.0e5, r0=0.113, q=0.3, a=(2e-3, 4e-3), b=(1e-3, 3e-3), dtype=torch.float64):
        super().__init__()
        self.register_buffer("k", torch.tensor(k, dtype=dtype))
        self.r0, self.q, self.a0, self.a1, self.b0, self.b1 = r0, q, a[0], a[1], b[0], b[1]

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        d = positions[1] - positions[0]
        r = torch.sqrt((d * d).sum())
        return 0.5 * self.k * (r - self.r0) ** 2

    @torch.jit.export
    def properties(self, positions: torch.Tensor) -> Dict[str, torch.Tensor]:  # noqa: UP006 (TorchScript)
        if not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        energy = self.forward(positions)
        grads = torch.autograd.grad([energy], [positions], create_graph=True)
        g = grads[0]
        assert g is not None
        d = positions[1] - positions[0]
        return {
            "energy": energy,
            "forces": -g,
            "dipole": self.q * d,
            "polarizability": _bond_polarizability(d, self.r0, self.a0, self.a1, self.b0, self.b1),
        }


class Triatomic(torch.nn.Module):
    """Bent X-Y2 (atom 0 central): two harmonic bonds plus a harmonic angle; point charges for the
    dipole; bond-additive polarizability."""

    def __init__(self, kr=4.5e5, r0=0.0957, ktheta=350.0, theta0=1.824, dtype=torch.float64):
        super().__init__()
        self.register_buffer("kr", torch.tensor(kr, dtype=dtype))
        self.register_buffer("charges", torch.tensor([-0.8, 0.4, 0.4], dtype=dtype))
        self.r0, self.ktheta, self.theta0 = r0, ktheta, theta0
        self.a0, self.a1, self.b0, self.b1 = 1e-3, 5e-3, 5e-4, 8e-3

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        d1 = positions[1] - positions[0]
        d2 = positions[2] - positions[0]
        r1 = torch.sqrt((d1 * d1).sum())
        r2 = torch.sqrt((d2 * d2).sum())
        cross = torch.cross(d1, d2, dim=0)
        theta = torch.atan2(torch.sqrt((cross * cross).sum()), (d1 * d2).sum())
        return (
            0.5 * self.kr * ((r1 - self.r0) ** 2 + (r2 - self.r0) ** 2) + 0.5 * self.ktheta * (theta - self.theta0) ** 2
        )

    @torch.jit.export
    def properties(self, positions: torch.Tensor) -> Dict[str, torch.Tensor]:  # noqa: UP006 (TorchScript)
        if not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        energy = self.forward(positions)
        grads = torch.autograd.grad([energy], [positions], create_graph=True)
        g = grads[0]
        assert g is not None
        pol = _bond_polarizability(positions[1] - positions[0], self.r0, self.a0, self.a1, self.b0, self.b1)
        pol = pol + _bond_polarizability(positions[2] - positions[0], self.r0, self.a0, self.a1, self.b0, self.b1)
        return {
            "energy": energy,
            "forces": -g,
            "dipole": (self.charges[:, None] * positions).sum(dim=0),
            "polarizability": pol,
        }


def _rotation(seed: int) -> np.ndarray:
    from painn_deploy.structures import random_rotation

    return random_rotation(seed)


class EnergyOnly(torch.nn.Module):
    """A model of energy alone: ``properties`` gives the energy and its forces by autograd."""

    def properties(self, p):
        p = p.detach().requires_grad_(True)
        energy = self.forward(p)
        return {"energy": energy, "forces": -torch.autograd.grad(energy, p)[0]}


def _diatomic_geometry(r: float, seed: int = 0) -> np.ndarray:
    rot = _rotation(seed)
    return np.array([[0.0, 0.0, 0.0], [r, 0.0, 0.0]]) @ rot.T + np.array([0.3, -0.2, 1.1])


def _triatomic_geometry(r1: float, r2: float, theta: float, seed: int = 0) -> np.ndarray:
    pos = np.array([[0.0, 0.0, 0.0], [r1, 0.0, 0.0], [r2 * math.cos(theta), r2 * math.sin(theta), 0.0]])
    return pos @ _rotation(seed).T + np.array([1.0, 0.5, -0.4])


# --- diatomic ---------------------------------------------------------------------------------------


def _diatomic_expectations(model: Diatomic, masses):
    mu = masses[0] * masses[1] / (masses[0] + masses[1])
    nu = math.sqrt(float(model.k) / mu) * WN
    ir = IR_KM_PER_MOL_PER_E2_PER_AMU * model.q**2 / mu  # |d mu/dQ|^2 = q^2/mu
    a2, g2 = model.a1**2 / mu * 1e4, model.b1**2 / mu * 1e4  # Angstrom^4/amu
    return nu, ir, 45 * a2 + 7 * g2, 3 * g2 / (45 * a2 + 4 * g2)


def test_diatomic_frequency_intensities_and_projection():
    model = Diatomic()
    numbers = [6, 8]
    masses = masses_amu(numbers)
    res = harmonic_analysis(model, _diatomic_geometry(0.121, seed=3), numbers)  # starts 8 pm stretched
    nu, ir, raman, rho = _diatomic_expectations(model, masses)
    assert res.linear and res.n_modes == 1 and len(res.external_wavenumber_cm1) == 5
    assert np.max(np.abs(res.external_wavenumber_cm1)) < EXTERNAL_TOL_CM1
    assert res.minimization["converged"] and res.max_force_kj_mol_nm < 1e-3
    assert res.wavenumber_cm1[0] == pytest.approx(nu, rel=1e-6)
    # zero-point energy h c nu~ / 2 per mole (6.62607015e-34 J s, 2.99792458e10 cm/s, 6.02214076e23 / mol)
    assert res.zero_point_energy_kj_mol == pytest.approx(0.5 * nu * 6.62607015e-34 * 2.99792458e10 * 6.02214076e20)
    assert res.ir_intensity_km_per_mol[0] == pytest.approx(ir, rel=1e-6)
    assert res.raman_activity_A4_per_amu[0] == pytest.approx(raman, rel=1e-6)
    assert res.depolarization_ratio[0] == pytest.approx(rho, rel=1e-6)
    # reduced mass in the Gaussian convention 1 / sum_i |L_ik|^2 / m_i = sum_i m_i c_i^2 (c: unit
    # Cartesian displacement), m1 m2 (m1 + m2) / (m1^2 + m2^2) for a diatomic
    assert res.reduced_mass_amu[0] == pytest.approx(masses.prod() * masses.sum() / (masses**2).sum(), rel=1e-9)
    # IR intensity is proportional to the squared dipole derivative: doubling q quadruples it
    res2 = harmonic_analysis(Diatomic(q=0.6), res.positions_nm, numbers, minimize=False)
    assert res2.ir_intensity_km_per_mol[0] == pytest.approx(4 * res.ir_intensity_km_per_mol[0], rel=1e-9)
    # the normal mode is a stretch along the bond, momentum conserving
    disp = res.displacements_nm[0]
    bond = res.positions_nm[1] - res.positions_nm[0]
    assert abs(np.dot(disp[1] - disp[0], bond)) == pytest.approx(
        np.linalg.norm(disp[1] - disp[0]) * np.linalg.norm(bond), rel=1e-9
    )
    np.testing.assert_allclose(masses @ disp, 0.0, atol=1e-12)


def test_ir_conversion_factor():
    # 1 (D/Angstrom)^2/amu = 42.2561 km/mol (e.g. Neugebauer et al., J. Comput. Chem. 23, 895 (2002))
    assert IR_KM_PER_MOL_PER_E2_PER_AMU * units.DEBYE_TO_E_ANGSTROM**2 == pytest.approx(42.2561, rel=2e-6)


def test_scripted_module_gives_the_same_result():
    model = Diatomic()
    scripted = torch.jit.script(model)
    pos = _diatomic_geometry(0.118, seed=5)
    a = harmonic_analysis(model, pos, [6, 8])
    b = harmonic_analysis(scripted, pos, [6, 8])
    np.testing.assert_allclose(b.wavenumber_cm1, a.wavenumber_cm1, rtol=1e-10)
    np.testing.assert_allclose(b.ir_intensity_km_per_mol, a.ir_intensity_km_per_mol, rtol=1e-8)
    np.testing.assert_allclose(b.raman_activity_A4_per_amu, a.raman_activity_A4_per_amu, rtol=1e-8)


def test_float32_model_warns_and_is_approximately_right():
    model = Diatomic(dtype=torch.float32)
    with pytest.warns(HarmonicWarning, match="float32"):
        res = harmonic_analysis(model, _diatomic_geometry(0.113, seed=1), [6, 8], fmax_kj_mol_nm=0.5)
    nu, ir, raman, _ = _diatomic_expectations(model, masses_amu([6, 8]))
    assert res.dtype == "float32"
    assert res.wavenumber_cm1[0] == pytest.approx(nu, rel=1e-3)
    assert res.ir_intensity_km_per_mol[0] == pytest.approx(ir, rel=1e-3)


# --- triatomic --------------------------------------------------------------------------------------


def _xy2_wavenumbers(kr, ktheta, r, theta, m_x, m_y):
    """Analytic frequencies of a bent XY2 in the valence force field (Wilson GF method; Herzberg,
    "Infrared and Raman Spectra", sec. II.4): antisymmetric lambda_3 = kr (mu_y + mu_x (1 - cos)),
    symmetric lambda_1 + lambda_2 = kr (mu_y + mu_x (1 + cos)) + 2 ktheta (mu_y + mu_x (1 - cos))/r^2,
    lambda_1 lambda_2 = 2 kr ktheta mu_y (mu_y + 2 mu_x) / r^2 (mu = 1/m)."""
    mx, my = 1.0 / m_x, 1.0 / m_y
    c = math.cos(theta)
    lam3 = kr * (my + mx * (1 - c))
    s = kr * (my + mx * (1 + c)) + 2 * ktheta * (my + mx * (1 - c)) / r**2
    p = 2 * kr * ktheta * my * (my + 2 * mx) / r**2
    disc = math.sqrt(s * s - 4 * p)
    lams = sorted([0.5 * (s - disc), 0.5 * (s + disc), lam3])
    return np.sqrt(lams) * WN


def test_triatomic_frequencies_sum_rules_and_projection():
    model = Triatomic()
    numbers = [8, 1, 1]
    masses = masses_amu(numbers)
    start = _triatomic_geometry(0.1, 0.093, 1.75, seed=11)
    res = harmonic_analysis(model, start, numbers)
    expected = _xy2_wavenumbers(float(model.kr), model.ktheta, model.r0, model.theta0, masses[0], masses[1])
    assert not res.linear and res.n_modes == 3 and len(res.external_wavenumber_cm1) == 6
    assert np.max(np.abs(res.external_wavenumber_cm1)) < EXTERNAL_TOL_CM1
    np.testing.assert_allclose(res.wavenumber_cm1, expected, rtol=1e-6)

    # IR: sum rule over vibrations (Crawford, J. Chem. Phys. 20, 977 (1952)):
    # sum_k |dmu/dQ_k|^2 = 3 sum_i q_i^2/m_i - sum_a |e_a x mu0|^2 / I_a  (principal axes a)
    q = model.charges.numpy()
    pos = res.positions_nm
    com = masses @ pos / masses.sum()
    rc = pos - com
    inertia = sum(m * (np.dot(r, r) * np.eye(3) - np.outer(r, r)) for m, r in zip(masses, rc, strict=True))
    moments, axes = np.linalg.eigh(inertia)
    mu0 = q @ pos
    rot = sum(np.sum(np.cross(axes[:, a], mu0) ** 2) / moments[a] for a in range(3))
    total = 3 * np.sum(q**2 / masses) - rot
    assert res.ir_intensity_km_per_mol.sum() == pytest.approx(IR_KM_PER_MOL_PER_E2_PER_AMU * total, rel=1e-8)

    # Raman: the mean polarizability is rotation and translation invariant, so
    # sum_k a'_k^2 = sum_i |grad_i a|^2 / m_i = a1^2 [(2 + 2 cos theta)/m_X + 2/m_Y]
    d_alpha = res.polarizability_derivatives_A2_per_sqrt_amu
    a_prime = np.trace(d_alpha, axis1=1, axis2=2) / 3
    u1 = (pos[1] - pos[0]) / np.linalg.norm(pos[1] - pos[0])
    u2 = (pos[2] - pos[0]) / np.linalg.norm(pos[2] - pos[0])
    expected_a2 = model.a1**2 * ((2 + 2 * np.dot(u1, u2)) / masses[0] + 2 / masses[1]) * 1e4
    assert np.sum(a_prime**2) == pytest.approx(expected_a2, rel=1e-8)
    # activities are 45 a'^2 + 7 gamma'^2 with gamma'^2 = 3/2 Tr(b'^2)
    b = d_alpha - a_prime[:, None, None] * np.eye(3)
    np.testing.assert_allclose(
        res.raman_activity_A4_per_amu, 45 * a_prime**2 + 7 * 1.5 * (b**2).sum(axis=(1, 2)), rtol=1e-12
    )
    # results do not depend on the orientation of the input
    other = harmonic_analysis(model, _triatomic_geometry(0.1, 0.093, 1.75, seed=99), numbers)
    np.testing.assert_allclose(other.wavenumber_cm1, res.wavenumber_cm1, rtol=1e-7)
    np.testing.assert_allclose(other.ir_intensity_km_per_mol, res.ir_intensity_km_per_mol, rtol=1e-6)
    np.testing.assert_allclose(other.raman_activity_A4_per_amu, res.raman_activity_A4_per_amu, rtol=1e-6)


def test_saddle_point_gives_imaginary_frequency_and_external_basis():
    # angle potential maximum: theta0 = pi is a minimum, but at a bent geometry with a double-well
    # we test instead the sign convention with minimize=False at a stretched non-stationary point of a
    # negative-curvature model: E = -k/2 (r - r0)^2
    class Inverted(Diatomic):
        def forward(self, positions: torch.Tensor) -> torch.Tensor:
            return -super().forward(positions)

    with pytest.warns(HarmonicWarning, match="not at a stationary point|curvature"):
        res = harmonic_analysis(Inverted(), _diatomic_geometry(0.2, seed=2), [6, 8], minimize=False)
    assert res.wavenumber_cm1[0] < 0
    d, linear = external_basis(_triatomic_geometry(0.1, 0.1, 1.8), masses_amu([8, 1, 1]))
    assert not linear and d.shape == (9, 6)
    np.testing.assert_allclose(d.T @ d, np.eye(6), atol=1e-12)
    with pytest.raises(InputError, match="masses"):
        harmonic_analysis(Diatomic(), _diatomic_geometry(0.113), None)
    with pytest.raises(InputError, match="shape"):
        harmonic_analysis(Diatomic(), np.zeros((1, 3)), [6])


# --- command line -------------------------------------------------------------------------------------


def _write_pdb(path, symbols, positions_nm, box_nm=None):
    from openmm import Vec3, unit
    from openmm.app import Element, PDBFile, Topology

    top = Topology()
    chain = top.addChain()
    res = top.addResidue("MOL", chain)
    for i, s in enumerate(symbols):
        top.addAtom(f"{s}{i + 1}", Element.getBySymbol(s), res)
    if box_nm is not None:
        top.setPeriodicBoxVectors([Vec3(box_nm, 0, 0), Vec3(0, box_nm, 0), Vec3(0, 0, box_nm)] * unit.nanometer)
    with open(path, "w") as fh:
        PDBFile.writeFile(top, positions_nm * unit.nanometer, fh)
    return path


def test_cli_end_to_end(tmp_path, capsys):
    from painn_deploy.cli.harmonic import main as harmonic_main
    from painn_deploy.cli.spectrum import main as spectrum_main

    model = Triatomic()
    torch.jit.save(torch.jit.script(model), str(tmp_path / "model.pt"))
    pdb = _write_pdb(tmp_path / "water.pdb", ["O", "H", "H"], _triatomic_geometry(0.098, 0.095, 1.8, seed=4))
    out = tmp_path / "harmonic"
    assert harmonic_main([str(tmp_path / "model.pt"), str(pdb), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wavenumber" in printed and "km/mol" in printed
    with open(out / "modes.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["mode", "wavenumber_cm-1", "ir_intensity_km_per_mol", "raman_activity_A4_per_amu"]
    table = np.array(rows[1:], dtype=float)
    masses = masses_amu([8, 1, 1])
    expected = _xy2_wavenumbers(float(model.kr), model.ktheta, model.r0, model.theta0, masses[0], masses[1])
    np.testing.assert_allclose(table[:, 1], expected, rtol=1e-6)
    assert np.all(table[:, 2] > 0) and np.all(table[:, 3] > 0)
    for name in ("modes.png", "harmonic.json", "minimized.pdb"):
        assert (out / name).stat().st_size > 0
    assert "harmonic zero-point energy" in printed
    # modes.molden, for Molden, Jmol or Avogadro: wavenumbers, coordinates in Bohr, one displacement per atom and
    # mode, IR intensities (parsed section by section)
    sections, name = {}, None
    for line in (out / "modes.molden").read_text().splitlines():
        if line.startswith("["):
            name = line.strip("[]")
            sections[name] = []
        else:
            sections[name].append(line.split())
    np.testing.assert_allclose([float(v[0]) for v in sections["FREQ"]], table[:, 1], rtol=1e-6)
    minimum = json.loads((out / "harmonic.json").read_text())["positions_nm"]
    coordinates = np.array([[float(x) for x in row[1:]] for row in sections["FR-COORD"]])
    np.testing.assert_allclose(coordinates, np.array(minimum) * 10 / 0.529177210903, rtol=1e-8, atol=1e-8)
    assert [row[0] for row in sections["FR-COORD"]] == ["O", "H", "H"]
    assert len(sections["FR-NORM-COORD"]) == 3 * (1 + 3) and sections["FR-NORM-COORD"][4] == ["vibration", "2"]
    np.testing.assert_allclose([float(v[0]) for v in sections["INT"]], table[:, 2], rtol=1e-5)

    # an isotopologue (D2O): the masses given, the modes of the same surface with them
    heavy = tmp_path / "heavy"
    assert harmonic_main([str(tmp_path / "model.pt"), str(pdb), "-o", str(heavy), "--no-plots", "--masses",
                          "2:2.014,3:2.014"]) == 0  # fmt: skip
    capsys.readouterr()
    heavy_cm1 = json.loads((heavy / "harmonic.json").read_text())["wavenumber_cm-1"]
    expected_d2o = _xy2_wavenumbers(float(model.kr), model.ktheta, model.r0, model.theta0, masses[0], 2.014)
    np.testing.assert_allclose(heavy_cm1, expected_d2o, rtol=1e-6)
    for wrong in ("4:2.014", "2:-1", "H:2"):
        assert harmonic_main([str(tmp_path / "model.pt"), str(pdb), "-o", str(tmp_path / "bad"), "--masses",
                              wrong]) == 2  # fmt: skip
        assert "--masses" in capsys.readouterr().err and not (tmp_path / "bad").exists()

    # overlay the sticks on an MD spectrum
    import h5py

    t = np.arange(6000) * 0.0005
    dip = np.zeros((t.size, 3))
    for nu in expected:
        dip[:, 0] += 0.01 * np.cos(nu / WN * t)
    with h5py.File(tmp_path / "props.h5", "w") as f:
        f.create_dataset("time", data=t).attrs["units"] = "ps"
        f.create_dataset("dipole", data=dip).attrs["units"] = "e*nm"
    spec_out = tmp_path / "spectra"
    assert spectrum_main([str(tmp_path / "props.h5"), "-o", str(spec_out), "--sticks", str(out / "modes.csv")]) == 0
    assert (spec_out / "ir.png").stat().st_size > 1000

    # an earlier run's folder is kept unless --overwrite; --overwrite leaves no stale file of the earlier run
    before = (out / "harmonic.json").read_bytes()
    assert harmonic_main([str(tmp_path / "model.pt"), str(pdb), "-o", str(out), "--no-minimize"]) == 2
    err = capsys.readouterr().err
    assert "already holds the results of an earlier run" in err and "--overwrite" in err and "Traceback" not in err
    assert (out / "harmonic.json").read_bytes() == before and (out / "modes.png").exists()
    (out / "notes.txt").write_text("mine")
    assert harmonic_main([str(tmp_path / "model.pt"), str(pdb), "-o", str(out), "--overwrite", "--no-plots"]) == 0
    info = json.loads((out / "harmonic.json").read_text())
    assert sorted(p.rsplit("/", 1)[-1] for p in info["written"]) == [
        "harmonic.json", "minimized.pdb", "modes.csv", "modes.molden"
    ]  # fmt: skip
    assert not (out / "modes.png").exists() and (out / "notes.txt").read_text() == "mine"

    # bad input: exit 2, one line, no traceback
    assert harmonic_main([str(tmp_path / "missing.pt"), str(pdb), "-o", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "missing.pt does not exist" in err and "Traceback" not in err
    assert harmonic_main([str(tmp_path / "model.pt"), str(pdb), "--max-steps", "many"]) == 2
    assert "argument --max-steps: expected a whole number, got 'many'" in capsys.readouterr().err


def test_cli_config_file_and_overrides(tmp_path, capsys):
    from painn_deploy.cli.harmonic import main as harmonic_main

    torch.jit.save(torch.jit.script(Triatomic()), str(tmp_path / "model.pt"))
    pdb = _write_pdb(tmp_path / "water.pdb", ["O", "H", "H"], _triatomic_geometry(0.098, 0.095, 1.8, seed=4))
    cfg = tmp_path / "harmonic.yaml"
    cfg.write_text(
        f"model: {tmp_path / 'model.pt'}\nstructure: {pdb}\noutput: {tmp_path / 'a'}\nplots: false\nmax-steps: 3\n"
    )
    assert harmonic_main(["--config", str(cfg), "-o", str(tmp_path / "b")]) == 0  # the flag wins
    info = json.loads((tmp_path / "b" / "harmonic.json").read_text())
    assert info["config"]["max_steps"] == 3 and info["minimization"]["steps"] <= 3 and not info["config"]["plots"]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b" / "modes.png").exists()
    capsys.readouterr()
    cfg.write_text(f"model: {tmp_path / 'model.pt'}\nstructure: {pdb}\nfmax: 1e-4\n")
    assert harmonic_main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) 'fmax'" in err and "fmax_kj_mol_nm" in err and "Traceback" not in err


def test_cli_reports_a_cryst1_box_as_ignored(tmp_path, capsys):
    from painn_deploy.cli.harmonic import main as harmonic_main

    torch.jit.save(torch.jit.script(Triatomic()), str(tmp_path / "model.pt"))
    pdb = _write_pdb(
        tmp_path / "water.pdb", ["O", "H", "H"], _triatomic_geometry(0.098, 0.095, 1.8, seed=4), box_nm=2.0
    )
    assert "CRYST1" in pdb.read_text()
    assert harmonic_main([str(tmp_path / "model.pt"), str(pdb), "-o", str(tmp_path / "out"), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "CRYST1 box, which the harmonic analysis ignores" in err and "isolated molecule" in err
    assert "ignores" in json.loads((tmp_path / "out" / "harmonic.json").read_text())["notes"][0]


# --- the exported PaiNN force field ------------------------------------------------------------------


def test_exported_painn_forcefield(tmp_path):
    """The real deployable module (random small PaiNN, TorchScript, float64) on ethanol.  Its forces are
    hand-written first derivatives, so the Hessian comes from central differences of the forces (one
    batched evaluation) and the dipole/polarizability derivatives from finite differences of properties();
    both must agree with autograd through the eager potential (the training path)."""
    from painn_deploy import units
    from painn_deploy.deploy import PaiNNForceField
    from painn_deploy.elements import masses_amu
    from painn_deploy.model import all_pairs
    from painn_deploy.spectra.harmonic import hessian
    from painn_deploy.structures import read_pdb

    from ..conftest import ETHANOL_PDB, random_rotation, small_potential

    numbers, pos, _ = read_pdb(ETHANOL_PDB)
    potential = small_potential()
    scripted = torch.jit.script(PaiNNForceField(potential, numbers, dtype=torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HarmonicWarning)  # a random model: ethanol is not at its minimum
        res = harmonic_analysis(scripted, pos, numbers, minimize=False)
        rotated = harmonic_analysis(scripted, pos @ random_rotation(3).T + 0.4, numbers, minimize=False)
    assert res.n_modes == 21 and len(res.external_wavenumber_cm1) == 6 and not res.linear
    assert "finite differences" in res.derivative_methods["dipole"]
    np.testing.assert_allclose(rotated.wavenumber_cm1, res.wavenumber_cm1, rtol=1e-6, atol=1e-4)

    species = torch.tensor([list(potential.config.elements).index(z) for z in numbers])
    idx_i, idx_j = all_pairs(len(numbers))
    masses = torch.tensor(masses_amu(numbers))

    def eager(positions_nm):  # energy (kJ/mol) and dipole (e*nm) by autograd through PaiNNPotential
        r = positions_nm * 10.0
        out = potential(species, r, idx_i, idx_j, r[idx_j] - r[idx_i], torch.zeros_like(species), 1, masses,
                        torch.zeros(1, dtype=torch.float64))  # fmt: skip
        return out["energy"][0] * units.EV_TO_KJ_PER_MOL, out["dipole"][0] * 0.1

    p = torch.tensor(res.positions_nm, requires_grad=True)
    _, dipole = eager(p)
    jac = np.array([torch.autograd.grad(dipole[i], p, retain_graph=True)[0].numpy() for i in range(3)])
    d_mu = np.einsum("aij,mij->ma", jac, res.displacements_nm)
    ir = IR_KM_PER_MOL_PER_E2_PER_AMU * (d_mu**2).sum(axis=1)
    np.testing.assert_allclose(res.ir_intensity_km_per_mol, ir, rtol=1e-4, atol=1e-5 * ir.max())
    assert np.all(np.isfinite(res.raman_activity_A4_per_amu)) and res.raman_activity_A4_per_amu.max() > 0

    h = hessian(scripted, pos)
    p = torch.tensor(pos, requires_grad=True)
    (grad,) = torch.autograd.grad(eager(p)[0], p, create_graph=True)
    grad = grad.reshape(-1)
    h_ref = np.array(
        [torch.autograd.grad(grad[k], p, retain_graph=True)[0].numpy().reshape(-1) for k in range(pos.size)]
    )
    assert np.abs(h_ref).max() > 100.0  # a Hessian to get wrong
    np.testing.assert_allclose(h, h_ref, rtol=0, atol=1e-5 * np.abs(h_ref).max())


# --- painn-train checkpoints and exported models: float64, and checks against the structure ----------------


def _ethanol_variant(tmp_path, name, symbols=None, order=None, copies=1):
    """ethanol.pdb with its element symbols replaced and/or its atoms reordered; ``copies`` of it, 0.5 nm apart."""
    from painn_deploy.elements import symbol
    from painn_deploy.structures import read_pdb

    from ..conftest import ETHANOL_PDB

    numbers, pos, _ = read_pdb(ETHANOL_PDB)
    names = [symbol(z) for z in numbers]
    if symbols:
        names = [symbols.get(i, s) for i, s in enumerate(names)]
    order = list(range(len(names))) if order is None else order
    shifted = [pos[order] + [0.5 * k, 0.0, 0.0] for k in range(copies)]
    return _write_pdb(tmp_path / name, [names[i] for i in order] * copies, np.concatenate(shifted))


def test_checkpoint_is_evaluated_in_float64_and_float32_models_warn(
    trained_checkpoint, exported64, exported32, tmp_path, capsys
):
    """A .ckpt gives the float64 analysis of the exported float64 model, without a precision warning; a float32
    artefact still works, and its warning says that float32 limits the minimisation and to give the .ckpt."""
    from painn_deploy.cli.harmonic import main as harmonic_main

    from ..conftest import ETHANOL_PDB

    results = {}
    for name, model in (("ckpt", trained_checkpoint), ("pt64", exported64), ("pt32", exported32)):
        out = tmp_path / name
        argv = [str(model), str(ETHANOL_PDB), "-o", str(out), "--no-minimize", "--no-plots"]
        assert harmonic_main(argv) == 0
        results[name] = (json.loads((out / "harmonic.json").read_text()), capsys.readouterr().err)
    (ckpt, ckpt_err), (pt64, _), (pt32, pt32_err) = results["ckpt"], results["pt64"], results["pt32"]
    assert ckpt["model_dtype"] == "float64" and pt32["model_dtype"] == "float32"
    assert "float32" not in ckpt_err and "precision" not in ckpt_err
    assert "the structure is not at a minimum of the model (largest force" in ckpt_err  # (--no-minimize)
    assert "minimisation is limited by float32 precision" in pt32_err and "checkpoint (.ckpt)" in pt32_err
    assert "Traceback" not in pt32_err
    np.testing.assert_allclose(ckpt["wavenumber_cm-1"], pt64["wavenumber_cm-1"], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(ckpt["ir_intensity_km_per_mol"], pt64["ir_intensity_km_per_mol"], rtol=1e-5, atol=1e-8)


def test_structures_that_do_not_fit_the_model_are_refused_before_evaluation(
    trained_checkpoint, exported32, tmp_path, capsys, monkeypatch
):
    """Another molecule, an element the model does not know, or another atom order: exit 2 with a message that
    names the problem, before the model is evaluated (no TorchScript traceback)."""
    import painn_deploy.spectra.harmonic_pipeline as pipeline
    from painn_deploy.cli.harmonic import main as harmonic_main

    def never(*args, **kwargs):
        raise AssertionError("the model was evaluated")

    monkeypatch.setattr(pipeline, "harmonic_analysis", never)
    water = _write_pdb(tmp_path / "water.pdb", ["O", "H", "H"], _triatomic_geometry(0.098, 0.095, 1.8))
    sulfur = _ethanol_variant(tmp_path, "thiol.pdb", symbols={2: "S"})  # ethanol.pdb: C C O H...; O -> S
    shuffled = _ethanol_variant(tmp_path, "shuffled.pdb", order=[2, 0, 1, 3, 4, 5, 6, 7, 8])
    two = _ethanol_variant(tmp_path, "two.pdb", copies=2)
    cases = [
        (exported32, water, ["water.pdb has 3 atoms (H2O)", "exported for 9 (C2H6O)"]),
        (
            trained_checkpoint,
            two,
            [
                "two.pdb is C4H12O2 (18 atoms), but the checkpoint",
                "training molecule, C2H6O (9 atoms). For 2 of them, export the model for the structure (painn-export",
            ],
        ),
        (exported32, sulfur, ["thiol.pdb contains S (Z=16)", "not trained on"]),
        (exported32, shuffled, ["shuffled.pdb does not match the model's particle order", "atom 1: O (model: C)"]),
        (trained_checkpoint, water, ["water.pdb is H2O (3 atoms)", "training molecule, C2H6O (9 atoms). Give the st"]),
        (trained_checkpoint, sulfur, ["thiol.pdb contains S (Z=16)", "not trained on"]),
    ]
    for model, pdb, expected in cases:
        assert harmonic_main([str(model), str(pdb), "-o", str(tmp_path / "out")]) == 2, (model, pdb)
        err = capsys.readouterr().err
        assert all(e in err for e in expected), err
        assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    # the model exported for them: taken, with the warning that the modes between the molecules are extrapolated
    from painn_deploy.deploy import export
    from painn_deploy.spectra.harmonic import open_model

    export(trained_checkpoint, tmp_path / "two.pt", pdb=str(two), dtype="float64")
    with pytest.warns(HarmonicWarning, match=r"two.pt was trained on C2H6O and exported for two.pdb, C4H12O2: the "
                      r"modes of what the training data did not hold \(the molecules against each other"):  # fmt: skip
        open_model(tmp_path / "two.pt", "cpu", [6, 6, 8] + [1] * 6 + [6, 6, 8] + [1] * 6, None, "two.pdb")


def test_float32_artefact_gives_the_float64_frequencies():
    """The bundled float32 artefact, whose Hessian comes from finite differences of its forces, at the float64
    checkpoint's minimum: every mode within 1 cm^-1 of the checkpoint's (a 1e-3 nm step, which averages the
    curvature over the step, moved them by up to 12 cm^-1 here), and the intensities alike."""
    from painn_deploy.resources import BUNDLED_CHECKPOINT, RESOURCES, STRUCTURES
    from painn_deploy.spectra.harmonic import harmonic_analysis, load_model
    from painn_deploy.structures import load_pdb

    _, z, positions, _ = load_pdb(STRUCTURES["ethanol"])
    reference = harmonic_analysis(load_model(str(BUNDLED_CHECKPOINT), "cpu", z), positions, z)
    with pytest.warns(HarmonicWarning, match="float32"):
        single = harmonic_analysis(
            load_model(str(RESOURCES / "ethanol_painn.pt"), "cpu", z), reference.positions_nm, z, minimize=False
        )
    assert reference.wavenumber_cm1.min() > 150.0  # a minimum: no soft or imaginary modes to excuse
    np.testing.assert_allclose(single.wavenumber_cm1, reference.wavenumber_cm1, rtol=0, atol=1.0)
    # (measured: 0.15 km/mol and 0.1 Angstrom^4/amu at most, of bands up to 159 and 112)
    np.testing.assert_allclose(single.ir_intensity_km_per_mol, reference.ir_intensity_km_per_mol, atol=0.5)
    np.testing.assert_allclose(single.raman_activity_A4_per_amu, reference.raman_activity_A4_per_amu, atol=0.5)


def test_float32_minimisation_of_a_large_total_energy_reaches_the_float64_minimum():
    """A float32 model whose total energy is as large as a bigger molecule's (-1e5 kJ/mol, rounded to 0.008)
    stalls L-BFGS-B's line search with forces of tens of kJ/mol/nm; Newton steps on fresh Hessians, halved until
    they lower the force, reach the float64 checkpoint's minimum to 1e-6 nm (after a rotation), and every mode
    within 1.5 cm^-1 of its (8.3 cm^-1 off before).  The float32 Hessian alone, at the float64 minimum, is up to
    0.9 cm^-1 off, by an amount that changes with the molecule's orientation."""
    from painn_deploy.resources import BUNDLED_CHECKPOINT, BUNDLED_MODEL, STRUCTURES
    from painn_deploy.spectra.harmonic import harmonic_analysis, load_model
    from painn_deploy.structures import load_pdb

    _, z, positions, _ = load_pdb(STRUCTURES["ethanol"])
    reference = harmonic_analysis(load_model(str(BUNDLED_CHECKPOINT), "cpu", z), positions, z)
    single = load_model(str(BUNDLED_MODEL), "cpu", z)

    class Large(torch.nn.Module):
        def forward(self, p):
            return single(p) - 7e4

        def properties(self, p):
            return dict(single.properties(p), energy=single.properties(p)["energy"] - 7e4)

    start = positions + np.random.default_rng(0).normal(scale=0.01, size=positions.shape)
    with warnings.catch_warnings():  # (float32 cannot reach the default 1e-3 kJ/mol/nm: said in a warning)
        warnings.simplefilter("ignore", HarmonicWarning)
        result = harmonic_analysis(Large(), start, z)
    assert "Newton step(s)" in result.minimization["message"] and result.max_force_kj_mol_nm < 0.05
    a, b = (x - x.mean(axis=0) for x in (result.positions_nm, reference.positions_nm))
    u, _, vt = np.linalg.svd(a.T @ b)
    rotation = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt  # (Kabsch)
    assert np.sqrt(np.mean(np.sum((a @ rotation - b) ** 2, axis=1))) < 1e-6
    np.testing.assert_allclose(result.wavenumber_cm1, reference.wavenumber_cm1, rtol=0, atol=1.5)


def test_minimisation_reaches_tight_thresholds_whatever_the_total_energy():
    """L-BFGS-B stops when the energy falls by less than a fraction of |E| (-3e4 kJ/mol for ethanol, 1e5 and more
    for larger molecules), and its line search stalls where soft modes change the energy by less than its
    rounding.  Minimised relative to its start, then finished by Newton steps on the Hessian, a molecule reaches
    1e-6 kJ/mol/nm whatever its total energy."""
    from painn_deploy.resources import BUNDLED_CHECKPOINT, STRUCTURES
    from painn_deploy.spectra.harmonic import load_model, minimize_positions
    from painn_deploy.structures import load_pdb

    _, z, positions, _ = load_pdb(STRUCTURES["ethanol"])
    model = load_model(str(BUNDLED_CHECKPOINT), "cpu", z, None, "ethanol.pdb")

    class Shifted(torch.nn.Module):
        def __init__(self, shift: float):
            super().__init__()
            self.model, self.shift = model, shift

        def forward(self, p):
            return self.model(p) + self.shift

        def properties(self, p):  # (forces for the Hessian by finite differences)
            return self.model.properties(p)

    start = positions + np.random.default_rng(0).normal(scale=0.005, size=positions.shape)
    for shift in (0.0, 1e5):
        result = minimize_positions(Shifted(shift), start, fmax_kj_mol_nm=1e-6)
        assert result.converged and result.max_force_kj_mol_nm <= 1e-6, (shift, result.message)
        assert "Newton step(s) on the Hessian" in result.message


def test_newton_steps_are_bounded_and_refuse_to_leave_the_model(monkeypatch):
    """The Newton steps after a stalled L-BFGS-B move no atom by more than NEWTON_MAX_STEP_NM, and a step into a
    region where the model is undefined (NaN) is halved until it stays out of it."""
    import painn_deploy.spectra.harmonic as harmonic

    class Diatomic(torch.nn.Module):  # harmonic bond, undefined (NaN) closer than 0.205 nm
        def forward(self, p):
            r = torch.linalg.norm(p[1] - p[0])
            return torch.where(r < 0.205, torch.full_like(r, float("nan")), 0.5 * 1e4 * (r - 0.10) ** 2)

    class Stalled:  # L-BFGS-B giving up at once, as it does on rounding noise
        def __init__(self, x0):
            self.x, self.nit, self.message = x0, 1, "ABNORMAL (stalled)"

    monkeypatch.setattr(harmonic, "sp_minimize", lambda fun, x0, **kw: Stalled(x0))
    start = np.array([[0.0, 0.0, 0.0], [0.30, 0.0, 0.0]])
    result = harmonic.minimize_positions(Diatomic().double(), start, fmax_kj_mol_nm=1e-3)
    r = float(np.linalg.norm(result.positions_nm[1] - result.positions_nm[0]))
    assert np.isfinite(result.energy_kj_mol) and not result.converged
    # capped steps of 0.01 nm per atom shorten the bond by 0.02 nm each (0.30 -> 0.22); the next would enter the
    # undefined region, so it is halved until it does not: the bond ends just outside it, never inside
    assert 0.205 <= r <= 0.22 + 1e-9 and result.n_steps > 1 + 4


def test_a_minimisation_that_breaks_the_molecule_is_refused():
    """A model without a minimum near the start (here: atoms that repel, so the molecule flies apart) must not
    give an analysis of fragments: painn-harmonic exits with status 1 and writes nothing."""
    from painn_deploy.errors import MinimizationError
    from painn_deploy.spectra.harmonic import harmonic_analysis

    class Repulsive(EnergyOnly):
        def forward(self, p):
            d = p[:, None] - p[None]
            r = torch.sqrt((d * d).sum(-1) + torch.eye(len(p), dtype=p.dtype))
            return (torch.exp(-r / 0.05) * (1 - torch.eye(len(p), dtype=p.dtype))).sum()

    positions = np.array([[0.0, 0.0, 0.0], [0.11, 0.0, 0.0], [-0.04, 0.10, 0.0]])
    with pytest.raises(MinimizationError, match=r"the minimisation changed the molecule's bonds \(1-2 broken, 1-3 "
                       r"broken; 1 covalently bonded fragment\(s\) at the start, 3 at the end; .*give --no-minimize"):  # fmt: skip
        harmonic_analysis(Repulsive().double(), positions, [6, 1, 1], max_steps=200)
    assert MinimizationError.exit_status == 1


def test_a_stretched_bond_that_the_minimisation_closes_is_a_warning():
    """A start with a bond stretched beyond the bond rule (C-H at 1.45 Angstrom, 1.36 times its covalent length)
    is mended by the minimisation: a warning names the bond, and the modes are those of the minimum. A pair
    further apart (1.9 times) that bonds, or the same bond formed between what the model takes for two molecules
    (a reaction, such as a recombination), is another molecule: refused."""
    from painn_deploy.errors import MinimizationError
    from painn_deploy.spectra.harmonic import harmonic_analysis

    class BentCH2(EnergyOnly):
        molecule_index = torch.zeros(3, dtype=torch.long)  # (each atom's molecule, as the package's models hold it)

        def forward(self, p):
            d1, d2 = p[1] - p[0], p[2] - p[0]
            r1, r2 = torch.linalg.norm(d1), torch.linalg.norm(d2)
            cos = (d1 * d2).sum() / (r1 * r2)
            return 3e5 * ((r1 - 0.109) ** 2 + (r2 - 0.109) ** 2) + 300.0 * (cos + 0.34) ** 2

    minimum = np.array([[0.0, 0.0, 0.0], [0.109, 0.0, 0.0], [-0.0371, 0.1025, 0.0]])
    reference = harmonic_analysis(BentCH2().double(), minimum, [6, 1, 1])
    stretched = minimum.copy()
    stretched[2] *= 0.145 / 0.109
    with pytest.warns(HarmonicWarning, match=r"the start had 1 bond\(s\) stretched beyond 1.2 times their covalent "
                      r"length \(1-3 at 1.45 Angstrom, 1.36 times\), which the minimisation closed"):  # fmt: skip
        result = harmonic_analysis(BentCH2().double(), stretched, [6, 1, 1])
    np.testing.assert_allclose(result.wavenumber_cm1, reference.wavenumber_cm1, atol=0.1)
    apart = minimum.copy()
    apart[2] *= 0.20 / 0.109
    with pytest.raises(MinimizationError, match=r"changed the molecule's bonds \(1-3 formed; 2 covalently bonded"):
        harmonic_analysis(BentCH2().double(), apart, [6, 1, 1])

    class Plain(BentCH2):
        molecule_index = None  # (a user's module: its molecules unknown)

    with pytest.raises(MinimizationError, match=r"told from a reaction by the model's molecules, which this module "
                       r"does not hold as molecule_index"):  # fmt: skip
        harmonic_analysis(Plain().double(), stretched, [6, 1, 1])
    two = BentCH2().double()
    two.molecule_index = torch.tensor([0, 0, 1])
    with pytest.raises(MinimizationError, match=r"changed the molecule's bonds \(1-3 formed; 2 covalently bonded"):
        harmonic_analysis(two, stretched, [6, 1, 1])


def test_the_minimisation_moves_atoms_a_little_at_first():
    """L-BFGS-B's first trial step has unit length in its coordinates: in nm it threw atoms 1 nm, out of the
    molecule and the model's training data (a hole of the model at -2e9 kJ/mol, for one user).  It works in units
    of 0.01 nm."""
    from painn_deploy.spectra.harmonic import LBFGS_LENGTH_NM, minimize_positions

    seen = []

    class Traced(Diatomic):
        def forward(self, positions):
            seen.append(positions.detach().numpy().copy())
            return super().forward(positions)

    start = _diatomic_geometry(0.25)  # a force of 2.7e4 kJ/mol/nm
    result = minimize_positions(Traced(), start, fmax_kj_mol_nm=1e-3)
    first = next(p for p in seen if not np.array_equal(p, start))
    assert np.linalg.norm(first - start) <= LBFGS_LENGTH_NM * (1 + 1e-9)
    assert result.converged and np.linalg.norm(result.positions_nm[1] - result.positions_nm[0]) == pytest.approx(
        0.113, abs=1e-8
    )


def test_a_saddle_point_is_not_called_a_minimum():
    """A symmetric start can be a stationary point that is not a minimum (a linear X-Y2 whose bending lowers the
    energy): the minimisation converges at once, and the imaginary modes are reported as a saddle point."""

    class LinearSaddle(EnergyOnly):
        bend_kj_mol = 100.0

        def forward(self, p):
            d1, d2 = p[1] - p[0], p[2] - p[0]
            r1, r2 = torch.linalg.norm(d1), torch.linalg.norm(d2)
            bonds = 2e5 * ((r1 - 0.1) ** 2 + (r2 - 0.1) ** 2)
            return bonds - self.bend_kj_mol * (1.0 + (d1 * d2).sum() / (r1 * r2))  # highest when linear

    positions = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]])
    with pytest.warns(HarmonicWarning, match=r"2 imaginary mode\(s\), down to \d+\.\di cm\^-1: the minimisation "
                      r"ended at a saddle point of the model, not a minimum"):  # fmt: skip
        result = harmonic_analysis(LinearSaddle().double(), positions, [6, 8, 8])
    assert result.minimization["converged"] and result.linear and (result.wavenumber_cm1 < -50).sum() == 2

    # a shallow saddle (36i cm^-1): warned about in float64, whose minima give no imaginary modes beyond 10i; a
    # float32 model's soft modes reach tens of i cm^-1 at a minimum, so there only beyond 50i
    class ShallowSaddle(LinearSaddle):
        bend_kj_mol = 1.0

        def __init__(self):
            super().__init__()
            self.register_buffer("dtype_marker", torch.zeros(()))  # (the dtype harmonic_analysis computes in)

        def forward(self, p):
            return super().forward(p.to(self.dtype_marker.dtype))

    with pytest.warns(HarmonicWarning, match=r"2 imaginary mode\(s\), down to 35\.9i cm\^-1: the minimisation"):
        harmonic_analysis(ShallowSaddle().double(), positions, [6, 8, 8])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = harmonic_analysis(ShallowSaddle().float(), positions, [6, 8, 8])
    assert result.wavenumber_cm1[0] < -30 and not [w for w in caught if "imaginary" in str(w.message)]


def test_a_nearly_linear_molecule_is_named_with_the_remedy():
    """A linear molecule bent by 0.3 degrees is taken as non-linear (its smallest moment of inertia is above
    1e-6 of the largest), and the rotation about its axis takes a bending mode with it: the warning says so and
    names --linear yes, which gives back its four modes."""

    class LinearMinimum(EnergyOnly):
        def forward(self, p):
            d1, d2 = p[1] - p[0], p[2] - p[0]
            r1, r2 = torch.linalg.norm(d1), torch.linalg.norm(d2)
            return 2e5 * ((r1 - 0.116) ** 2 + (r2 - 0.116) ** 2) + 300.0 * (1.0 + (d1 * d2).sum() / (r1 * r2))

    bend = math.radians(0.3)
    positions = np.array([[0.0, 0.0, 0.0], [0.116, 0.0, 0.0], [-0.116 * math.cos(bend), 0.116 * math.sin(bend), 0]])
    with pytest.warns(HarmonicWarning) as record:
        bent = harmonic_analysis(LinearMinimum().double(), positions, [6, 8, 8], minimize=False)
    assert not bent.linear and bent.n_modes == 3
    assert any(re.search(r"nearly linear \(smallest moment of inertia .* --linear yes", str(w.message)) for w in record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HarmonicWarning)  # (not at a minimum: the bend)
        assert (
            harmonic_analysis(LinearMinimum().double(), positions, [6, 8, 8], minimize=False, linear=True).n_modes == 4
        )


def test_a_structure_outside_the_training_data_is_noted():
    """painn-harmonic notes when the analysed structure has a bond the model's training data never had: here an
    envelope of the training molecule stretched by 10%, so every bond of the minimum is shorter than its data's."""
    from painn_deploy.deploy.envelope import training_envelope
    from painn_deploy.resources import STRUCTURES
    from painn_deploy.spectra.harmonic_pipeline import _outside_training_data
    from painn_deploy.structures import load_pdb

    _, z, positions, _ = load_pdb(STRUCTURES["ethanol"])
    inside = training_envelope(z, positions[None] * 10.0 + np.zeros((3, 1, 1)), 5.0)
    assert _outside_training_data(inside, z, positions) == ""
    stretched = training_envelope(z, positions[None] * 11.0, 5.0)
    note = _outside_training_data(stretched, z, positions)
    assert re.match(r"the analysed structure is outside the model's training data: atoms \d+ \([CHO]\) and \d+ "
                    r"\([CHO]\) are [\d.]+ Angstrom apart, [\d.]+ Angstrom closer than any", note)  # fmt: skip
    assert _outside_training_data(None, z, positions) == ""


def test_structures_and_outputs_that_cannot_be_used_are_refused(tmp_path, capsys):
    """painn-harmonic checks the structure as painn-simulate does (overlapping atoms, coordinates in nm), refuses
    an output folder that would overwrite its input or cannot be written, and a device that is not there."""
    from painn_deploy.cli.harmonic import main
    from painn_deploy.resources import BUNDLED_CHECKPOINT, STRUCTURES
    from painn_deploy.structures import read_pdb, write_pdb

    z, pos, _ = read_pdb(STRUCTURES["ethanol"])
    pos = np.asarray(pos)
    overlap = pos.copy()
    overlap[8] = overlap[2]
    write_pdb(tmp_path / "overlap.pdb", z, overlap)
    write_pdb(tmp_path / "nm.pdb", z, pos / 10)
    model = str(BUNDLED_CHECKPOINT)
    assert main([model, str(tmp_path / "overlap.pdb"), "-o", str(tmp_path / "a")]) == 2
    assert "atoms 3 and 9 are 0.000 Angstrom apart (overlapping)" in capsys.readouterr().err
    assert main([model, str(tmp_path / "nm.pdb"), "-o", str(tmp_path / "b")]) == 2
    assert "look 10 times too small" in capsys.readouterr().err
    inside = tmp_path / "c"
    inside.mkdir()
    write_pdb(inside / "minimized.pdb", z, pos)
    before = (inside / "minimized.pdb").read_bytes()
    assert main([model, str(inside / "minimized.pdb"), "-o", str(inside)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert (inside / "minimized.pdb").read_bytes() == before
    (tmp_path / "file").write_text("")
    assert main([model, str(STRUCTURES["ethanol"]), "-o", str(tmp_path / "file" / "out")]) == 2
    assert "cannot write to" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([model, str(STRUCTURES["ethanol"]), "-o", str(tmp_path / "d"), "--device", "cuda"]) == 2
        assert "torch finds 0 CUDA device(s) here; give --device cpu" in capsys.readouterr().err
    assert main([model, str(STRUCTURES["ethanol"]), "-o", str(tmp_path / "e"), "--fmax", "nan"]) == 2
    assert "--fmax must be positive and finite" in capsys.readouterr().err
    assert not any((tmp_path / x).exists() for x in "abde")


def test_the_library_call_takes_the_artefacts_model_and_checks_its_inputs(exported64):
    """harmonic_analysis(load(model.pt), ...) as a notebook writes it (was an AttributeError); positions in
    Angstrom (all modes 0 cm^-1, without a word), atomic numbers in another order (a 4500 cm^-1 mode) and the
    wrong number of atoms (TorchScript's own error) are refused with typed errors."""
    from painn_deploy.deploy import load
    from painn_deploy.errors import TopologyMismatchError, UnitsError
    from painn_deploy.structures import read_pdb

    from ..conftest import ETHANOL_PDB

    numbers, pos, _ = read_pdb(ETHANOL_PDB)
    model = load(exported64)
    via_model = harmonic_analysis(model, pos, numbers, minimize=False)
    via_module = harmonic_analysis(model.module, pos, numbers, minimize=False)
    np.testing.assert_array_equal(via_model.wavenumber_cm1, via_module.wavenumber_cm1)
    # element symbols for atomic numbers (were int()'s ValueError); linear=True for a bent molecule is warned about
    symbols = ["C", "C", "O", "H", "H", "H", "H", "H", "H"]
    assert [int(z) for z in numbers] == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    via_symbols = harmonic_analysis(model.module, pos, symbols, minimize=False)
    np.testing.assert_array_equal(via_symbols.wavenumber_cm1, via_module.wavenumber_cm1)
    with pytest.raises(InputError, match=r"atomic_numbers must be atomic numbers or element symbols"):
        harmonic_analysis(model.module, pos, [None] * 9, minimize=False)
    with pytest.warns(HarmonicWarning, match=r"linear=True \(--linear yes\) for a molecule that is not linear"):
        harmonic_analysis(model.module, pos, numbers, minimize=False, linear=True)
    far = np.array(pos, dtype=np.float64)
    far[8] += [0.3, 0.0, 0.0]  # (the hydroxyl hydrogen 3 Angstrom out)
    with pytest.warns(HarmonicWarning, match=r"structure's 2 covalently bonded fragment\(s\) are not the model's 1 "
                      r"molecule\(s\): a dissociated structure, or atoms moved between molecules\?"):  # fmt: skip
        harmonic_analysis(model, far, numbers, minimize=False)
    with pytest.raises(UnitsError, match="Angstrom"):
        harmonic_analysis(model, pos * 10.0, numbers, minimize=False)
    with pytest.raises(
        TopologyMismatchError,
        match=r"does not match the model's particle order at \d+ atom\(s\): atom 1: H \(model: C\)",
    ):
        harmonic_analysis(model, pos, list(reversed(numbers)), minimize=False)
    with pytest.raises(TopologyMismatchError, match="exported for 9 particles"):
        harmonic_analysis(model.module, pos[:5], numbers[:5], minimize=False)
    # integer coordinates, an ML/MM model (part of a system) and a periodic one are refused before any work
    with pytest.raises(InputError, match="must be floating-point coordinates in nm, not int64"):
        harmonic_analysis(model, np.round(pos).astype(np.int64), numbers, minimize=False)
    from painn_deploy.deploy.artefact import Model

    for key, value, said in (("atom_indices", list(range(9)), "is an ML/MM model"), ("periodic", True, "periodic")):
        with pytest.raises(InputError, match=said):
            harmonic_analysis(Model(model.module, {**model.metadata, key: value}), pos, numbers, minimize=False)
