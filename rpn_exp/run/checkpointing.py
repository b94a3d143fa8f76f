"""Checkpoints you can resume from: written atomically, ``last.ckpt`` at the end of every epoch.

* :class:`AtomicCheckpointIO` writes every checkpoint (best, last, interrupted) to a temporary file beside its
  final name, flushes it to disk and renames it: a crash, a kill or a full disk never leaves a truncated file
  under a checkpoint's name (the previous one stays).
* :class:`LastCheckpoint` writes ``last.ckpt`` when each training epoch ends (after its validation): the state a
  resumed run continues from. With the data order taken from the epoch number and the RNG states in the
  checkpoint (``RPNClassifier.on_save_checkpoint``), ``2 epochs + resume to 4`` computes what ``4 epochs`` does.
* :class:`SaveOnInterrupt` writes ``interrupted.ckpt`` when training is interrupted (Ctrl-C; SIGTERM, which
  Lightning turns into ``SIGTERMException`` at the next batch boundary) in the middle of an epoch; ``last.ckpt``
  keeps the last completed epoch, the exact point to resume from.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from rpn_exp.run.atomic import atomic_write

LAST = "last.ckpt"
INTERRUPTED = "interrupted.ckpt"
#: A stacked member's ``last.ckpt`` of the epoch before (:func:`keep_previous`).
PREVIOUS = "previous.ckpt"


def atomic_torch_save(obj, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` through ``<path>.<pid>.tmp``, fsync and rename; the temporary file is removed
    if writing fails (e.g. the disk is full), so ``path`` holds either its old content or the new one."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


class UnsafeCheckpoint(ValueError):
    """A file whose pickle names something other than tensors and plain data: what it names was not loaded."""


def keep_previous(path: str | Path) -> None:
    """Before ``path`` (a ``last.ckpt``) is replaced, keep it as :data:`PREVIOUS` beside it (a hard link, made under
    a temporary name and renamed: never half a file). A stacked group killed while its members' ``last.ckpt`` of
    one epoch were being written resumes its members that got theirs from the epoch before, with the others."""
    path = Path(path)
    if not path.is_file():
        return
    tmp = path.with_name(PREVIOUS + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:  # a filesystem without hard links
        shutil.copyfile(path, tmp)
    os.replace(tmp, path.with_name(PREVIOUS))


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint at ``path``, read without running any of its code: ``torch.load(weights_only=True)`` takes
    tensors, numbers, strings, lists and dicts only (every checkpoint rpn_exp writes, and those of 0.1.0).

    A pickle that names anything else (a function or class, the way a crafted file runs code) is refused with
    :class:`UnsafeCheckpoint` before any of it runs; other unreadable files raise what ``torch.load`` raises.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if not found:  # not a pickle at all (a record, a log, a truncated file): torch's reason, in a few words
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            after = [b for a, b in zip(lines, lines[1:]) if a.endswith("WeightsUnpickler error:")]
            raise pickle.UnpicklingError(f"not a checkpoint ({(after or lines[-1:] or ['unreadable'])[0]})") from None
        raise UnsafeCheckpoint(
            f"{path} is refused: besides tensors and plain data it names {found.group(1)} "
            "(code a pickle can run); nothing of it was run. rpn_exp reads checkpoints of tensors and plain data "
            "only: use a checkpoint written by rpn_exp") from None


def check_resumable(path: str | Path, net: torch.nn.Module, prefix: str = "net.") -> dict:
    """The checkpoint at ``path``, read; refused (ValueError, naming the file) if it cannot be resumed into ``net``:
    missing, unreadable (truncated), crafted (:func:`load_checkpoint`), without a model state, or saved from a
    model of other shapes."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file (a run keeps its checkpoints in <run folder>/checkpoints/)")
    try:
        checkpoint = load_checkpoint(path)
    except UnsafeCheckpoint:
        raise
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as error:  # damaged, or not one
        raise ValueError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error}); it may be "
                         "truncated. Resume from the run's last.ckpt, written whole at every epoch end") from error
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not state:
        raise ValueError(f"{path} holds no model state (state_dict); is it a Lightning checkpoint of rpn_exp?")
    expected = {prefix + key: tuple(value.shape) for key, value in net.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in state.items()}
    if expected != found:
        differences = [f"{k}: {found.get(k, 'missing')} here vs {expected.get(k, 'absent')} in this model"
                       for k in sorted(set(expected) | set(found)) if expected.get(k) != found.get(k)]
        raise ValueError(f"{path} was saved from a model of other shapes ({len(differences)} difference(s), e.g. "
                         f"{differences[0]}); resume it with the overrides of the run that wrote it")
    check_epoch_boundary(path, checkpoint)
    return checkpoint


def check_epoch_boundary(path: Path, checkpoint: dict) -> None:
    """Refuse a checkpoint saved in the middle of an epoch (``interrupted.ckpt``): Lightning would restart that
    epoch's data mid-way and warn that the result is unreliable; ``last.ckpt`` (an epoch's end) resumes exactly."""
    progress = (checkpoint.get("loops") or {}).get("fit_loop", {}).get("epoch_loop.batch_progress")
    if not progress or progress.get("is_last_batch", True):
        return
    epoch, batches = checkpoint.get("epoch", 0), progress.get("current", {}).get("completed", "?")
    last = path.parent / LAST
    where = (f"resume from {last} instead (the end of epoch {epoch - 1}), which gives an uninterrupted run's result"
             if last.is_file() and last != path else "no epoch had ended when it stopped: start the run again")
    raise ValueError(f"{path} was saved in the middle of epoch {epoch} (after {batches} of its batches): resuming "
                     f"there would not reproduce an uninterrupted run; {where}")


def carry_best_checkpoints(checkpoint: dict, callbacks) -> bool:
    """Resumed into another folder than its checkpoint's, a run keeps its best-checkpoint bookkeeping: the best
    checkpoints named by each ``ModelCheckpoint`` state are copied into this run's checkpoint folder and the state is
    rewritten to name the copies, so Lightning restores it whole (its score included) and the run tests the best
    checkpoint of its one validation history. ``callbacks``: this run's ``ModelCheckpoint`` callbacks.

    A best checkpoint that is gone (deleted, or not copied along with ``last.ckpt``) is forgotten with its score, so
    the run's best is chosen again among the epochs it trains; returns whether that happened."""
    missing = False
    for callback in callbacks:
        state = (checkpoint.get("callbacks") or {}).get(callback.state_key)
        if not state or not state.get("dirpath") or callback.dirpath is None:
            continue
        named = state.get("best_model_path")
        folder = Path(callback.dirpath)
        if Path(state["dirpath"]).resolve() != folder.resolve():
            _copy_best(state, folder)
        state["best_k_models"] = {k: v for k, v in (state.get("best_k_models") or {}).items() if Path(k).is_file()}
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if state.get(key) and not Path(state[key]).is_file():
                state[key] = ""
        if named and not state["best_model_path"]:  # its best checkpoint is gone: its score cannot stand alone
            state["best_model_score"], missing = None, True
    return missing


def relocate_best(checkpoint: dict, path: str | Path) -> None:
    """A run folder moved or copied elsewhere (results fetched from a cluster, a sweep folder renamed) keeps its best
    checkpoint: each best checkpoint ``checkpoint`` names that is gone, where a file of the same name lies beside
    ``path`` (the ``checkpoints/`` folder it moved with), is renamed to that file, in place: a stacked member's
    ``best_checkpoint`` and every ``ModelCheckpoint`` state."""
    beside = Path(path).parent

    def moved(named):
        found = beside / Path(named).name if named else None
        return str(found) if named and not Path(named).is_file() and found.is_file() else named

    if checkpoint.get("best_checkpoint"):
        checkpoint["best_checkpoint"] = moved(checkpoint["best_checkpoint"])
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if not str(key).startswith("ModelCheckpoint") or not state.get("dirpath") or Path(state["dirpath"]).is_dir():
            continue
        for name in ("best_model_path", "kth_best_model_path", "last_model_path"):
            state[name] = moved(state.get(name))
        state["best_k_models"] = {moved(k): v for k, v in (state.get("best_k_models") or {}).items()}
        state["dirpath"] = str(beside)


def as_solo_checkpoint(checkpoint: dict, trainer) -> None:
    """A stacked member's checkpoint written before members were trained by Lightning holds its epoch, step and best
    checkpoint but no loop or callback state: ``trainer`` (about to resume it) gets them in place, as a solo run's
    ``last.ckpt`` holds them at the end of that epoch (without them Lightning would count epochs from 0 again and
    train ``max_epochs`` more on top of the member's). A solo run's checkpoint, and any loaded to test, is left as
    it is."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.trainer.states import TrainerFn

    if "loops" in checkpoint or "stacked_group" not in checkpoint or trainer.state.fn != TrainerFn.FITTING:
        return
    epochs, steps = checkpoint["epoch"] + 1, checkpoint["global_step"]
    loops = trainer.fit_loop.state_dict()  # this Lightning's layout, every count 0
    _count(loops["epoch_progress"], epochs, epochs, completed=epochs - 1)  # saved as its epoch ends
    for key in ("epoch_loop.batch_progress", "epoch_loop.automatic_optimization.optim_progress"):
        _count(loops[key], steps, steps // epochs)
    loops["epoch_loop.batch_progress"]["is_last_batch"] = True
    loops["epoch_loop.state_dict"]["_batches_that_stepped"] = steps
    if checkpoint.get("lr_schedulers"):
        _count(loops["epoch_loop.scheduler_progress"], epochs, 1)
    checkpoint["loops"] = {"fit_loop": loops}
    best, score = checkpoint.get("best_checkpoint"), checkpoint.get("best_score")
    if best:
        score = torch.tensor(score)
        checkpoint["callbacks"] = {
            c.state_key: {"monitor": c.monitor, "best_model_score": score, "best_model_path": best,
                          "current_score": score, "dirpath": str(Path(best).parent), "best_k_models": {best: score},
                          "kth_best_model_path": best, "kth_value": score, "last_model_path": ""}
            for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor == "val/acc"}


def _count(progress: dict, total: int, current: int, completed: int | None = None) -> None:
    """Set every counter of a Lightning progress state (nested ``total``/``current`` dicts) to ``total`` and
    ``current``; ``completed`` (if given) for the ``completed`` counters."""
    for key, value in progress.items():
        if isinstance(value, dict) and key in ("total", "current"):
            for counter in value:
                value[counter] = total if key == "total" else current
                if counter == "completed" and completed is not None:
                    value[counter] = completed
        elif isinstance(value, dict):
            _count(value, total, current, completed)


def _copy_best(state: dict, folder: Path) -> None:
    """Copy the checkpoints a ``ModelCheckpoint`` state names into ``folder`` and rename them in the state."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = {}
    for old in {state.get("best_model_path"), *(state.get("best_k_models") or {})} - {None, ""}:
        if Path(old).is_file():
            copies[old] = str(shutil.copy2(old, folder / Path(old).name))
    state["dirpath"] = str(folder)
    state["best_k_models"] = {copies[k]: v for k, v in (state.get("best_k_models") or {}).items() if k in copies}
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        state[key] = copies.get(state.get(key), "")


def rng_states() -> dict:
    """The state of every random number generator a run draws from (torch, CUDA if present, numpy, python), in
    types that ``torch.load(weights_only=True)`` accepts (tensors, lists, numbers), so a checkpoint holding them
    stays loadable the safe way."""
    import random

    import numpy as np

    kind, keys, position, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), position, has_gauss, cached],
              "python": _lists(random.getstate())}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    """Set every generator back to ``states`` (from :func:`rng_states`)."""
    import random

    import numpy as np

    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _lists(value):
    return [_lists(v) for v in value] if isinstance(value, tuple) else value


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with atomic writes (:func:`atomic_torch_save`); give it as a Trainer plugin."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_torch_save(checkpoint, path)


class LastCheckpoint(Checkpoint):
    """Writes ``<dirpath>/last.ckpt`` at the end of every training epoch: the state to resume from.

    A :class:`~lightning.pytorch.callbacks.Checkpoint`, so Lightning runs it with the checkpoint callbacks, after
    the others and after the ``ModelCheckpoint`` given before it: ``last.ckpt`` then holds that callback's state
    with this epoch's best already counted (a resumed run finds the best checkpoint it names).
    """

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            trainer.save_checkpoint(str(self.dirpath / LAST), weights_only=False)  # the full training state


class SaveOnInterrupt(L.Callback):
    """Writes ``<dirpath>/interrupted.ckpt`` when training is interrupted (Ctrl-C or SIGTERM)."""

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)

    def on_exception(self, trainer, pl_module, exception):
        if isinstance(exception, KeyboardInterrupt | SIGTERMException):
            trainer.save_checkpoint(str(self.dirpath / INTERRUPTED), weights_only=False)
