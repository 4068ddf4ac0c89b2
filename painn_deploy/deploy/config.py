"""Configuration of ``painn-export``: one frozen dataclass, from a YAML file and/or the command line."""

from dataclasses import dataclass
from pathlib import Path

from ..configuration import Config, option
from ..errors import InputError


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
        "neighbour list inside the model; auto: all pairs up to 30 atoms, else a cell list",
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
    overwrite: bool = option(False, "--overwrite", "replace an existing output file", kind="bool")

    def __post_init__(self):
        super().__post_init__()
        if self.checkpoint is None or self.output is None:
            raise InputError("give the checkpoint (CKPT) and the output file (-o MODEL.pt)")
        output = Path(self.output)
        if output.is_dir():
            raise InputError(f"the output {output} is a directory; give a file name, e.g. {output / 'model.pt'}")
        inputs = {Path(f).resolve() for f in (self.checkpoint, self.pdb) if f is not None}
        if output.resolve() in inputs:
            raise InputError(f"-o {output} is an input of the export; give another output file (-o MODEL.pt)")
        if output.exists() and not self.overwrite:
            raise InputError(f"{output} already exists; give another -o, or --overwrite to replace it")
        if self.pair_capacity < 0:
            raise InputError(f"--pair-capacity must be 0 or positive, got {self.pair_capacity}")
        if self.pair_capacity and self.neighbor_list != "static":
            raise InputError(
                f"--pair-capacity sizes the static neighbour list, but the list is {self.neighbor_list}: add "
                "--neighbor-list static, or drop --pair-capacity"
            )
