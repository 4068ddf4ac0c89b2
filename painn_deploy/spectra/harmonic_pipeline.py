"""``compute_harmonic``: model + structure -> normal modes -> modes.csv, harmonic.json, minimized.pdb, modes.png.

The whole of ``painn-harmonic`` as one library call on a :class:`HarmonicConfig`:

0. refuse an output folder that holds an earlier run's harmonic.json, unless ``overwrite`` is set;
1. read the PDB; a CRYST1 box is reported as ignored (the analysis is of one isolated molecule);
2. open the model and check it against the structure before evaluating anything
   (:func:`~.harmonic.load_model`): a painn-train checkpoint is built in float64 for the structure, which
   must be its training molecule; an exported model must have been exported for these atoms, in this order;
3. minimise and analyse (:func:`~.harmonic.harmonic_analysis`);
4. write modes.csv (mode, wavenumber_cm-1, ir_intensity_km_per_mol, raman_activity_A4_per_amu), modes.molden
   (the modes to animate in Molden, Jmol or Avogadro), minimized.pdb,
   modes.png and, last, harmonic.json (all results, the minimisation report, normal-mode displacements, the
   files written).

Formulas and units: docs/spectra.md.
"""

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..configuration import Config, option
from ..devices import torch_device
from ..errors import InputError
from ..files import check_output_folder, earlier_outputs, remove_stale_outputs, write_json
from .harmonic import DEFAULT_FMAX_KJ_MOL_NM, HarmonicResult, HarmonicWarning, harmonic_analysis, open_model
from .io import write_modes_csv, write_molden

DESCRIPTION = (
    "Minimise a structure with a model, then compute harmonic vibrational wavenumbers (cm^-1, negative = "
    "imaginary) from the Hessian with translations and rotations projected out, IR intensities (km/mol) from "
    "dipole derivatives and Raman activities 45 a'^2 + 7 g'^2 (Angstrom^4/amu) from polarizability derivatives. "
    "Options can also come from --config FILE.yaml (keys: option names with underscores, or the --config key an "
    "option names, e.g. max_steps); flags override the file. See docs/spectra.md."
)
#: The file a run writes last, naming the files it wrote; an output folder holding one is not overwritten by
#: accident.
RECORD = "harmonic.json"
OUTPUTS = ("modes.csv", "modes.molden", "minimized.pdb", "modes.png", RECORD)
FLOAT64_HINT = (
    "Give the painn-train checkpoint (.ckpt) instead of the exported model: painn-harmonic then evaluates it in "
    "float64 (for its training molecule; for other structures, painn-export --dtype float64)."
)


@dataclass(frozen=True)
class HarmonicConfig(Config):
    """Everything ``painn-harmonic`` does; field names are the keys of a YAML configuration file."""

    model: str | None = option(
        None,
        None,
        "the model: a painn-train checkpoint (.ckpt; evaluated in float64, best for harmonic analysis), an exported "
        "model (.pt, energy in kJ/mol from positions in nm), or any TorchScript module with that contract",
        "MODEL",
        "path",
    )
    structure: str | None = option(
        None,
        None,
        "PDB file of the molecule (positions in Angstrom, element columns set); a CRYST1 box is ignored",
        "STRUCTURE.pdb",
        "path",
    )
    output: str = option("harmonic", "--output", "output directory (default: harmonic/)", "DIR", "path", short="-o")
    minimize: bool = option(True, "--no-minimize", "use the PDB geometry as it is (no minimisation)", kind="bool")
    fmax_kj_mol_nm: float = option(
        DEFAULT_FMAX_KJ_MOL_NM, "--fmax", "minimisation threshold: largest atomic force in kJ/mol/nm", "KJ/MOL/NM"
    )
    max_steps: int = option(5000, "--max-steps", "maximum L-BFGS iterations", "N", "int")
    linear: str = option(
        "auto",
        "--linear",
        "treat the molecule as linear (5 external modes) or not (6); auto (default) detects it from the moments "
        "of inertia",
        kind=("auto", "yes", "no"),
    )
    masses: str = option(
        "",
        "--masses",
        "other masses for some atoms (isotopologues): 1-based atom:amu pairs, e.g. 9:2.014 for a deuterated "
        "hydroxyl of ethanol.pdb; the other atoms take the IUPAC standard atomic masses",
        "ATOM:AMU,...",
        "str",
    )
    device: str = option("cpu", "--device", "torch device to run the model on: cpu, cuda", "DEVICE", "str")
    threads: int = option(
        1,
        "--threads",
        "torch CPU threads (default: 1, fastest for single molecules: their tensors are too small to gain from "
        "threads, and on a busy machine thread contention slows them down many times)",
        "N",
        "int",
    )
    plots: bool = option(True, "--no-plots", "do not write modes.png", kind="bool")
    overwrite: bool = option(
        False,
        "--overwrite",
        "replace the results of an earlier painn-harmonic in OUTPUT, deleting its files that this run does not "
        "write again (without it, such a folder is refused)",
        kind="bool",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.model is None or self.structure is None:
            raise InputError("give the model (MODEL: .ckpt or .pt) and the structure (STRUCTURE.pdb)")
        if self.threads < 1:
            raise InputError(f"--threads must be at least 1, got {self.threads}")
        if not 0 < self.fmax_kj_mol_nm < math.inf or self.max_steps < 0:
            raise InputError(f"--fmax must be positive and finite (got {self.fmax_kj_mol_nm}), --max-steps at least 0")


@dataclass
class HarmonicRun:
    """What :func:`compute_harmonic` computed and wrote."""

    config: HarmonicConfig
    result: HarmonicResult
    notes: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        """Minimisation, energy, external modes and the table of modes, for the terminal."""
        res, mini, lines = self.result, self.result.minimization, []
        if mini.get("performed"):
            lines.append(
                f"minimisation: {mini.get('steps')} steps, {'converged' if mini.get('converged') else 'NOT converged'}"
            )
        lines.append(
            f"energy {res.energy_kj_mol:.6f} kJ/mol, largest force {res.max_force_kj_mol_nm:.3g} kJ/mol/nm, "
            f"model dtype {res.dtype}; harmonic zero-point energy {res.zero_point_energy_kj_mol:.3f} kJ/mol"
        )
        ext = ", ".join(f"{v:.2f}" for v in res.external_wavenumber_cm1)
        lines.append(
            f"{'linear' if res.linear else 'non-linear'} molecule: {len(res.external_wavenumber_cm1)} "
            f"translations/rotations projected out (their curvature, cm^-1: {ext})"
        )
        lines.append(res.table())
        if self.written:
            lines.append(f"wrote {', '.join(str(p) for p in self.written)}")
        return "\n".join(lines)


def compute_harmonic(config: HarmonicConfig) -> HarmonicRun:
    """Run the analysis described by ``config`` and write its outputs to ``config.output``."""
    from ..structures import check_positions, load_pdb

    out = check_output_folder(config.output, RECORD, config.overwrite)
    inputs = {Path(p).resolve() for p in (config.structure, config.model)}
    overwritten = sorted(str(out / name) for name in OUTPUTS if (out / name).resolve() in inputs)
    if overwritten:
        raise InputError(
            f"-o {out} would overwrite the input {overwritten[0]} (painn-harmonic writes {', '.join(OUTPUTS)}); "
            "give another -o/--output"
        )
    torch_device(config.device, "--device ")
    pdb, numbers, positions_nm, box_nm = load_pdb(config.structure)
    check_positions(positions_nm, None, where=config.structure)  # (before the model: a duplicated atom is named)
    where = Path(config.structure).name
    notes = []
    if box_nm is not None:
        notes.append(
            f"{where} has a CRYST1 box, which the harmonic analysis ignores: the structure is treated as one "
            "isolated molecule (no periodic images)"
        )
        warnings.warn(notes[-1], HarmonicWarning, stacklevel=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        masses = _masses(config.masses, numbers)
        module, envelope = open_model(config.model, config.device, numbers, box_nm, where)
        result = harmonic_analysis(
            module,
            positions_nm,
            numbers,
            masses_amu=masses,
            minimize=config.minimize,
            fmax_kj_mol_nm=config.fmax_kj_mol_nm,
            max_steps=config.max_steps,
            linear={"auto": None, "yes": True, "no": False}[config.linear],
            float64_hint=FLOAT64_HINT if Path(config.model).suffix != ".ckpt" else None,
            where=config.structure,
        )
    except torch.jit.Error as exc:  # a TorchScript module of unknown contract failed on the structure
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"the model failed on {config.structure} ({first}). Check that the structure has the atoms, in the "
            "order, the model was exported for."
        ) from exc
    finally:
        torch.set_num_threads(threads)
    outside = _outside_training_data(envelope, numbers, result.positions_nm)
    if outside:
        notes.append(outside)
        warnings.warn(outside, HarmonicWarning, stacklevel=2)
    run = HarmonicRun(config, result, notes)
    run.written = _write_outputs(run, pdb.topology)
    return run


def _outside_training_data(envelope, atomic_numbers, positions_nm) -> str:
    """A note when a bond of the analysed structure lies outside the distances of the model's training data
    ("" when inside, or when the model records none)."""
    from .. import units
    from ..deploy.envelope import EnvelopeCheck, describe
    from ..elements import symbol

    if not envelope:
        return ""
    bonds = [e for e in EnvelopeCheck(envelope, atomic_numbers).excursions(positions_nm[None] * units.ANGSTROM_PER_NM)
             if e.bonded]  # fmt: skip
    if not bonds:
        return ""
    e = bonds[0]
    text = describe(e, [a + 1 for a in e.atoms], [symbol(atomic_numbers[a]) for a in e.atoms])
    return (
        f"the analysed structure is outside the model's training data: {text}. Its modes are the model's "
        "extrapolation, not the molecule's: check the structure, or train on data that covers it"
    )


def _masses(text: str, atomic_numbers) -> np.ndarray:
    """The atoms' masses (amu): IUPAC standard atomic masses, with ``text``'s "atom:amu" pairs (1-based) instead."""
    from ..elements import masses_amu

    masses = masses_amu(atomic_numbers)
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            atom, mass = item.split(":")
            k, amu = int(atom), float(mass)
        except ValueError:
            raise InputError(f"--masses: {item!r} is not atom:amu (e.g. 9:2.014)") from None
        if not 1 <= k <= len(masses) or not 0 < amu < math.inf:
            raise InputError(
                f"--masses {item}: the atom must be 1 to {len(masses)} and the mass positive (amu), e.g. 9:2.014"
            )
        masses[k - 1] = amu
    return masses


def _write_outputs(run: HarmonicRun, topology) -> list[Path]:
    from openmm import unit
    from openmm.app import PDBFile

    out, result = Path(run.config.output), run.result
    earlier = earlier_outputs(out, RECORD)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_modes_csv(result, out / "modes.csv"), write_molden(result, out / "modes.molden")]
    with open(out / "minimized.pdb", "w") as fh:
        PDBFile.writeFile(topology, result.positions_nm * unit.nanometer, fh)
    written.append(out / "minimized.pdb")
    if run.config.plots:
        from .plots import plot_harmonic_sticks

        title = f"Harmonic spectrum of {Path(run.config.structure).name}"
        written.append(
            plot_harmonic_sticks(
                out / "modes.png",
                result.wavenumber_cm1,
                result.ir_intensity_km_per_mol,
                result.raman_activity_A4_per_amu,
                title=title,
            )
        )
    info = result.to_dict()
    info.update(model=str(run.config.model), structure=str(run.config.structure), config=run.config.as_dict())
    info["notes"] = run.notes
    written.append(out / RECORD)
    info["written"] = [str(p) for p in written]
    write_json(out / RECORD, info, indent=1, default=float)
    remove_stale_outputs(out, earlier, written)
    return written
