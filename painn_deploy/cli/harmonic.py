"""painn-harmonic: harmonic frequencies, IR intensities and Raman activities of an exported model.

    painn-harmonic model.pt ethanol.pdb -o harmonic/

Writes modes.csv (mode, wavenumber_cm-1, ir_intensity_km_per_mol, raman_activity_A4_per_amu),
harmonic.json (all results, minimisation report, normal-mode displacements), minimized.pdb and
modes.png.  ``painn-spectrum --sticks harmonic/modes.csv`` overlays the sticks on MD spectra.
Formulas and units: docs/spectra.md.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch  # import torch before anything that may import openmmtorch

from ..errors import InputError, PainnDeployError
from ..spectra.harmonic import DEFAULT_FMAX_KJ_MOL_NM, harmonic_analysis, load_model
from ..spectra.io import write_modes_csv
from ..structures import load_pdb


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="painn-harmonic",
        description=(
            "Minimise a structure with an exported model, then compute harmonic vibrational wavenumbers "
            "(cm^-1, negative = imaginary) from the autograd Hessian with translations and rotations "
            "projected out, IR intensities (km/mol) from dipole derivatives and Raman activities "
            "45 a'^2 + 7 g'^2 (Angstrom^4/amu) from polarizability derivatives. See docs/spectra.md."
        ),
    )
    p.add_argument("model", help="exported TorchScript model (.pt): energy in kJ/mol from positions in nm")
    p.add_argument("structure", help="PDB file of the molecule (positions in Angstrom, element columns set)")
    p.add_argument("-o", "--output", default="harmonic", help="output directory (default: %(default)s/)")
    p.add_argument("--no-minimize", action="store_true", help="use the PDB geometry as it is (no minimisation)")
    p.add_argument(
        "--fmax",
        type=float,
        default=DEFAULT_FMAX_KJ_MOL_NM,
        metavar="KJ/MOL/NM",
        help="minimisation threshold: largest atomic force in kJ/mol/nm (default: %(default)s)",
    )
    p.add_argument(
        "--max-steps", type=int, default=5000, help="maximum L-BFGS iterations (count; default: %(default)s)"
    )
    p.add_argument(
        "--linear",
        choices=("auto", "yes", "no"),
        default="auto",
        help="treat the molecule as linear (5 external modes) or not (6); auto (default) detects it from the moments of inertia",
    )
    p.add_argument("--device", default="cpu", help="torch device to run the model on: cpu, cuda (default: %(default)s)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (count; default: %(default)s, fastest for single molecules: their tensors are "
        "too small to gain from threads, and on a busy machine thread contention slows them a hundredfold)",
    )
    p.add_argument("--no-plots", action="store_true", help="do not write modes.png")
    return p


def _write_pdb(topology, positions_nm, path) -> Path:
    from openmm import unit
    from openmm.app import PDBFile

    with open(path, "w") as fh:
        PDBFile.writeFile(topology, positions_nm * unit.nanometer, fh)
    return Path(path)


def _run(args) -> tuple[object, list[Path]]:
    out = Path(args.output)
    if args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    pdb, numbers, pos, _ = load_pdb(args.structure)
    topology = pdb.topology
    module = load_model(args.model, device=args.device)
    linear = {"auto": None, "yes": True, "no": False}[args.linear]
    try:
        result = harmonic_analysis(
            module,
            pos,
            numbers,
            minimize=not args.no_minimize,
            fmax_kj_mol_nm=args.fmax,
            max_steps=args.max_steps,
            linear=linear,
        )
    except RuntimeError as exc:
        raise InputError(
            f"the model failed on {args.structure} ({str(exc).splitlines()[0] if str(exc) else exc}). Check "
            "that the structure has the atoms, in the order, the model was exported for."
        ) from exc
    out.mkdir(parents=True, exist_ok=True)
    written = [write_modes_csv(result, out / "modes.csv")]
    info = result.to_dict()
    info.update(model=str(args.model), structure=str(args.structure))
    (out / "harmonic.json").write_text(json.dumps(info, indent=1, default=float) + "\n")
    written.append(out / "harmonic.json")
    written.append(_write_pdb(topology, result.positions_nm, out / "minimized.pdb"))
    if not args.no_plots:
        from ..spectra.plots import plot_harmonic_sticks

        written.append(
            plot_harmonic_sticks(
                out / "modes.png",
                result.wavenumber_cm1,
                result.ir_intensity_km_per_mol,
                result.raman_activity_A4_per_amu,
                title=f"Harmonic spectrum of {Path(args.structure).name}",
            )
        )
    return result, written


def main(argv=None) -> int:
    """Entry point of ``painn-harmonic``; returns the exit status (0 ok, 1 bad input)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result, written = _run(args)
        except PainnDeployError as exc:
            for w in caught:
                if issubclass(w.category, UserWarning):
                    print(f"warning: {w.message}", file=sys.stderr)
            print(f"error: {exc}", file=sys.stderr)
            return 1
    for m in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
        print(f"warning: {m}", file=sys.stderr)
    mini = result.minimization
    if mini.get("performed"):
        state = "converged" if mini.get("converged") else "NOT converged"
        print(f"minimisation: {mini.get('steps')} steps, {state}")
    print(
        f"energy {result.energy_kj_mol:.6f} kJ/mol, "
        f"largest force {result.max_force_kj_mol_nm:.3g} kJ/mol/nm, "
        f"model dtype {result.dtype}"
    )
    ext = ", ".join(f"{v:.2f}" for v in result.external_wavenumber_cm1)
    print(
        f"{'linear' if result.linear else 'non-linear'} molecule: {len(result.external_wavenumber_cm1)} "
        f"translations/rotations projected out (their curvature, cm^-1: {ext})"
    )
    print(result.table())
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
