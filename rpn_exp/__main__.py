"""``python -m rpn_exp [overrides]``: train one RPN model, or a sweep with ``-m``."""

import hydra
from omegaconf import DictConfig

from .config_path import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float | tuple[float, ...] | None:
    from .train import train

    return train(cfg)


if __name__ == "__main__":
    main()
