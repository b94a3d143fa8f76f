"""``python -m rpn_exp [overrides]``: train one RPN model, or a sweep with ``-m``."""

import errno
import os
import sys

import hydra
from omegaconf import DictConfig

from rpn_exp.config.location import config_dir
from rpn_exp.files import restrict_umask

restrict_umask()  # before Hydra creates the first folder: nothing a run writes is writable by other users


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float | tuple[float, ...] | None:
    """Train (or, with ``-m``, each job of a sweep). A refused setting ends a single run with one line on stderr
    and exit status 1 (``HYDRA_FULL_ERROR=1`` shows the traceback)."""
    from rpn_exp.config.build import ConfigError
    from rpn_exp.run.lifecycle import no_space_message
    from rpn_exp.run.ownership import FolderInUse
    from rpn_exp.run.task import train

    try:
        return train(cfg)
    except (ConfigError, FolderInUse) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        kind = "invalid configuration: " if isinstance(error, ConfigError) else ""
        print(f"Error: {kind}{error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except OSError as error:
        if error.errno != errno.ENOSPC or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"Error: {no_space_message(error)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
