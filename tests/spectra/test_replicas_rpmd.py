"""Replica axes (each replica is a run) and ring-polymer MD (Kubo-transformed) property files."""

import json
import math
import warnings

import h5py
import numpy as np
import pytest

from painn_deploy import units
from painn_deploy.errors import InputError
from painn_deploy.spectra import (
    SpectrumConfig,
    autocorrelation,
    compute_spectra,
    ir_spectrum,
    raman_spectra,
    read_properties,
    resolve_quantum_correction,
    spectral_density,
)
from painn_deploy.spectra.vibrational import SpectrumWarning

DT = 0.001  # ps
N = 6000

# the files carry timestep_fs = 0.5 like the MD driver's: the integrator-shift report (tested in
# test_integrator_shift.py) warns about the 24 cm^-1 shift at 4000 cm^-1
pytestmark = pytest.mark.filterwarnings("ignore:a 0.5 fs Verlet-type time step:UserWarning")


def _cos(nu_cm1, t, phase=0.0):
    return np.cos(nu_cm1 * units.RAD_PER_PS_PER_CM1 * t + phase)


def _series(seed: int, amp: float = 0.01):
    """Dipole [T, 3] and polarizability [T, 3, 3] of one run: two lines with random phases plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(N) * DT
    dip = np.zeros((N, 3))
    dip[:, 0] = amp * _cos(1700.0, t, rng.uniform(0, 6.3)) + 1e-3 * rng.normal(size=N)
    dip[:, 1] = 0.5 * amp * _cos(3000.0, t, rng.uniform(0, 6.3))
    aniso = np.array([[1.0, 0.3, 0.0], [0.3, -0.5, 0.0], [0.0, 0.0, -0.5]]) * 1e-3
    pol = (amp * 0.1 * _cos(1100.0, t, rng.uniform(0, 6.3)))[:, None, None] * np.eye(3)
    pol = pol + (amp * _cos(700.0, t, rng.uniform(0, 6.3)))[:, None, None] * aniso * 10
    return t, dip, pol


def _write(path, t, dip=None, pol=None, **attrs):
    with h5py.File(path, "w") as f:
        f.create_dataset("time", data=t).attrs["units"] = "ps"
        if dip is not None:
            f.create_dataset("dipole", data=dip).attrs["units"] = "e*nm"
        if pol is not None:
            f.create_dataset("polarizability", data=pol).attrs["units"] = "nm^3"
        for k, v in {"temperature_K": 300.0, "timestep_fs": 0.5, "record_interval_steps": 2, **attrs}.items():
            f.attrs[k] = v
    return str(path)


def _run(files, out=None, **config):
    return compute_spectra(SpectrumConfig(files=tuple(files), output=None if out is None else str(out), **config))


def test_a_file_a_running_simulation_writes_is_read_with_a_warning(tmp_path):
    """A properties.h5 that another process holds open for writing (a running painn-simulate) is locked: read
    without the lock, with a warning that it holds the frames written up to the run's last checkpoint (it was
    "cannot be read as HDF5 ... is it a properties.h5 file?")."""
    import subprocess
    import sys

    t, d, _ = _series(0, 0.01)
    path = _write(tmp_path / "live.h5", t, d)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import h5py, sys, time; f = h5py.File({path!r}, 'a'); print('open', flush=True); "
         "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.warns(SpectrumWarning, match=r"live.h5 is open for writing \(a painn-simulate still running\?\)"):
            props = read_properties(path)
        np.testing.assert_array_equal(props.dipole_e_nm, d)
    finally:
        holder.communicate("")


# --- replicas -------------------------------------------------------------------------------------


def test_replica_file_gives_the_same_spectra_as_separate_files(tmp_path):
    amps = (0.01, 0.02, 0.035)
    series = [_series(seed, amp) for seed, amp in enumerate(amps)]
    t = series[0][0]
    separate = [_write(tmp_path / f"run{k}.h5", t, d, p, replicas=1) for k, (_, d, p) in enumerate(series)]
    stacked = _write(
        tmp_path / "replicas.h5",
        t,
        np.stack([d for _, d, _ in series], axis=1),  # [T, R, 3]
        np.stack([p for _, _, p in series], axis=1),  # [T, R, 3, 3]
        replicas=3,
    )
    props = read_properties(stacked)
    assert props.replicas == 3 and props.dipole_e_nm.shape == (N, 3, 3) and len(props.runs()) == 3
    a = _run([stacked], tmp_path / "a", wmax_cm1=4000.0)
    b = _run(separate, tmp_path / "b", wmax_cm1=4000.0)
    assert a.metadata["n_runs"] == b.metadata["n_runs"] == 3
    assert a.metadata["runs"] == [f"{stacked}[replica {k}]" for k in range(3)]
    for name, sa in a.spectra().items():
        sb = b.spectra()[name]
        assert sa.n_runs == 3
        np.testing.assert_allclose(sa.intensity, sb.intensity, rtol=1e-12, atol=0, err_msg=name)
        np.testing.assert_allclose(sa.stderr, sb.stderr, rtol=1e-12, atol=0, err_msg=name)
    assert np.isfinite(a.ir.stderr).all() and a.ir.stderr.max() > 0
    for name in a.spectra():  # the written files agree too
        ca = np.loadtxt(tmp_path / "a" / f"{name}.csv", delimiter=",", skiprows=1)
        cb = np.loadtxt(tmp_path / "b" / f"{name}.csv", delimiter=",", skiprows=1)
        np.testing.assert_array_equal(ca, cb)
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert meta["n_runs"] == 3 and meta["replicas"] == {stacked: 3}
    # the library takes the replica axis directly: [T, R, 3] is R runs
    direct = ir_spectrum(props.time_ps, props.dipole_e_nm, 300.0, wmax_cm1=4000.0)
    np.testing.assert_allclose(direct.intensity, a.ir.intensity, rtol=1e-12)
    r = raman_spectra(props.time_ps, props.polarizability_nm3, 300.0, wmax_cm1=4000.0)
    np.testing.assert_allclose(r.activity.intensity, a.raman.activity.intensity, rtol=1e-12)


def test_replicas_and_files_are_weighted_per_run(tmp_path):
    """A file with 2 replicas plus a single-run file: 3 runs of equal weight, not 2 files."""
    series = [_series(seed, amp) for seed, amp in ((5, 0.01), (6, 0.01), (7, 0.04))]
    t = series[0][0]
    two = _write(tmp_path / "two.h5", t, np.stack([series[0][1], series[1][1]], axis=1), replicas=2)
    one = _write(tmp_path / "one.h5", t, series[2][1])  # an older file: no replicas attribute
    res = _run([two, one], wmax_cm1=4000.0)
    singles = [ir_spectrum(t, d, 300.0, wmax_cm1=4000.0).intensity for _, d, _ in series]
    np.testing.assert_allclose(res.ir.intensity, np.mean(singles, axis=0), rtol=1e-12)
    np.testing.assert_allclose(res.ir.stderr, np.std(singles, axis=0, ddof=1) / math.sqrt(3), rtol=1e-9)
    per_file = 0.5 * (0.5 * (singles[0] + singles[1]) + singles[2])
    assert np.max(np.abs(res.ir.intensity - per_file)) > 0.1 * res.ir.intensity.max()  # the test has teeth


def test_replica_axis_must_match_the_attribute(tmp_path):
    t, d, p = _series(1)
    bad = _write(tmp_path / "bad.h5", t, np.stack([d, d], axis=1), replicas=3)
    with pytest.raises(InputError, match="replicas = 3"):
        read_properties(bad)
    flat = _write(tmp_path / "flat.h5", t, d, replicas=2)
    with pytest.raises(InputError, match="no replica axis"):
        read_properties(flat)
    mixed = _write(tmp_path / "mixed.h5", t, np.stack([d, d], axis=1), np.stack([p, p, p], axis=1))
    with pytest.raises(InputError, match="different replica axes"):
        read_properties(mixed)
    with pytest.raises(InputError, match=r"\[T, R, 3\]"):
        read_properties(_write(tmp_path / "wrong.h5", t, d[:, :2]))


# --- ring-polymer MD: Kubo-transformed correlation functions ---------------------------------------


def test_resolve_quantum_correction():
    assert resolve_quantum_correction("auto", "classical")[0] == "harmonic"
    assert resolve_quantum_correction("schofield", "classical")[0] == "schofield"
    assert resolve_quantum_correction("auto", "kubo")[0] == "kubo"
    assert resolve_quantum_correction("kubo", "kubo")[0] == "kubo"
    assert resolve_quantum_correction("harmonic", "kubo")[0] == "kubo"  # the identical factor
    for kind in ("none", "schofield", "standard"):
        with pytest.raises(InputError, match="twice"):
            resolve_quantum_correction(kind, "kubo")
    with pytest.raises(InputError, match="Kubo-transformed"):
        resolve_quantum_correction("kubo", "classical")
    with pytest.raises(InputError, match="unknown correlation"):
        resolve_quantum_correction("auto", "symmetrized")


def _documented_ir(t, dip, temperature_K, s):
    """epsilon_IR = N_A pi beta omega^2 I[M](omega) / (3 c eps0) / (10 m^2/mol), F = 1, from the
    documented formula in SI units (not from the package's prefactor code), with omega^2 I[M] the spectral
    density of the dipole's forward differences divided by sinc^2(omega dt / 2)."""
    corr = autocorrelation(np.diff(dip, axis=0) / DT, int(round(s.metadata["max_corr_time_ps"] / DT)))
    omega, rate_dens = spectral_density(corr, DT, window="hann", zero_pad=4.0)
    beta = 1.0 / (units.BOLTZMANN_J_PER_K * temperature_K)
    transfer = (2 * np.sin(omega * DT / 2) / DT) ** 2  # of forward differences; omega^2 I = 0 at omega = 0
    weighted = omega**2 * np.divide(rate_dens, transfer, out=np.zeros_like(rate_dens), where=omega > 0)
    weighted_si = weighted * (units.ELEMENTARY_CHARGE_C * 1e-9) ** 2 * 1e12
    eps = (
        units.AVOGADRO_PER_MOL
        * math.pi
        * beta
        * weighted_si
        / (3 * units.SPEED_OF_LIGHT_M_PER_S * units.VACUUM_PERMITTIVITY_F_PER_M)
        / 10.0
    )
    nu = omega / units.RAD_PER_PS_PER_CM1
    return np.interp(s.wavenumber_cm1, nu, eps)


def test_kubo_file_gets_the_kubo_prefactor(tmp_path):
    t, dip, pol = _series(11)
    kubo = _write(tmp_path / "rpmd.h5", t, dip, pol, beads=8, correlation="kubo")
    res = _run([kubo], tmp_path / "out", wmax_cm1=4000.0)
    assert res.metadata["correlation"] == "kubo" and res.metadata["quantum_correction"] == "kubo"
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["quantum_correction"] == "kubo" and meta["settings"]["quantum_correction"] == "kubo"
    assert meta["quantum_correction_requested"] == "auto" and "Kubo" in meta["quantum_correction_reason"]
    assert list(meta["beads"].values()) == [8]  # (the plots' titles name the ring polymer)
    # the documented formula: classical prefactor beta omega^2, nothing else
    expected = _documented_ir(t, dip, 300.0, res.ir)
    np.testing.assert_allclose(res.ir.intensity, expected, rtol=1e-9, atol=1e-12 * expected.max())
    # a second correction would have changed the 3000 cm^-1 band a lot (x = 14.4 at 300 K)
    standard = _run([_write(tmp_path / "cl.h5", t, dip, pol)], quantum_correction="standard", wmax_cm1=4000.0)
    i3000 = np.argmin(abs(res.ir.wavenumber_cm1 - 3000.0))
    assert res.ir.intensity[i3000] > 5 * standard.ir.intensity[i3000]
    # same data marked classical with the default (harmonic) correction: the same numbers, another treatment
    classical = _run([_write(tmp_path / "cl2.h5", t, dip, pol)], wmax_cm1=4000.0)
    assert classical.metadata["quantum_correction"] == "harmonic"
    for name, s in res.spectra().items():
        np.testing.assert_allclose(s.intensity, classical.spectra()[name].intensity, rtol=1e-12, err_msg=name)


def test_kubo_conflicts_and_mixtures_are_refused(tmp_path, capsys):
    from painn_deploy.cli.spectrum import main

    t, dip, _ = _series(12)
    kubo = _write(tmp_path / "rpmd.h5", t, dip, beads=4, correlation="kubo")
    classical = _write(tmp_path / "md.h5", t, dip, beads=1, correlation="classical")
    out = str(tmp_path / "out")
    for kind in ("standard", "schofield", "none"):
        assert main([kubo, "-o", out, "--no-plots", "--quantum-correction", kind]) == 2
        err = capsys.readouterr().err
        assert f"'{kind}' cannot be applied to ring-polymer MD data" in err and "Traceback" not in err
    assert main([classical, "-o", out, "--no-plots", "--quantum-correction", "kubo"]) == 2
    assert "Kubo-transformed" in capsys.readouterr().err
    assert main([classical, kubo, "-o", out, "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "cannot average classical MD and ring-polymer MD" in err and kubo in err and classical in err
    # 'harmonic' is the same factor as the Kubo relation: accepted, recorded as the kubo treatment
    assert main([kubo, "-o", out, "--no-plots", "--quantum-correction", "harmonic"]) == 0
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["quantum_correction"] == "kubo" and meta["quantum_correction_requested"] == "harmonic"
    assert "notice: quantum treatment: kubo" in capsys.readouterr().out


def test_beads_without_correlation_attribute_warn(tmp_path):
    t, dip, _ = _series(13)
    old = _write(tmp_path / "old_rpmd.h5", t, dip, beads=8)
    with pytest.warns(SpectrumWarning, match="no 'correlation' attribute"):
        props = read_properties(old)
    assert props.correlation == "classical"
    with pytest.raises(InputError, match="unknown 'correlation'"):
        read_properties(_write(tmp_path / "odd.h5", t, dip, correlation="quantum"))


def test_only_distinct_runs_of_one_kind_are_averaged(tmp_path):
    """A file named twice, or two files of one trajectory (runs with the same --seed), would count as independent
    runs and shrink the standard error to nothing; ring polymers of different bead numbers are different
    approximations. All three are refused (they were averaged); runs of different models are warned about."""
    t, dip, pol = _series(1)
    _, other, _ = _series(2)
    a = _write(tmp_path / "a.h5", t, dip, pol)
    copy = _write(tmp_path / "copy.h5", t, dip, pol)
    with pytest.raises(InputError, match=r"a.h5 is given twice \(also as .*a.h5\): name each run once"):
        _run([a, str(tmp_path / "." / "a.h5")])
    with pytest.raises(InputError, match=r"a.h5 and .*copy.h5 hold the same series \(over their first 6000 frames\)"):
        _run([a, copy])
    # the same seed run for fewer steps: the same start
    shorter = _write(tmp_path / "shorter.h5", t[:4000], dip[:4000], pol[:4000])
    with pytest.raises(InputError, match=r"over their first 4000 frames\): one trajectory twice \(the same --seed\?\)"):
        _run([a, shorter])
    p8 = _write(tmp_path / "p8.h5", t, dip, beads=8, correlation="kubo")
    p16 = _write(tmp_path / "p16.h5", t, other, beads=16, correlation="kubo")
    with pytest.raises(InputError, match=r"ring-polymer runs of different bead numbers \(8, 16\)"):
        _run([p8, p16])
    m1 = _write(tmp_path / "m1.h5", t, dip, model_sha256="1" * 64)
    m2 = _write(tmp_path / "m2.h5", t, other, model_sha256="2" * 64)
    with pytest.warns(SpectrumWarning, match="run with 2 different models"):
        _run([m1, m2])
    # two exports of one checkpoint (each run of a checkpoint exports its own file): one model, nothing said
    e1 = _write(tmp_path / "e1.h5", t, dip, model_sha256="1" * 64, checkpoint_sha256="c" * 64)
    e2 = _write(tmp_path / "e2.h5", t, other, model_sha256="2" * 64, checkpoint_sha256="c" * 64)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*different models")
        _run([e1, e2])


def test_files_of_different_time_steps_are_not_told_to_correct_the_shift(tmp_path):
    """Files sampled alike but run with 0.5 and 1 fs steps: the shift of the largest step is reported, and the
    report does not suggest --correct-integrator-shift, which refuses files of different steps."""
    t, dip, _ = _series(1)
    _, other, _ = _series(2)
    half = _write(tmp_path / "half.h5", t, dip, timestep_fs=0.5, record_interval_steps=2)
    one = _write(tmp_path / "one.h5", t, other, timestep_fs=1.0, record_interval_steps=1)
    result = _run([half, one], wmax_cm1=4000.0)
    said = " ".join(result.warnings + result.metadata["notices"])
    assert "a 1 fs Verlet-type time step" in said and "the files were run with different time steps" in said
    assert "maps them back" not in said
    with pytest.raises(InputError, match="different time steps"):
        _run([half, one], wmax_cm1=4000.0, correct_integrator_shift=True)


def test_a_short_or_broken_file_is_named_with_the_way_on(tmp_path):
    """A run of a few frames more than the minimum is told to run longer (it was told to lengthen a correlation time
    it never set); NaN from a crashed run is named with its file and first frame (it said "the run")."""
    t, dip, _ = _series(1)
    short = _write(tmp_path / "short.h5", t[:12], dip[:12])
    with pytest.raises(InputError, match=r"The shortest run \(.* ps\) is too short: Run at least"):
        _run([short])
    broken = dip.copy()
    broken[30:] = np.nan
    crashed = _write(tmp_path / "crashed.h5", t, broken)
    with pytest.raises(InputError, match=r"crashed.h5: dipole contains NaN or infinite values from frame 30 on"):
        _run([_write(tmp_path / "fine.h5", t, dip), crashed])


def test_a_time_step_attribute_that_contradicts_the_frames_is_refused(tmp_path):
    """timestep_fs x record_interval_steps must be the frames' spacing: a wrong step would misplace the integrator
    shift's report and correction (it was read as given)."""
    t, dip, _ = _series(1)
    wrong = _write(tmp_path / "wrong.h5", t, dip, timestep_fs=0.25, record_interval_steps=2)
    with pytest.raises(InputError, match=r"wrong.h5: its frames are 1 fs apart, but its attributes say every 2 step"):
        _run([wrong])
