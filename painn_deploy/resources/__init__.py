"""Files shipped with the package: the bundled ethanol model (checkpoint and artefact), the slice of its
training data the demo trains on, structures, and force fields for solvated runs."""

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent
BUNDLED_MODEL = RESOURCES / "ethanol_painn.pt"
BUNDLED_CHECKPOINT = RESOURCES / "ethanol_painn.ckpt"
ETHANOL_SUBSET = RESOURCES / "ethanol_gfn2xtb_subset.npz"
FORCEFIELDS = RESOURCES / "forcefields"
#: amber14's water models (OpenMM's force-field files) for solvated runs
WATER_MODELS = {"tip3p": "amber14/tip3p.xml", "tip3pfb": "amber14/tip3pfb.xml", "spce": "amber14/spce.xml"}
STRUCTURES = {"ethanol": RESOURCES / "ethanol.pdb", "aspirin": RESOURCES / "aspirin.pdb"}
