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
    from rpn_exp.run.module import DivergenceError
    from rpn_exp.run.ownership import FolderInUse
    from rpn_exp.run.task import train

    try:
        return train(cfg)
    except DivergenceError as error:  # recorded as diverged; one line, not Lightning's traceback
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"Error: diverged: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except (ConfigError, FolderInUse) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        kind = "invalid configuration: " if isinstance(error, ConfigError) else ""
        print(f"Error: {kind}{error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except OSError as error:
        if error.errno != errno.ENOSPC or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        from rpn_exp.config.settings import run_settings

        print(f"Error: {no_space_message(error, run_settings(cfg).output_dir)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def cli() -> None:
    """``python -m rpn_exp`` and ``rpn-exp``: the command line checked first (:mod:`rpn_exp.config.command_line`),
    so a mistyped option or key is one line with the closest valid choices (exit status 2), then Hydra's main."""
    from pathlib import Path

    from rpn_exp.config.command_line import command_line_problem

    problem = command_line_problem(sys.argv[1:], Path(config_dir()))
    if problem:
        print(f"Error: {problem}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    main()


if __name__ == "__main__":
    cli()
