"""Shared helpers: compose the real Hydra config the way ``python -m rpn_exp`` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from rpn_exp.config.location import config_dir

CONF = Path(config_dir())


def options(group: str) -> list[str]:
    """Every option of a config group, from the files on disk."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_config(overrides=(), output_dir: Path | None = None, hydra_config: bool = False):
    """The composed primary config with ``overrides``; output goes to ``output_dir``.

    ``hydra_config=True`` also returns the ``hydra`` node (launcher, sweeper), as a job would see it.
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=hydra_config)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.data_dir = str(output_dir / "data")
    return cfg


@pytest.fixture
def make_config(tmp_path):
    """Factory fixture: ``make_config("reconciliation=hm", ...)`` -> composed config writing under tmp_path."""

    def make(*overrides, output_dir=None):
        return compose_config(overrides, output_dir=output_dir or tmp_path / "run")

    return make
