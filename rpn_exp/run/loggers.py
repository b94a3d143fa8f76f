"""Experiment loggers: TensorBoard with one event file per run and an HPARAMS entry that holds no placeholder."""

from __future__ import annotations

import errno
import threading
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger as _LightningTensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only


class TensorBoardLogger(_LightningTensorBoardLogger):
    """Lightning's TensorBoard logger, with two changes that keep its dashboards truthful.

    * **One event file per run.** Lightning closes the writer when ``fit`` ends and opens a new event file for
      ``test`` (and again for anything logged after). Here ``finalize`` only flushes; the task calls
      :meth:`close` once when the run is over. Several files of one run, named by a per-process counter, sort
      as text (``...9`` after ``...11``), which is how a stale value could be read last.
    * **HPARAMS without placeholder metrics.** :meth:`log_session` writes the run's hyper-parameters as a
      session-start record only. No experiment record and no metric values are written with it: TensorBoard
      then lists the hyper-parameters that differ between runs first and reads each metric column (``test/acc``,
      ``val/acc_best``, ...) from the run's own scalars, so a metric that was never measured stays empty
      instead of showing 0.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default_hp_metric", False)
        super().__init__(*args, **kwargs)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """As Lightning's, without the ``epoch`` series it adds to every call: the x axis of every chart already
        says where training was, and an ``epoch`` column would stand first among HPARAMS' metrics."""
        super().log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step)

    @rank_zero_only
    def log_session(self, hparams: dict[str, Any]) -> None:
        """The HPARAMS entry of this run: ``hparams`` (str, bool or number values) as a session start."""
        from tensorboard.plugins.hparams.plugin_data_pb2 import SessionStartInfo

        self.hparams.update(hparams)  # also saved to hparams.yaml
        start = SessionStartInfo()
        for key, value in hparams.items():
            if isinstance(value, bool):
                start.hparams[key].bool_value = value
            elif isinstance(value, (int, float)):
                start.hparams[key].number_value = value
            else:
                start.hparams[key].string_value = str(value)
        self._write_session(session_start_info=start)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """End of ``fit`` or ``test``: flush, keep the event file open for what the run logs next."""
        if self._experiment is not None:
            self.experiment.flush()
        if status == "success":
            self.save()

    @rank_zero_only
    def close(self, status: str = "success") -> None:
        """End of the run: the HPARAMS session end (``status``: success, failure, aborted), then close the file."""
        from tensorboard.plugins.hparams import api_pb2
        from tensorboard.plugins.hparams.plugin_data_pb2 import SessionEndInfo

        if self._experiment is None:
            return
        if self.hparams:
            code = getattr(api_pb2, f"STATUS_{status.upper()}", api_pb2.STATUS_UNKNOWN)
            self._write_session(session_end_info=SessionEndInfo(status=code))
        self.experiment.flush()
        self.experiment.close()
        self._experiment = None

    def _write_session(self, **info) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.plugins.hparams import metadata
        from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

        (field,) = info
        tag = metadata.SESSION_START_INFO_TAG if field == "session_start_info" else metadata.SESSION_END_INFO_TAG
        content = HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **info).SerializeToString()
        plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content)
        summary = Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])
        self.experiment._get_file_writer().add_summary(summary)


def quiet_full_disk_in_writer_threads() -> None:
    """A full disk met by TensorBoard's writer thread is not printed as that thread's traceback: the same error
    reaches the training loop at the next write, and the run records and reports it once (``run.lifecycle``).
    Any other exception in any thread is printed as before."""
    previous = threading.excepthook
    if getattr(previous, "rpn_exp", False):
        return

    def hook(args):
        if isinstance(args.exc_value, OSError) and args.exc_value.errno == errno.ENOSPC:
            return
        previous(args)

    hook.rpn_exp = True
    threading.excepthook = hook
