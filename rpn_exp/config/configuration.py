"""What a run trains, as one identifier: the composed config without the seed and the keys that do not change what
is trained. Runs that differ only in seed share it, however their overrides were spelled (``reconciliation.r=5``
given or left at its default), so merged sweeps and reruns pool into one configuration."""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

#: Keys (and the nodes under them) that do not change what a run trains, or that tell the runs of one
#: configuration apart: where it writes, what it prints and logs, how it is launched, and its seed.
BOOKKEEPING = ("seed", "dataset.seed", "paths", "dataset.cache_dir", "hydra", "tags", "task_name", "threads",
               "skip_completed", "allow_config_change", "print_config", "progress_bars_in_sweeps", "dry_run",
               "objective", "ckpt_path", "logger", "callbacks.progress_bar", "callbacks.lr_monitor",
               "callbacks.weight_snapshots", "callbacks.model_checkpoint.dirpath", "trainer.default_root_dir", "pruner")


def is_bookkeeping(override: str) -> bool:
    """Whether a command-line override (``seed=3``, ``+tags=[a]``, ``~logger``) sets one of :data:`BOOKKEEPING`."""
    key = override.lstrip("+~").split("=", 1)[0]
    return any(key == k or key.startswith(f"{k}.") for k in BOOKKEEPING)


def effective_settings(cfg: DictConfig) -> dict:
    """The composed config, its interpolations resolved, as a plain dict without :data:`BOOKKEEPING` (whatever was
    interpolated from a path or the seed is among them): the same for a job launched solo or in a stacked group,
    whose config arrives resolved."""
    try:
        settings = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # a value that cannot be resolved here (outside its Hydra job): compared as written
        settings = OmegaConf.to_container(cfg, resolve=False)
    for key in BOOKKEEPING:
        *parents, leaf = key.split(".")
        node = settings
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return settings


def configuration_id(cfg: DictConfig) -> str:
    """A short hash of :func:`effective_settings`: equal for runs that train the same thing but for the seed."""
    text = json.dumps(effective_settings(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def flat_settings(cfg: DictConfig) -> dict[str, object]:
    """:func:`effective_settings` and the seed as ``{"dotted.key": value}`` (leaves only): what a job records so that
    a resumed sweep can tell which keys changed (:func:`changed_settings`)."""
    flat: dict[str, object] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk({**effective_settings(cfg), "seed": cfg.get("seed")}, "")
    return flat


def changed_settings(recorded: dict, now: dict) -> list[str]:
    """``key: old -> new`` for every key whose value differs between two :func:`flat_settings` (``<unset>`` where
    one has no such key), in key order."""
    unset = "<unset>"
    return [f"{key}: {recorded.get(key, unset)} -> {now.get(key, unset)}"
            for key in sorted(set(recorded) | set(now)) if recorded.get(key, unset) != now.get(key, unset)]


#: Keys a run resumed from a checkpoint may change without ``allow_config_change``: how long it trains, whether it
#: tests at the end, and where its data files are read from.
RESUME_MAY_CHANGE = ("trainer.max_epochs", "trainer.min_epochs", "trainer.max_steps", "trainer.max_time", "test",
                     "dataset.root", "dataset.download")
#: Keys that decide which samples train, validate and test: a resume that changed one would train on samples the
#: checkpoint's run validated or tested on (refused, always).
DATA_SPLIT = ("seed", "dataset._target_", "dataset.dataset", "dataset.split", "dataset.val_fraction",
              "dataset.test_fraction")


def resume_changes(saved: dict, cfg: DictConfig) -> tuple[list[str], list[str]]:
    """(changes of :data:`DATA_SPLIT`, other changes) between the config saved in a checkpoint (a plain dict, as
    ``RPNClassifier`` saves it) and the composed config ``cfg`` of the run resuming from it, each as
    :func:`changed_settings` words them. Keys of :data:`RESUME_MAY_CHANGE` are not compared, nor keys the saved
    config does not have (added since the version that wrote it, with defaults that keep what it trained)."""
    recorded = flat_settings(OmegaConf.create(saved))
    now = {key: value for key, value in flat_settings(cfg).items() if key in recorded}
    changes = [line for line in changed_settings(recorded, now)
               if line.split(":", 1)[0] not in RESUME_MAY_CHANGE]
    split = [line for line in changes if line.split(":", 1)[0] in DATA_SPLIT]
    return split, [line for line in changes if line not in split]
