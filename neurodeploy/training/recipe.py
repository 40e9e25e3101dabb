"""Recipes: TOML files that hold a :class:`~neurodeploy.training.TrainConfig` (``recipes/*.toml``).

Top-level keys are TrainConfig fields; the tables ``[arch]`` (model options) and ``[data]``
(options of the data set's loader) become the dict fields of the same names; an ``[about]``
table (paper, source of each setting, expected accuracy) is documentation and is not read
into the config. Anything else is refused, naming the file and the key::

    task = "cifar10-dvs"
    model = "vggsnn"
    T = 4
    optimizer = "sgd"
    lr = 0.1
    [data]
    size = 48
    augment = ["flip", "roll"]

``neurodeploy train --config FILE`` reads the recipe; options typed on the same command line
override it (``--data-root`` is usually given there: a recipe does not know where the data is).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neurodeploy.training.config import TrainConfig

ABOUT_TABLE = "about"


def read_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The TrainConfig fields of a recipe file (``[about]`` dropped), checked against the dataclass."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path}: no such file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"recipe {path}: not valid TOML (UTF-8 text): {e}") from e
    raw.pop(ABOUT_TABLE, None)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ValueError(
            f"recipe {path}: unknown key(s) {unknown}; allowed: TrainConfig fields {sorted(fields)} "
            f"and an [{ABOUT_TABLE}] table"
        )
    for table in ("arch", "data"):
        if table in raw and not isinstance(raw[table], dict):
            raise ValueError(
                f"recipe {path}: {table!r} must be a table ([{table}]), got {type(raw[table]).__name__}"
            )
    return raw


def load_recipe(
    path: str | os.PathLike[str], overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """TrainConfig from a recipe, with ``overrides`` (e.g. command-line options) applied on top."""
    fields = {**read_recipe(path), **(overrides or {})}
    try:
        return TrainConfig(**fields)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise ValueError(f"recipe {path}: {e}") from e


def explicit_options(
    parser: argparse.ArgumentParser, command: str, argv: Sequence[str] | None
) -> set[str]:
    """Destinations of the options of ``command`` typed in ``argv`` (not filled from defaults)."""
    for action in parser._actions:  # argparse keeps sub-commands in a _SubParsersAction
        if isinstance(action, argparse._SubParsersAction):
            for a in action.choices[command]._actions:
                a.default = argparse.SUPPRESS
    for a in parser._actions:
        if not isinstance(a, argparse._SubParsersAction):
            a.default = argparse.SUPPRESS
    ns = parser.parse_args(argv)
    return set(vars(ns)) - {"command"}
