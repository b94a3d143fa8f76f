"""What a sweep is: the sweeper's parameters and the command's overrides (its *definition*, saved in the sweep
folder as ``sweep.json`` when it starts), the config keys it varies, and the grid it expands to.

A *study* (``study=<name>``: ``hydra/sweeper=study`` with ``hydra.sweeper.sweeps``) is one multirun of several grid
sweeps: each of its sweeps is a *part* with its own overrides (and the parameters its ``hparams_search`` sets),
followed by the command's, and the study's jobs are every part's jobs in order, a job two parts share once.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from rpn_exp.config.naming import comparable_overrides

#: The sweep's definition, written into its folder when it starts: what makes the folder this sweep's.
SWEEP_FILE = "sweep.json"
#: The grid sweepers: the basic one (one part) and the study (``hydra/sweeper=study``, one part per sweep).
GRID_SWEEPERS = ("BasicSweeper", "StudySweeper")


def sweep_parts(config: DictConfig) -> list[dict]:
    """The grid sweeps a multirun's config expands, each ``{"name", "params", "overrides"}``: for a sweep, one part
    (``hydra.sweeper.params`` and the command's overrides, ``name`` None); for a study, each of
    ``hydra.sweeper.sweeps`` (its overrides, then the command's, which replace a key of the same name; its params
    those of the config composed with the overrides that give one value, e.g. ``hparams_search=mlp_baseline``'s)."""
    sweeper = config.hydra.sweeper
    task = [str(o) for o in config.hydra.overrides.task]
    if not sweeper.get("sweeps"):
        params = OmegaConf.to_container(sweeper.params) if sweeper.get("params") else {}
        return [{"name": None, "params": params, "overrides": task}]
    hydra_overrides = tuple(str(o) for o in config.hydra.overrides.hydra)
    parts = []
    for name, own in sweeper.sweeps.items():
        overrides = [*map(str, own), *task]
        params = _composed_params(str(config.hydra.job.config_name), hydra_overrides, tuple(overrides))
        parts.append({"name": str(name), "params": params, "overrides": overrides})
    return parts


@functools.lru_cache(maxsize=64)
def _composed_params(config_name: str, hydra_overrides: tuple[str, ...], overrides: tuple[str, ...]) -> dict:
    """``hydra.sweeper.params`` of the primary config composed with ``overrides`` (those that sweep left out)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    single = [o.input_line for o in OverridesParser.create().parse_overrides(list(overrides))
              if not o.is_sweep_override()]
    composed = GlobalHydra.instance().config_loader().load_configuration(
        config_name=config_name, overrides=[*hydra_overrides, *single], run_mode=RunMode.MULTIRUN)
    params = composed.hydra.sweeper.get("params")
    return OmegaConf.to_container(params) if params else {}


def sweep_definition(config: DictConfig) -> dict:
    """What a sweep runs: the sweeper's parameters and the command's overrides (paths and switches left out); for a
    study, also each part's name, parameters and own overrides (``sweeps``)."""
    sweeper = config.hydra.sweeper
    params = OmegaConf.to_container(sweeper.params) if sweeper.get("params") else {}
    definition = {"params": params, "overrides": comparable_overrides(config.hydra.overrides.task)}
    if sweeper.get("sweeps"):
        task = len(config.hydra.overrides.task)
        definition["sweeps"] = [{"name": part["name"], "params": part["params"],
                                 "overrides": comparable_overrides(part["overrides"][:-task or None])}
                                for part in sweep_parts(config)]
    return definition


def swept_keys(definition: dict) -> set[str]:
    """The config keys a sweep varies, without a leading ``+``/``~``: those its parameters or command give several
    values (``a,b``, ``range``, ``choice``, ``interval``), and for a study those its parts set differently (or only
    some of them set)."""
    parser = OverridesParser.create()
    swept: set[str] = set()
    values: list[dict[str, str]] = []
    for part in definition.get("sweeps") or [{"params": definition.get("params", {}), "overrides": []}]:
        texts = [f"{key}={value}" for key, value in part.get("params", {}).items()]
        texts += [*part.get("overrides", []), *definition.get("overrides", [])]
        set_here = {}
        for override in parser.parse_overrides(texts):
            key = override.get_key_element().lstrip("+~")
            if override.is_sweep_override():
                swept.add(key)
            set_here[key] = override.input_line.partition("=")[2]
        values.append(set_here)
    keys = set().union(*values)
    return swept | {key for key in keys if len({part.get(key) for part in values}) > 1}


def read_definition(folder: str | Path) -> dict | None:
    """The definition in a sweep folder's ``sweep.json`` (None when there is none)."""
    path = Path(folder) / SWEEP_FILE
    return json.loads(path.read_text()).get("definition") if path.is_file() else None


def sweep_plan(config: DictConfig) -> dict | None:
    """What expands into the sweep's jobs, in Hydra's order (:func:`rpn_exp.sweep.progress.grid_jobs`), for a grid
    sweeper: ``{"params", "overrides"}`` for a sweep, ``{"parts": [...]}`` (:func:`sweep_parts`) for a study; None
    for a search sweeper (Optuna), whose trials are sampled as it goes."""
    if not str(config.hydra.sweeper.get("_target_", "")).endswith(GRID_SWEEPERS):
        return None
    parts = [{"params": part["params"], "overrides": part["overrides"]} for part in sweep_parts(config)]
    return {"parts": parts} if config.hydra.sweeper.get("sweeps") else parts[0]
