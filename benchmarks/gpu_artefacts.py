"""Prepare the inputs of ``benchmarks/gpu.py``: exported artefacts of the bundled model and their positions.

GPU machines may carry another torch and no OpenMM, so ``gpu.py`` needs only torch and these files.
This script (which needs painn_deploy) writes into ``--out`` (default ``benchmarks/gpu_inputs/``):

- ``ethanol.pt``, ``aspirin.pt`` (all pairs) and ``ethanol.npz``, ``aspirin.npz`` (positions, nm);
- for periodic boxes of liquid ethanol (0.789 g/cm^3): ``box_<atoms>_cell_list.pt``,
  ``box_<atoms>_static.pt`` and ``box_<atoms>.npz`` (positions and box vectors, nm).

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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(common.ROOT / "benchmarks" / "gpu_inputs"))
    p.add_argument("--molecules", type=int, nargs="+", default=[64, 512, 3375, 11000],
                   help="ethanol molecules per box (9 atoms each)")  # fmt: skip
    args = p.parse_args(argv)
    from painn_deploy.deploy import export
    from painn_deploy.structures import molecular_box, read_pdb, write_pdb

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("ethanol", "aspirin"):
        export(CHECKPOINT, out / f"{name}.pt", pdb=str(common.RESOURCES / f"{name}.pdb"))
        _, positions, _ = read_pdb(common.RESOURCES / f"{name}.pdb")
        np.savez(out / f"{name}.npz", positions_nm=positions)
        print("wrote", out / f"{name}.pt", flush=True)
    z1, pos1, _ = read_pdb(common.RESOURCES / "ethanol.pdb")
    for n in args.molecules:
        z, pos, box = molecular_box(z1, pos1, n, density_g_per_cm3=0.789)
        atoms = len(z)
        np.savez(out / f"box_{atoms}.npz", positions_nm=pos, box_nm=box)
        with tempfile.TemporaryDirectory() as tmp:
            pdb = Path(tmp) / "box.pdb"
            write_pdb(pdb, z, pos, box, atoms_per_residue=len(z1))
            for mode in ("cell_list", "static"):
                export(CHECKPOINT, out / f"box_{atoms}_{mode}.pt", pdb=str(pdb), neighbor_mode=mode)
                print("wrote", out / f"box_{atoms}_{mode}.pt", flush=True)


if __name__ == "__main__":
    main()
