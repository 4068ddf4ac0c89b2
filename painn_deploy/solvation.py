"""A molecule in a box of water for ML/MM: OpenMM's ``Modeller.addSolvent`` with amber14 + TIP3P.

amber14 knows proteins, nucleic acids, water and ions, not small molecules; the bundled
``resources/forcefields/ethanol_oplsaa.xml`` (OPLS-AA, Jorgensen et al. 1996) adds ethanol (residue EOH,
as in ``resources/ethanol.pdb``).  Other molecules need their own OpenMM force-field XML
(``forcefield_files``), e.g. written by openmmforcefields' GAFF or SMIRNOFF template generators.

::

    topology, positions = solvate("ethanol.pdb", "solvated.pdb", padding_nm=1.0)
    mm_system = forcefield().createSystem(topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer)
"""

import warnings
from pathlib import Path
from typing import Optional, Sequence

import torch  # noqa: F401  (before openmm: see painn_deploy/__init__.py)
from openmm import app, unit

from .errors import InputError, SimulationWarning
from .files import require_file
from .resources import FORCEFIELDS, WATER_MODELS

ETHANOL_FORCEFIELD = FORCEFIELDS / "ethanol_oplsaa.xml"
LARGE_PADDING_NM = 3.0  # more water than this around a solute: probably Angstrom given as nm
WATERS_PER_NM3 = 33.4  # liquid water at 300 K


def forcefield(forcefield_files: Sequence = (), water_model: str = "tip3p") -> "app.ForceField":
    """amber14, its ``water_model``, the bundled ethanol template and the user's ``forcefield_files``."""
    if water_model not in WATER_MODELS:
        raise InputError(f"water_model must be one of {', '.join(WATER_MODELS)}, not {water_model!r}")
    files = ["amber14-all.xml", WATER_MODELS[water_model], str(ETHANOL_FORCEFIELD)]
    files += [str(f) for f in forcefield_files]
    try:
        return app.ForceField(*files)
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot read the force field {', '.join(files)}: {exc}") from exc


def check_templates(ff: "app.ForceField", topology: "app.Topology", where: str = "the structure") -> None:
    """Raise :class:`InputError` naming every residue of ``topology`` that the force field has no template for."""
    unmatched = ff.getUnmatchedResidues(topology)
    if not unmatched:
        return
    names = sorted({r.name for r in unmatched})
    first = unmatched[0]
    atoms = " ".join(a.name for a in first.atoms())
    no_bonds = len(list(first.atoms())) > 1 and not any(
        a.residue is first and b.residue is first for a, b in topology.bonds()
    )
    known = first.name in getattr(ff, "_templates", {})  # (ForceField keeps its templates by name here)
    if no_bonds and known:  # templates match residues by their bonds
        cause = (
            "the force field has a template of that name, but the residue has no bonds here: a PDB needs CONECT "
            "records for a residue that "
            "is not a standard one (OpenMM's PDBFile and Modeller write them)"
        )
    else:
        cause = (
            "give an OpenMM force-field XML that defines it (--forcefield-file on the command line, "
            "forcefield_files=[...] in Python; e.g. from openmmforcefields' GAFF or SMIRNOFF template generators)"
            + (", and CONECT records for its bonds in the PDB" if no_bonds else "")
        )
    raise InputError(
        f"{where}: no force-field template matches residue {', '.join(names)} (first: residue {first.name} "
        f"{first.id} of chain {first.chain.id}, atoms {atoms}); {cause}. Bundled: ethanol as residue EOH "
        f"({ETHANOL_FORCEFIELD.name})."
    )


def solvate(
    pdb_path,
    output_pdb=None,
    n_waters: Optional[int] = None,
    padding_nm: Optional[float] = None,
    forcefield_files: Sequence = (),
    water_model: str = "tip3p",
    box_shape: str = "cube",
    ionic_strength_molar: float = 0.0,
):
    """The molecule(s) of ``pdb_path`` in a periodic box of water: ``n_waters`` molecules, or a box sized by
    ``padding_nm`` (default 1 nm; OpenMM's padding: the solute's diameter plus ``padding_nm``, and at least
    2 ``padding_nm`` wide, so that the solute is at least ``padding_nm`` from its periodic images), plus counter-ions
    for a charged solute.  Writes ``output_pdb`` (with its
    CRYST1 box) when given; returns ``(topology, positions)``.

    Every residue needs a template in the force field (amber14 + the bundled ethanol + ``forcefield_files``):
    :func:`check_templates` names those without one."""
    if n_waters is not None and padding_nm is not None:
        raise InputError("give n_waters or padding_nm, not both")
    if n_waters is None and padding_nm is None:
        padding_nm = 1.0
    if n_waters is not None and int(n_waters) < 1:
        raise InputError(f"n_waters must be at least 1, not {n_waters}")
    if padding_nm is not None and not padding_nm > 0:
        raise InputError(
            f"padding_nm is the distance in nm between the solute and its periodic images (1 nm is usual), not "
            f"{padding_nm}"
        )
    if padding_nm is not None and padding_nm > LARGE_PADDING_NM:
        width = 2.0 * padding_nm
        warnings.warn(
            f"padding_nm = {padding_nm:g} nm builds a box about {width:.0f} nm wide, with about "
            f"{WATERS_PER_NM3 * width**3:,.0f} water molecules; padding_nm is in nm (1 nm is usual), not Angstrom",
            SimulationWarning,
            stacklevel=2,
        )
    pdb_path = require_file(pdb_path, "structure file", "give a PDB file of the solute")
    pdb = app.PDBFile(str(pdb_path))
    ff = forcefield(forcefield_files, water_model)
    check_templates(ff, pdb.topology, str(pdb_path))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    size = {"numAdded": int(n_waters)} if n_waters is not None else {"padding": padding_nm * unit.nanometer}
    try:
        modeller.addSolvent(
            ff,
            model=water_model,
            boxShape=box_shape,
            ionicStrength=ionic_strength_molar * unit.molar,
            **size,
        )
    except ValueError as exc:  # a template OpenMM still could not match, an unknown box shape, ...
        raise InputError(f"cannot solvate {pdb_path}: {exc}") from exc
    if output_pdb is not None:
        Path(output_pdb).parent.mkdir(parents=True, exist_ok=True)
        with open(output_pdb, "w") as f:
            app.PDBFile.writeFile(modeller.topology, modeller.positions, f, keepIds=True)
    return modeller.topology, modeller.positions
