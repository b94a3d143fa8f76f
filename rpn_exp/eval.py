"""``python -m rpn_exp.eval ckpt_path=<file> [split=test|val] [key=value ...]``: evaluate a checkpoint, no training.

The network is rebuilt from the config saved in the checkpoint (every rpn_exp checkpoint carries the run's
composed config; an older one is read from the run's ``.hydra/config.yaml``), the data module from the same
config (same seed, so the same split), and the chosen split is evaluated. ``key=value`` pairs override the saved
config first, e.g. ``dataset.root=/data/fashion-mnist`` or ``trainer.accelerator=cpu``. The metrics are printed
and written to ``eval.json`` beside the checkpoint, under ``<checkpoint file>/<split>`` so that evaluations of
other checkpoints or splits are kept.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rpn_exp.config.legacy import upgrade_targets
from rpn_exp.files import restrict_umask
from rpn_exp.run.record import write_json

EVAL_FILE = "eval.json"
SPLITS = ("test", "val")
USAGE = "usage: python -m rpn_exp.eval ckpt_path=<file.ckpt> [split=test|val] [config.key=value ...]"


class EvalError(ValueError):
    """An argument or file that cannot be evaluated, with what to do instead."""


def parse_args(argv: list[str]) -> tuple[Path, str, list[str]]:
    """``ckpt_path``, ``split`` and the remaining ``key=value`` overrides of the saved config."""
    values, overrides = {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise EvalError(f"{arg!r} is not key=value; {USAGE}")
        if key in ("ckpt_path", "split"):
            values[key] = value
        else:
            overrides.append(arg)
    if not values.get("ckpt_path"):
        raise EvalError(f"ckpt_path is missing; {USAGE}")
    split = values.get("split", "test")
    if split not in SPLITS:
        raise EvalError(f"split={split!r} is invalid; valid choices: {', '.join(SPLITS)}")
    path = Path(values["ckpt_path"])
    if not path.is_file():
        raise EvalError(f"ckpt_path={path}: no such file (a run keeps its checkpoints in <run folder>/checkpoints/)")
    return path, split, overrides


def saved_config(checkpoint: dict, path: Path) -> DictConfig:
    """The run's composed config: from the checkpoint, else from ``<run>/.hydra/config.yaml`` beside it."""
    config = checkpoint.get("hyper_parameters", {}).get("config")
    run_file = path.resolve().parent.parent / ".hydra" / "config.yaml"
    if config is None and run_file.is_file():
        config = OmegaConf.to_container(OmegaConf.load(run_file))
    if config is not None:
        return OmegaConf.create(upgrade_targets(config))
    raise EvalError(f"{path} holds no config and {run_file} does not exist: the network cannot be rebuilt")


def check_overrides(saved: DictConfig, cfg: DictConfig, overrides) -> None:
    """Each override names a key of the saved config and gives the data module values it can use."""
    from rpn_exp.config.build import ConfigError
    from rpn_exp.config.checks import check_eval_overrides

    try:
        check_eval_overrides(saved, cfg, overrides)
    except ConfigError as error:
        raise EvalError(str(error)) from None


def evaluate(path: str | Path, split: str = "test", overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Evaluate the checkpoint at ``path`` on ``split``; return the entry written to ``eval.json``."""
    import lightning as L

    from rpn_exp.config.build import build_datamodule
    from rpn_exp.config.settings import resolved_config, run_settings
    from rpn_exp.run.checkpointing import UnsafeCheckpoint, load_checkpoint
    from rpn_exp.run.console import configure_console
    from rpn_exp.run.module import RPNClassifier
    from rpn_exp.run.provenance import provenance

    path = Path(path)
    configure_console(quiet=True)
    try:
        checkpoint = load_checkpoint(path)
    except UnsafeCheckpoint as error:
        raise EvalError(str(error)) from None
    except Exception as error:  # a record, a log, a truncated file: anything but a checkpoint
        raise EvalError(f"ckpt_path={path} is not a readable checkpoint ({type(error).__name__}); give a .ckpt file "
                        f"from <run folder>/checkpoints/") from None
    saved = saved_config(checkpoint, path)
    cfg = OmegaConf.merge(saved, OmegaConf.from_dotlist(list(overrides)))
    check_overrides(saved, cfg, overrides)
    model = RPNClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True,
                                               config=resolved_config(cfg))
    datamodule = build_datamodule(cfg)
    accelerator = run_settings(cfg).accelerator or "cpu"
    trainer = L.Trainer(accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    started = time.perf_counter()
    run = trainer.test if split == "test" else trainer.validate
    (results,) = run(model, datamodule=datamodule, verbose=False)
    metrics = {key: float(value) for key, value in results.items() if key in (f"{split}/acc", f"{split}/loss")}
    entry = {
        "checkpoint": str(path), "split": split, "metrics": metrics, "samples": datamodule.sizes().get(split),
        "epoch": checkpoint.get("epoch"), "global_step": checkpoint.get("global_step"), "overrides": list(overrides),
        "wall_time_s": round(time.perf_counter() - started, 3), "provenance": provenance(accelerator),
    }
    eval_path = path.parent / EVAL_FILE
    existing = _read(eval_path)
    existing[f"{path.name}/{split}"] = entry
    write_json(eval_path, existing)
    return entry


def _read(path: Path) -> dict:
    import json

    return json.loads(path.read_text()) if path.is_file() else {}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip() + "\n\n" + USAGE)
        return 0
    restrict_umask()
    try:
        path, split, overrides = parse_args(argv)
        entry = evaluate(path, split, overrides)
    except EvalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # a ConfigError of the data module (a dataset that cannot be found or read)
        print(f"error: {error}", file=sys.stderr)
        return 2
    metrics = entry["metrics"]
    print(f"rpn_exp eval | {path} | {split} acc {metrics[f'{split}/acc']:.4f} | {split} loss "
          f"{metrics[f'{split}/loss']:.4f} | {entry['samples']} samples | wrote {path.parent / EVAL_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
