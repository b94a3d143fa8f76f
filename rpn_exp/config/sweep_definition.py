"""What a sweep is: the sweeper's parameters and the command's overrides (its *definition*, saved in the sweep
folder as ``sweep.json`` when it starts), the config keys it varies, and the grid it expands to."""

from __future__ import annotations

import json
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from rpn_exp.config.naming import comparable_overrides

#: The sweep's definition, written into its folder when it starts: what makes the folder this sweep's.
SWEEP_FILE = "sweep.json"


def sweep_definition(config: DictConfig) -> dict:
    """What a sweep runs: the sweeper's parameters and the command's overrides (paths and switches left out)."""
    sweeper = config.hydra.sweeper
    params = OmegaConf.to_container(sweeper.params) if sweeper.get("params") else {}
    return {"params": params, "overrides": comparable_overrides(config.hydra.overrides.task)}


def swept_keys(definition: dict) -> set[str]:
    """The config keys a sweep varies: those its parameters or command give several values (``a,b``, ``range``,
    ``choice``, ``interval``), without a leading ``+``/``~``."""
    texts = [f"{key}={value}" for key, value in definition.get("params", {}).items()]
    texts += list(definition.get("overrides", []))
    return {o.get_key_element().lstrip("+~") for o in OverridesParser.create().parse_overrides(texts)
            if o.is_sweep_override()}


def read_definition(folder: str | Path) -> dict | None:
    """The definition in a sweep folder's ``sweep.json`` (None when there is none)."""
    path = Path(folder) / SWEEP_FILE
    return json.loads(path.read_text()).get("definition") if path.is_file() else None


def sweep_plan(config: DictConfig) -> dict | None:
    """What expands into the sweep's jobs, in Hydra's order, for the basic (grid) sweeper; None for a search
    sweeper (Optuna), whose trials are sampled as it goes."""
    sweeper = config.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = OmegaConf.to_container(sweeper.params) if sweeper.get("params") else {}
    return {"params": params, "overrides": list(config.hydra.overrides.task)}
