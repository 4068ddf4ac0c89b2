"""``painn-export``: write a self-contained TorchScript model for ``openmmtorch.TorchForce``."""

import argparse
import json
import sys

from ..deploy import export
from ..errors import PainnDeployError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="painn-export", description=__doc__)
    p.add_argument("checkpoint", help="checkpoint written by painn-train (e.g. runs/ethanol/best.ckpt)")
    p.add_argument("-o", "--output", required=True, help="output TorchScript file (e.g. model.pt)")
    p.add_argument("--pdb", help="export for the particles of this PDB (default: the training molecule); "
                   "a CRYST1 box makes the model periodic")  # fmt: skip
    p.add_argument(
        "--dtype", choices=("float32", "float64"), default="float32", help="precision of the model (default float32)"
    )
    p.add_argument("--neighbor-list", choices=("auto", "all_pairs", "cell_list", "static"), default="auto",
                   help="neighbour list inside the model; auto: all pairs up to 30 atoms (measured crossover), else a cell list")  # fmt: skip
    p.add_argument("--pair-capacity", type=int, default=0, help="maximum number of pairs of the static neighbour list")
    p.add_argument("--periodic", action=argparse.BooleanOptionalAction, default=None,
                   help="force a periodic or non-periodic model (default: periodic when the PDB has a box)")  # fmt: skip
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        meta = export(
            args.checkpoint, args.output, args.pdb, args.dtype, args.neighbor_list, args.periodic, args.pair_capacity
        )
    except PainnDeployError as exc:
        print(f"painn-export: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {len(meta['atomic_numbers'])} particles, {meta['dtype']}, "
          f"{'periodic' if meta['periodic'] else 'non-periodic'}, neighbour list {meta['neighbor_list']}")  # fmt: skip
    print("validation:", json.dumps(meta["validation"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
