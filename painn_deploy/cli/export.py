"""``painn-export``: write a self-contained TorchScript model for ``openmmtorch.TorchForce``.

    painn-export runs/ethanol/best.ckpt -o model.pt [--pdb system.pdb] [--dtype float64]
    painn-export best.ckpt -o solute.pt --pdb solvated.pdb --atoms 0-8      # ML/MM: the solute's atoms
    painn-export --config export.yaml

Parses the command line (and ``--config``) into an :class:`~painn_deploy.deploy.config.ExportConfig` and runs
:func:`painn_deploy.deploy.export`.  Exit status: :mod:`painn_deploy.cli.common`.
"""

import json
import sys

from ..configuration import config_from_arguments
from ..deploy import export
from ..deploy.config import ExportConfig
from .common import build_parser as _build_parser
from .common import run_command

PROG = "painn-export"
DESCRIPTION = (
    "Write a self-contained TorchScript model (positions in nm -> energy in kJ/mol, forces in kJ/mol/nm) for "
    "openmmtorch.TorchForce, painn-simulate and painn-harmonic, validated against the checkpoint. Options can "
    "also come from --config FILE.yaml (keys: option names with underscores, or the --config key an option "
    "names, e.g. neighbor_list); flags override the file."
)


def _report(result) -> None:
    cfg, meta = result
    ml = "" if meta.get("atom_indices") is None else f" ({len(meta['atom_indices'])} of them the model's)"
    print(f"wrote {cfg.output}: {meta['n_particles']} particles{ml}, {meta['dtype']}, "
          f"{'periodic' if meta['periodic'] else 'non-periodic'}, neighbour list {meta['neighbor_list']}")  # fmt: skip
    print(f"units: positions nm, energy kJ/mol, forces kJ/mol/nm; training envelope: "
          f"{meta['training_envelope'].get('frames')}")  # fmt: skip
    print("validation:", json.dumps(meta["validation"], indent=1))


def main(argv=None) -> int:
    """Entry point of ``painn-export``; returns the exit status (:mod:`painn_deploy.cli.common`)."""

    def execute(args):
        c = config_from_arguments(ExportConfig, args)
        atoms = None if c.atoms is None else list(c.atoms)
        return c, export(c.checkpoint, c.output, c.pdb, c.dtype, c.neighbor_list, c.periodic, c.pair_capacity, atoms)

    return run_command(PROG, _build_parser(PROG, DESCRIPTION, ExportConfig), argv, execute, _report)


if __name__ == "__main__":
    sys.exit(main())
