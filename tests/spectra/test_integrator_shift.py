"""The Verlet frequency shift: formulas, the density map, and an OpenMM harmonic bond at 0.5 and 1 fs."""

import json
import math

import h5py
import numpy as np
import pytest
import torch  # noqa: F401  (torch before openmm)

from painn_deploy import units
from painn_deploy.errors import InputError
from painn_deploy.spectra import integrator, ir_spectrum

NU0 = 3700.0  # cm^-1, an O-H stretch
M_O, M_H = 15.999, 1.008
R0 = 0.0970  # nm
CHARGE = 0.3  # e, dipole = CHARGE * (r_H - r_O)
SAMPLE_FS = 1.0
N_FRAMES = 16384


def test_shift_formulas():
    for dt in (0.25, 0.5, 1.0, 2.0):
        nu = np.linspace(100.0, 4000.0, 40)
        obs = integrator.observed_wavenumber(nu, dt)
        np.testing.assert_allclose(integrator.true_wavenumber(obs, dt), nu, rtol=1e-12)
        assert np.all(obs > nu)
        # small-step expansion omega' = omega (1 + (omega dt)^2 / 24 + 3 (omega dt)^4 / 640 + O((omega dt)^6))
        wdt = nu * units.RAD_PER_PS_PER_CM1 * dt * units.PS_PER_FS
        expansion = nu * (1 + wdt**2 / 24 + 3 * wdt**4 / 640)
        if dt <= 1.0:  # omega dt < 0.76: the rest is below 1.2 x the next term 5 (omega dt)^6 / 7168
            assert np.all(np.abs(obs - expansion) <= nu * 5 / 7168 * wdt**6 * 1.2)
    # the numbers of the documentation: ~0.5 % (~19 cm^-1) at 3700 cm^-1 and 0.5 fs, 79 cm^-1 at 1 fs
    assert integrator.shift_cm1(NU0, 0.5) == pytest.approx(18.98, abs=0.01)
    assert integrator.shift_cm1(NU0, 1.0) == pytest.approx(79.30, abs=0.01)
    # unstable: omega dt >= 2
    assert np.isnan(integrator.observed_wavenumber(integrator.stability_limit_cm1(1.0) * 1.01, 1.0))


def test_correct_density_moves_the_band_and_keeps_its_integral():
    dt_fs = 1.0
    omega = np.linspace(0.0, 2000.0, 40001)  # rad/ps
    w_true = 700.0
    w_obs = float(integrator.observed_omega(w_true, dt_fs))
    dens = np.exp(-0.5 * ((omega - w_obs) / 3.0) ** 2)
    fixed = integrator.correct_density(omega, dens, dt_fs)
    band = (omega > 600) & (omega < 800)
    assert np.isnan(fixed[-1])  # its observed frequency lies beyond the grid
    assert omega[np.nanargmax(fixed)] == pytest.approx(w_true, abs=0.1)
    assert omega[np.argmax(dens)] == pytest.approx(w_true + (w_obs - w_true), abs=0.1)
    np.testing.assert_allclose(np.trapezoid(fixed[band], omega[band]), np.trapezoid(dens[band], omega[band]), rtol=1e-6)


def _verlet_bond_trajectory(timestep_fs: float):
    """A harmonic O-H bond (HarmonicBondForce, omega0 = sqrt(k/mu) at NU0) stretched by 5 pm along x
    and released from rest, integrated with openmm.VerletIntegrator; dipole CHARGE * (r_H - r_O)
    recorded every SAMPLE_FS."""
    import openmm

    mu = M_O * M_H / (M_O + M_H)
    omega0 = NU0 * units.RAD_PER_PS_PER_CM1
    system = openmm.System()
    system.addParticle(M_O)
    system.addParticle(M_H)
    bond = openmm.HarmonicBondForce()
    bond.addBond(0, 1, R0, mu * omega0**2)  # k in kJ/mol/nm^2: k/mu in ps^-2
    system.addForce(bond)
    step_ps = timestep_fs * units.PS_PER_FS
    integ = openmm.VerletIntegrator(step_ps)
    context = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.array([[0.0, 0.0, 0.0], [R0 + 0.005, 0.0, 0.0]]))
    context.setVelocitiesToTemperature(0.0)
    every = int(round(SAMPLE_FS / timestep_fs))
    dip = np.zeros((N_FRAMES, 3))
    for i in range(N_FRAMES):
        integ.step(every)
        pos = context.getState(getPositions=True).getPositions(asNumpy=True)._value
        dip[i] = CHARGE * (pos[1] - pos[0])
    time_ps = (np.arange(N_FRAMES) + 1) * every * step_ps
    return time_ps, dip, every


def _write_like_the_md_driver(path, time_ps, dip, timestep_fs, every):
    with h5py.File(path, "w") as f:
        f.create_dataset("time", data=time_ps).attrs["units"] = "ps"
        f.create_dataset("dipole", data=dip).attrs["units"] = "e*nm"
        f.attrs.update(temperature_K=300.0, timestep_fs=timestep_fs, record_interval_steps=every, beads=1,
                       replicas=1, correlation="classical")  # fmt: skip
    return str(path)


@pytest.mark.parametrize("timestep_fs", [0.5, 1.0])
def test_openmm_verlet_bond_shift_and_correction(tmp_path, capsys, timestep_fs):
    from painn_deploy.cli.spectrum import main

    time_ps, dip, every = _verlet_bond_trajectory(timestep_fs)
    path = _write_like_the_md_driver(tmp_path / "properties.h5", time_ps, dip, timestep_fs, every)
    common = [path, "--ir", "--max-corr-time-ps", "4", "--zero-pad", "8", "--wmin", "3000", "--wmax", "4000"]
    assert main([*common, "-o", str(tmp_path / "raw"), "--no-plots"]) == 0
    raw_out = capsys.readouterr()
    assert main([*common, "-o", str(tmp_path / "fixed"), "--no-plots", "--correct-integrator-shift"]) == 0
    fixed_out = capsys.readouterr()

    raw = np.loadtxt(tmp_path / "raw" / "ir.csv", delimiter=",", skiprows=1)
    fixed = np.loadtxt(tmp_path / "fixed" / "ir.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(raw[:, 0], fixed[:, 0])  # the same grid
    grid = float(np.diff(raw[:, 0]).mean())
    predicted = float(integrator.shift_cm1(NU0, timestep_fs))
    raw_peak = raw[np.argmax(raw[:, 1]), 0]
    fixed_peak = fixed[np.argmax(fixed[:, 1]), 0]
    print(f"dt {timestep_fs} fs: grid {grid:.3f} cm^-1, predicted shift {predicted:.2f}, "
          f"raw peak {raw_peak:.2f} (shift {raw_peak - NU0:.2f}), corrected peak {fixed_peak:.2f}")  # fmt: skip
    assert predicted > 20 * grid  # the shift is resolved many times over
    assert abs(raw_peak - (NU0 + predicted)) <= grid
    assert abs(fixed_peak - NU0) <= grid

    # band integrals: the density's is kept, so the corrected band equals that of exact dynamics with
    # the same mean square dipole, and the uncorrected one is too large by (omega'/omega)^2
    t_exact = np.arange(N_FRAMES) * SAMPLE_FS * units.PS_PER_FS
    var = float(((dip - dip.mean(axis=0)) ** 2).sum(axis=1).mean())
    exact = np.zeros_like(dip)
    exact[:, 0] = math.sqrt(2 * var) * np.cos(NU0 * units.RAD_PER_PS_PER_CM1 * t_exact)
    ref = ir_spectrum(t_exact, exact, 300.0, max_corr_time_ps=4.0, zero_pad=8, wmin_cm1=3000, wmax_cm1=4000)
    band = (3500.0, 3950.0)
    ref_int = ref.integrate(*band)
    sel = (raw[:, 0] >= band[0]) & (raw[:, 0] <= band[1])
    raw_int = np.trapezoid(raw[sel, 1], raw[sel, 0])
    fixed_int = np.trapezoid(fixed[sel, 1], fixed[sel, 0])
    ratio2 = ((NU0 + predicted) / NU0) ** 2
    print(f"band integrals / exact: corrected {fixed_int / ref_int:.5f}, raw {raw_int / ref_int:.5f} "
          f"(omega'^2/omega^2 = {ratio2:.5f})")  # fmt: skip
    assert fixed_int == pytest.approx(ref_int, rel=2e-3)
    assert raw_int == pytest.approx(ref_int * ratio2, rel=2e-3)

    # the shift at the top of the range is reported: warning when uncorrected, notice when corrected
    top = float(integrator.shift_cm1(4000.0, timestep_fs))
    for out_dir, corrected in (("raw", False), ("fixed", True)):
        meta = json.loads((tmp_path / out_dir / "metadata.json").read_text())
        block = meta["integrator_shift"]
        assert block["timestep_fs"] == timestep_fs and block["at_wavenumber_cm1"] == 4000.0
        assert block["shift_cm1"] == pytest.approx(top, rel=1e-9) and block["corrected"] is corrected
        assert meta["settings"]["integrator_shift_corrected"] is corrected
    assert (
        "warning:" in raw_out.err and f"{top:.1f} cm^-1" in raw_out.err and "--correct-integrator-shift" in raw_out.err
    )
    assert "warning" not in fixed_out.err and f"notice: a {timestep_fs:g} fs Verlet-type time step" in fixed_out.out


def test_correction_needs_a_timestep(tmp_path, capsys):
    from painn_deploy.cli.spectrum import main

    t = np.arange(4000) * 0.001
    dip = np.zeros((t.size, 3))
    dip[:, 0] = np.cos(2000.0 * units.RAD_PER_PS_PER_CM1 * t)
    with h5py.File(tmp_path / "old.h5", "w") as f:
        f.create_dataset("time", data=t).attrs["units"] = "ps"
        f.create_dataset("dipole", data=dip).attrs["units"] = "e*nm"
    args = [str(tmp_path / "old.h5"), "-o", str(tmp_path / "out"), "--no-plots", "--correct-integrator-shift"]
    assert main(args) == 2
    assert "--integrator-timestep-fs" in capsys.readouterr().err
    assert main([*args, "--integrator-timestep-fs", "1"]) == 0
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["integrator_shift"]["timestep_fs"] == 1.0 and meta["integrator_shift"]["corrected"] is True
    with pytest.raises(InputError, match="at most the sampling interval"):
        ir_spectrum(t, dip, 300.0, integrator_timestep_fs=2.0)
    # a file that records its time step: another one given is refused (it was taken, with no word of the conflict)
    with h5py.File(tmp_path / "old.h5", "a") as f:
        f.attrs["timestep_fs"] = 0.5
    args[1:3] = ["-o", str(tmp_path / "again")]
    assert main([*args, "--integrator-timestep-fs", "0.25"]) == 2
    assert "--integrator-timestep-fs 0.25 differs from the time step the runs were made with (0.5 fs, their " in (
        capsys.readouterr().err
    )
    assert main([*args, "--integrator-timestep-fs", "0.5"]) == 0
