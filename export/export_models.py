"""Export a painn-train checkpoint for the training molecule and for a periodic box of it.

    python export/export_models.py runs/ethanol/best.ckpt

writes model.pt (the training molecule, float32, all pairs), model_float64.pt and, for an ethanol model, a box of
64 ethanol molecules at liquid density, ethanol_box.pdb + model_box.pt (periodic, cell list).
"""

import sys

from painn_deploy.deploy import export
from painn_deploy.resources import RESOURCES
from painn_deploy.structures import molecular_box, read_pdb, write_pdb

checkpoint = sys.argv[1]
meta = export(checkpoint, "model.pt")
print("model.pt:", meta["elements"], meta["validation"]["rotation"])
export(checkpoint, "model_float64.pt", dtype="float64")

z, positions_nm, _ = read_pdb(RESOURCES / "ethanol.pdb")
if sorted(meta["atomic_numbers"]) != sorted(z):
    sys.exit(
        f"the box is of ethanol; {checkpoint} was trained on {meta['elements']}: export it with painn-export --pdb"
    )
box_z, box_positions, box = molecular_box(z, positions_nm, 64, density_g_per_cm3=0.789)
write_pdb("ethanol_box.pdb", box_z, box_positions, box, atoms_per_residue=len(z))
meta = export(checkpoint, "model_box.pt", pdb="ethanol_box.pdb", neighbor_mode="cell_list")
print("model_box.pt:", len(meta["atomic_numbers"]), "atoms, periodic:", meta["periodic"])
