"""Where the Hydra configs live: ``rpn_exp/conf`` in an installed wheel, ``conf/`` in a source checkout."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # rpn_exp/


def config_dir() -> str:
    """Absolute path of the primary config folder."""
    for candidate in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"rpn_exp configs not found in {_PACKAGE / 'conf'} or {_PACKAGE.parent / 'conf'}")
