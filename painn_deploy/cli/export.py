"""``painn-export``: write a self-contained TorchScript model for ``openmmtorch.TorchForce``.

    painn-export runs/ethanol/best.ckpt -o model.pt [--pdb system.pdb] [--dtype float64]
    painn-export best.ckpt -o solute.pt --pdb solvated.pdb --atoms 0-8      # ML/MM: the solute's atoms
    painn-export --config export.yaml

Parses the command line (and ``--config``) into an :class:`ExportConfig` and runs
:func:`painn_deploy.deploy.export`.  Exit status: 0 on success, 2 for bad input, 1 for a run that failed
otherwise.
"""

import json
import sys
from dataclasses import dataclass

from ..configuration import Config, config_from_arguments, option
from ..deploy import export
from ..errors import InputError
from .common import build_parser as _build_parser
from .common import run_command

PROG = "painn-export"
DESCRIPTION = (
    "Write a self-contained TorchScript model (positions in nm -> energy in kJ/mol, forces in kJ/mol/nm) for "
    "openmmtorch.TorchForce, painn-simulate and painn-harmonic, validated against the checkpoint. Options can "
    "also come from --config FILE.yaml (keys: the option names with underscores, e.g. neighbor_list); flags "
    "override the file."
)


@dataclass(frozen=True)
class ExportConfig(Config):
    """Everything ``painn-export`` does; field names are the keys of a YAML configuration file."""

    checkpoint: str | None = option(
        None, None, "checkpoint written by painn-train (e.g. runs/ethanol/best.ckpt)", "CKPT", "path"
    )
    output: str | None = option(
        None, "--output", "output TorchScript file (e.g. model.pt)", "MODEL.pt", "path", short="-o"
    )
    pdb: str | None = option(
        None,
        "--pdb",
        "export for the particles of this PDB (default: the training molecule); a CRYST1 box makes the model periodic",
        "SYSTEM.pdb",
        "path",
    )
    dtype: str = option("float32", "--dtype", "precision of the model", kind=("float32", "float64"))
    neighbor_list: str = option(
        "auto",
        "--neighbor-list",
        "neighbour list inside the model; auto: all pairs up to 30 atoms (measured crossover), else a cell list",
        kind=("auto", "all_pairs", "cell_list", "static"),
    )
    pair_capacity: int = option(
        0, "--pair-capacity", "maximum number of pairs of the static neighbour list (0: 1.3 x the PDB's)", "N", "int"
    )
    periodic: bool | None = option(
        None,
        "--periodic",
        "force a periodic or non-periodic model (default: periodic when the PDB has a box)",
        kind="switch",
    )
    atoms: tuple | None = option(
        None,
        "--atoms",
        "0-based indices of the model's atoms among the PDB's particles, ranges allowed (e.g. 0-8,12): an ML/MM "
        "model whose other particles come from other forces (default: all particles)",
        "INDICES",
        "indices",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.checkpoint is None or self.output is None:
            raise InputError("give the checkpoint (CKPT) and the output file (-o MODEL.pt)")
        if self.pair_capacity < 0:
            raise InputError(f"--pair-capacity must be 0 or positive, got {self.pair_capacity}")


def _report(result) -> None:
    cfg, meta = result
    ml = "" if meta.get("atom_indices") is None else f" ({len(meta['atom_indices'])} of them the model's)"
    print(f"wrote {cfg.output}: {meta['n_particles']} particles{ml}, {meta['dtype']}, "
          f"{'periodic' if meta['periodic'] else 'non-periodic'}, neighbour list {meta['neighbor_list']}")  # fmt: skip
    print("validation:", json.dumps(meta["validation"], indent=1))


def main(argv=None) -> int:
    """Entry point of ``painn-export``; returns the exit status (0 ok, 2 bad input, 1 failed run)."""

    def execute(args):
        c = config_from_arguments(ExportConfig, args)
        atoms = None if c.atoms is None else list(c.atoms)
        return c, export(c.checkpoint, c.output, c.pdb, c.dtype, c.neighbor_list, c.periodic, c.pair_capacity, atoms)

    return run_command(PROG, _build_parser(PROG, DESCRIPTION, ExportConfig), argv, execute, _report)


if __name__ == "__main__":
    sys.exit(main())
