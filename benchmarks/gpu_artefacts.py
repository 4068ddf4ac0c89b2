"""Prepare the inputs of ``benchmarks/gpu.py``: exported artefacts of the bundled model, their positions
and float64 reference energies and forces.

GPU machines may carry another torch and no OpenMM, so ``gpu.py`` needs only torch and these files.
This script (which needs painn_deploy) writes into ``--out`` (default ``benchmarks/gpu_inputs/``):

- ``ethanol.pt``, ``aspirin.pt`` (all pairs) and ``ethanol.npz``, ``aspirin.npz``: positions (nm) and
  a batch of 64 configurations around them (ring-polymer beads, replicas);
- for periodic boxes of liquid ethanol (0.789 g/cm^3): ``box_<atoms>_cell_list.pt``,
  ``box_<atoms>_static.pt`` and ``box_<atoms>.npz`` (positions and box vectors, nm).

Each ``.npz`` also holds the energies (kJ/mol) and forces (kJ/mol/nm) of its configurations from the
artefact cast to float64 and evaluated here on the CPU, against which ``gpu.py`` checks what it runs
(boxes up to ``--reference-max-atoms``: a float64 evaluation of 99,000 atoms outgrows 24 GB).

    python benchmarks/gpu_artefacts.py [--molecules 64 512 3375 11000]
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CHECKPOINT = common.RESOURCES / "ethanol_painn.ckpt"
BATCH = 64
BATCH_SPREAD_NM = 0.002


def reference(artefact: Path, *configurations) -> list:
    """Energy and forces from ``artefact`` in float64 on the CPU (loaded once) of each ``(positions_nm, box_nm)``
    (positions [N, 3] or [B, N, 3]; box None for a molecule)."""
    import torch

    from painn_deploy.deploy import load

    model = load(artefact)
    model.module.to(torch.float64)
    results = []
    for positions_nm, box_nm in configurations:
        box = None if box_nm is None else torch.tensor(box_nm, dtype=torch.float64)
        with torch.no_grad():
            energy, forces = model.energy_and_forces(torch.tensor(positions_nm, dtype=torch.float64), box)
        results.append({"energy_kj_mol": energy.numpy(), "forces_kj_mol_nm": forces.numpy(),
                        "reference_torch": torch.__version__})  # fmt: skip
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(common.ROOT / "benchmarks" / "gpu_inputs"))
    p.add_argument("--molecules", type=int, nargs="*", default=[64, 512, 3375, 11000],
                   help="ethanol molecules per box (9 atoms each); none: no boxes")  # fmt: skip
    p.add_argument("--reference-max-atoms", type=int, default=40_000, help="no reference for larger boxes")
    args = p.parse_args(argv)
    from painn_deploy.deploy import export
    from painn_deploy.structures import molecular_box, read_pdb, write_pdb

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("ethanol", "aspirin"):
        artefact = out / f"{name}.pt"
        export(CHECKPOINT, artefact, pdb=str(common.RESOURCES / f"{name}.pdb"))
        _, positions, _ = read_pdb(common.RESOURCES / f"{name}.pdb")
        batch = positions[None] + BATCH_SPREAD_NM * rng.normal(size=(BATCH,) + positions.shape)
        single, batched = reference(artefact, (positions, None), (batch, None))
        np.savez(out / f"{name}.npz", positions_nm=positions, batch_positions_nm=batch, **single,
                 **{f"batch_{k}": v for k, v in batched.items()})  # fmt: skip
        print("wrote", artefact, flush=True)
    z1, pos1, _ = read_pdb(common.RESOURCES / "ethanol.pdb")
    for n in args.molecules:
        z, pos, box = molecular_box(z1, pos1, n, density_g_per_cm3=0.789, min_distance_nm=0)  # (timing only)
        atoms = len(z)
        with tempfile.TemporaryDirectory() as tmp:
            pdb = Path(tmp) / "box.pdb"
            write_pdb(pdb, z, pos, box, atoms_per_residue=len(z1))
            for mode in ("cell_list", "static"):
                export(CHECKPOINT, out / f"box_{atoms}_{mode}.pt", pdb=str(pdb), neighbor_mode=mode)
                print("wrote", out / f"box_{atoms}_{mode}.pt", flush=True)
        # (both lists give the same forces, which the tests check; the cell list is the cheaper reference)
        expected = (
            reference(out / f"box_{atoms}_cell_list.pt", (pos, box))[0] if atoms <= args.reference_max_atoms else {}
        )
        np.savez(out / f"box_{atoms}.npz", positions_nm=pos, box_nm=box, **expected)


if __name__ == "__main__":
    main()
