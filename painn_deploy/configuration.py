"""Configurations as frozen dataclasses: from YAML files, from the command line, checked field by field.

Every command's options are one frozen dataclass (:class:`~painn_deploy.training.TrainConfig`,
:class:`~painn_deploy.spectra.SpectrumConfig`, ...) whose fields are declared with :func:`option`: the
field's metadata carries its command-line flag, help text and kind, so the parser
(:func:`add_arguments`) and the dataclass cannot drift apart.  Values are checked (and converted
where unambiguous: ``"0-8,12"`` to indices, ``2`` to ``"2"``) on construction; a bad value is an
:class:`~painn_deploy.errors.InputError` naming the field and what it expects.

Precedence: dataclass defaults < ``--config FILE.yaml`` (keys: the field names; ``-`` may stand for
``_``; unknown keys are an error that names them) < command-line flags.
"""

import argparse
import math
from dataclasses import asdict, field, fields
from pathlib import Path

from .errors import InputError
from .files import require_file

#: Kinds of option: how a value is checked and converted, and how its flag parses.
#: float, int, str, path (a file name, or None), bool (a flag that flips the default), switch
#: (--name/--no-name; default None means "decide"), files (positional list of paths), list
#: (comma-separated words), indices (0-based integers with ranges, "0-8,12"), or a tuple of choices.
KINDS = ("float", "int", "str", "path", "bool", "switch", "files", "list", "indices")

_EXPECTED = {
    "float": "a number",
    "int": "a whole number",
    "str": "a text value",
    "path": "a path",
    "bool": "true or false",
    "switch": "true or false",
    "files": "a list of file paths",
    "list": "a comma-separated list of names",
    "indices": "0-based indices with ranges, e.g. 0-8,12",
}


#: Options that say what one invocation does to existing files, not how the run is made.
ACTIONS = ("overwrite", "resume", "resume_from")


def option(default, flag=None, help="", metavar=None, kind="float", *, short=None):
    """A dataclass field with its command-line ``flag`` (None: a positional argument), ``help`` and ``kind``."""
    if not isinstance(kind, tuple) and kind not in KINDS:
        raise ValueError(f"unknown option kind {kind!r}")
    meta = {"flag": flag, "help": help, "metavar": metavar, "kind": kind, "short": short}
    return field(default=default, metadata=meta)


def _number(text, whole: bool):
    value = float(str(text).replace("_", "").strip())
    if whole:
        if (
            not math.isfinite(value) or value != int(value) or abs(value) > 2**53
        ):  # (beyond 2^53 a float no longer holds every whole number)
            raise ValueError(text)
        return int(value)
    return value


def parse_indices(value) -> tuple:
    """``"0-8,12"``, ``[0, 1, 2]`` or ``5`` -> a tuple of non-negative ints (ranges inclusive)."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        value = [value]
    if isinstance(value, str):
        out = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError(part)
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        value = out
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(value)
    if any(v < 0 for v in value):
        raise ValueError(value)
    return tuple(value)


def _plain(value):
    """A numpy scalar or array as Python's number or list (numpy itself is not imported: --help stays fast)."""
    return value.tolist() if type(value).__module__ == "numpy" else value  # (arrays and scalars alike)


def convert(kind, value, default=None):
    """The value of an option of ``kind``, or ValueError.  ``None`` passes where the default is None."""
    if value is None and default is None and kind != "files":
        return None
    value = _plain(value)  # a notebook's numpy values: np.int64(100), np.True_, np.arange(9)
    if isinstance(value, (list, tuple)):
        value = type(value)(_plain(v) for v in value)
    if isinstance(kind, tuple):
        if isinstance(value, bool) and {"yes", "no"} <= set(kind):  # (YAML reads yes and no as booleans)
            value = "yes" if value else "no"
        if isinstance(value, int) and not isinstance(value, bool) and str(value) in kind:
            value = str(value)
        if value not in kind:
            raise ValueError(value)
        return value
    if kind == "files":
        if isinstance(value, (str, Path)):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in value):
            raise ValueError(value)
        return tuple(str(v) for v in value)
    if kind in ("bool", "switch"):
        if not isinstance(value, bool):
            raise ValueError(value)
        return value
    if kind == "path":
        if value is None:
            return None
        if not isinstance(value, (str, Path)):
            raise ValueError(value)
        return str(value)
    if kind == "str":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(value)
        return str(value)
    if kind == "list":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(value)
        return tuple(value)
    if kind == "indices":
        return parse_indices(value)
    if isinstance(value, bool):  # YAML true/false is not a number
        raise ValueError(value)
    if isinstance(value, (int, float, str)):
        return _number(value, kind == "int")
    raise ValueError(value)


def expected(kind) -> str:
    """What an option of ``kind`` takes, for error messages."""
    return f"one of {', '.join(kind)}" if isinstance(kind, tuple) else _EXPECTED[kind]


def _coerce(f, value):
    try:
        return convert(f.metadata["kind"], value, f.default)
    except (TypeError, ValueError):
        raise InputError(f"'{f.name}' must be {expected(f.metadata['kind'])}, got {value!r}") from None


def _options(cls):
    return [f for f in fields(cls) if "kind" in f.metadata]


class Config:
    """Base of the configuration dataclasses (``@dataclass(frozen=True) class X(Config)``): checks every
    :func:`option` field on construction; subclasses with their own ``__post_init__`` call
    ``super().__post_init__()`` first."""

    def __post_init__(self):
        for f in _options(self):
            object.__setattr__(self, f.name, _coerce(f, getattr(self, f.name)))

    @classmethod
    def from_mapping(cls, values: dict, source: str = "the configuration"):
        """Build from a mapping keyed by field names (``-`` may stand for ``_``); unknown keys are an
        :class:`InputError` naming them and the known ones."""
        import difflib

        values = {str(k).replace("-", "_"): v for k, v in values.items()}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            named = [f"{k!r} (did you mean {close[0]!r}?)" if close else repr(k)
                     for k in unknown for close in [difflib.get_close_matches(k, sorted(known), 1, 0.5)]]  # fmt: skip
            raise InputError(
                f"{source}: unknown key(s) {', '.join(named)}; the known keys are {', '.join(sorted(known))} (an "
                "option's key is its name with underscores, or the [--config key] --help shows for it)"
            )
        return cls(**values)

    @classmethod
    def from_file(cls, path, **overrides):
        """Read a YAML file (keys = field names); ``overrides`` replace its values."""
        values = {str(k).replace("-", "_"): v for k, v in load_config_file(path).items()}
        values.update(overrides)
        return cls.from_mapping(values, source=str(path))

    def as_dict(self) -> dict:
        """The fields as plain YAML/JSON values (tuples as lists): a valid configuration file, and the record of
        what a run was asked to do.  The ACTIONS of one invocation are left out: a stored configuration given
        again must not replace or resume anything unasked."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k not in ACTIONS}


def load_config_file(path) -> dict:
    """The mapping of a YAML configuration file (InputError if missing, malformed or not a mapping)."""
    import yaml

    path = require_file(
        path,
        "configuration file",
        "give a YAML file of options (keys: option names with underscores, or the --config key an option names in --help)",
    )

    class UniqueKeys(yaml.SafeLoader):  # a key given twice is a mistake, not the last value
        def construct_mapping(self, node, deep=False):
            keys = [self.construct_object(k, deep=deep) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]
            twice = sorted({str(k) for k in keys if keys.count(k) > 1})
            if twice:
                raise InputError(f"{path}: the key(s) {', '.join(twice)} are given more than once; keep one of each")
            return super().construct_mapping(node, deep=deep)

    try:
        values = yaml.load(path.read_text(), Loader=UniqueKeys)  # noqa: S506 (a SafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from exc
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InputError(f"{path}: a configuration file must be a mapping of option names to values")
    return dict(values)


def _shown(default) -> str:
    return ",".join(map(str, default)) if isinstance(default, tuple) else str(default)


def _argument_type(kind):
    """An argparse ``type``: its error names what the option expects ("argument --lr: expected a number")."""

    def parse(text):
        try:
            return convert(kind, text, default=0)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {expected(kind)}, got {text!r}") from None

    parse.__name__ = expected(kind)
    return parse


def add_arguments(parser: argparse.ArgumentParser, cls, config_help: str | None = None) -> argparse.ArgumentParser:
    """Add ``--config`` and one argument per :func:`option` field of ``cls``.

    Defaults are suppressed, so the parsed namespace holds only what was given on the command line
    (:func:`config_from_arguments` lays it over the file and the dataclass defaults).  A help text
    without the word "default" gets the field's default appended (once).
    """
    examples = ", ".join([f.name for f in _options(cls) if f.metadata["flag"] and "_" in f.name][:2])
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        help=config_help
        or f"YAML file of options (keys: option names with underscores, or the --config key an option names, e.g. "
        f"{examples}); command-line flags override it",
    )
    for f in _options(cls):
        meta = f.metadata
        kind, text = meta["kind"], meta["help"]
        if kind not in ("bool", "switch") and f.default not in (None, (), "") and "default" not in text.lower():
            text = f"{text} (default: {_shown(f.default)})"
        text = text.replace("%", "%%")
        if meta["flag"] is None:  # positional: optional on the command line, as --config may give it
            nargs = "*" if kind == "files" else "?"
            parser.add_argument(
                f.name, nargs=nargs, metavar=meta["metavar"], help=text, default=[] if kind == "files" else None
            )
            continue
        if meta["flag"].lstrip("-").replace("-", "_") != f.name:  # the key --config takes, where not the flag's
            text = f"{text} [--config key: {f.name}]"
        kw = {"default": argparse.SUPPRESS, "help": text, "dest": f.name}
        flags = [meta["short"], meta["flag"]] if meta["short"] else [meta["flag"]]
        if kind == "bool":
            kw["action"] = "store_false" if f.default else "store_true"
        elif kind == "switch":
            kw["action"] = argparse.BooleanOptionalAction
        elif isinstance(kind, tuple):
            kw["choices"] = kind
        else:
            kw.update(type=_argument_type(kind), metavar=meta["metavar"])
        parser.add_argument(*flags, **kw)
    return parser


def config_from_arguments(cls, args: argparse.Namespace, source: str = "the command line"):
    """Dataclass defaults <- ``--config`` file <- command-line flags."""
    given = dict(vars(args))
    path = given.pop("config", None)
    for f in _options(cls):
        if f.metadata["flag"] is None and given.get(f.name) in (None, []):
            given.pop(f.name, None)
    if path is None:
        return cls.from_mapping(given, source=source)
    return cls.from_file(path, **given)
