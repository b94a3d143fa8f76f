"""Settings checked before anything is built or trained: each refusal names the key, the value and what to give.

These are the run's scalar settings (optimizer, scheduler, data batching, epochs, seed) and overrides that add
keys nothing reads. Hyper-parameters of the component functions are checked where they are used (the functions
raise plain ``ValueError``s, which ``rpn_exp.config.build`` turns into ``ConfigError``s).
"""

from __future__ import annotations

import difflib
import math

from omegaconf import DictConfig, OmegaConf

from rpn_exp.config.build import ConfigError

#: Keys of the model node that ``rpn_exp.config.build.build_network`` reads.
MODEL_KEYS = ("hidden", "heads", "channels", "bias", "output_processing", "materialize", "compile", "chunk_elements",
              "layer_overrides")


def _number(cfg: DictConfig, key: str, *, integer: bool = False, low: float | None = None, high: float | None = None,
            low_open: bool = False, hint: str = ""):
    value = OmegaConf.select(cfg, key)
    if value is None:
        return
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or (not integer and math.isnan(value)):
        raise ConfigError(f"{key}={value!r} is invalid; it must be {kind}{hint}")
    if low is not None and (value < low or (low_open and value == low)):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ConfigError(f"{key}={value!r} is invalid; it must be {kind} {bound}{hint}")
    if high is not None and value > high:
        raise ConfigError(f"{key}={value!r} is invalid; it must be {kind} <= {high}{hint}")


def check_settings(cfg: DictConfig) -> None:
    """Refuse run settings that cannot work, before anything is built (ConfigError)."""
    _number(cfg, "seed", integer=True, hint=", e.g. seed=42")
    _number(cfg, "threads", integer=True, low=1, hint=", or null for the run's share of this machine's cores")
    _number(cfg, "optimizer.lr", low=0, low_open=True, hint=", e.g. optimizer.lr=1e-3")
    _number(cfg, "optimizer.weight_decay", low=0, hint=", e.g. optimizer.weight_decay=2e-4")
    _number(cfg, "scheduler.gamma", low=0, low_open=True, high=1, hint=" (the factor of the learning rate per epoch)")
    _number(cfg, "dataset.batch_size", integer=True, low=1, hint=", e.g. dataset.batch_size=64")
    _number(cfg, "dataset.eval_batch_size", integer=True, low=1, hint=", e.g. dataset.eval_batch_size=1024")
    for key in ("dataset.val_fraction", "dataset.test_fraction"):
        _number(cfg, key, low=0, low_open=True, high=0.99, hint=", a fraction of the data, e.g. 0.1")
    fractions = [OmegaConf.select(cfg, k) or 0 for k in ("dataset.val_fraction", "dataset.test_fraction")]
    if sum(fractions) >= 1:
        raise ConfigError(f"dataset.val_fraction + dataset.test_fraction = {sum(fractions)} leaves no training data; "
                          "keep their sum below 1")
    if not cfg.get("dry_run", False):
        _number(cfg, "trainer.max_epochs", integer=True, low=1,
                hint=", or evaluate a checkpoint with: python -m rpn_exp.eval ckpt_path=<file.ckpt>")


def check_added_keys(overrides: list[str], groups: set[str]) -> None:
    """Refuse ``+key=value`` overrides that add a key nothing reads: a new top-level key (``+foo=1``), or a
    model key that is not one of :data:`MODEL_KEYS` (``+model.hiden=[64]``, a typo of ``hidden``)."""
    for override in overrides:
        if not override.startswith("+") or override.startswith("++"):
            continue
        key = override[1:].split("=", 1)[0]
        if "@" in key:  # +group@path=option: a config group placed somewhere (e.g. per-layer overrides)
            continue
        head, _, rest = key.partition(".")
        if not rest and head not in groups:
            raise ConfigError(f"{override} adds a top-level key that nothing reads; remove it (a typo of an "
                              f"existing key? see python -m rpn_exp --cfg job)")
        if head == "model" and rest.split(".")[0] not in MODEL_KEYS:
            guess = difflib.get_close_matches(rest.split(".")[0], MODEL_KEYS, n=1)
            hint = f"; did you mean model.{guess[0]}?" if guess else ""
            raise ConfigError(f"{override} adds model.{rest.split('.')[0]}, which the model does not read; valid keys: "
                              f"{', '.join(MODEL_KEYS)}{hint}")
