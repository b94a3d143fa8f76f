"""``hydra/sweeper=study`` (chosen by ``study=<name>``, ``conf/study/``): one multirun of several grid sweeps.

Hydra's basic sweeper runs the product of its overrides; a study is the union of such products, one per entry of
``hydra.sweeper.sweeps`` (a name and its overrides, each followed by the command's), launched as one batch, so that
one launcher packs every job: ``launcher=stacked`` stacks and schedules the groups of all the sweeps together,
and a pruner judges them all through the sweep folder's store. The jobs are those of the sweep's plan
(:func:`rpn_exp.config.sweep_definition.sweep_plan`, saved in ``sweep.json``), in order, a job two sweeps share
once; everything else (``multirun.yaml``, checking that each job composes, launching) is the basic sweeper's, but
for a launcher that composes every job before it trains any (``composes_first``: ``launcher=stacked``), which
makes the check, so that no job is composed twice.
"""

from dataclasses import dataclass, field

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore


@dataclass
class StudySweeperConf:
    _target_: str = "hydra_plugins.rpn_exp_study.study_sweeper.StudySweeper"
    max_batch_size: int | None = None  # jobs launched at once (None: all of them, which lets a launcher pack them)
    params: dict[str, str] | None = None  # swept in every sweep of the study, as the basic sweeper's
    sweeps: dict[str, list[str]] = field(default_factory=dict)  # name -> overrides: the sweeps of the study


ConfigStore.instance().store(group="hydra/sweeper", name="study", node=StudySweeperConf, provider="rpn_exp")


class StudySweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None,
                 sweeps: dict[str, list[str]] | None = None) -> None:
        if not sweeps:
            raise ValueError("hydra.sweeper.sweeps is empty: a study names its sweeps and their overrides, e.g. "
                             "conf/study/fashion_first.yaml (study=fashion_first)")
        if max_batch_size is not None and (isinstance(max_batch_size, bool) or max_batch_size < 1):
            raise ValueError(f"hydra.sweeper.max_batch_size={max_batch_size!r} is invalid; it must be null or an "
                             f"integer >= 1")
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.sweeps = dict(sweeps)

    def validate_batch_is_legal(self, batch) -> None:
        """That each job of ``batch`` composes (the basic sweeper's check), unless the launcher checks it first."""
        if not getattr(self.launcher, "composes_first", False):
            super().validate_batch_is_legal(batch)

    def split_arguments(self, overrides, max_batch_size: int | None) -> list[list[list[str]]]:
        """The study's jobs in batches of ``max_batch_size`` (the basic sweeper's batching; ``overrides``, the
        command's, are in each sweep's part of the plan already)."""
        from rpn_exp.config.sweep_definition import sweep_plan
        from rpn_exp.sweep.progress import grid_jobs

        jobs = grid_jobs(sweep_plan(self.config))
        if jobs is None:
            raise ValueError("a study's sweeps are grids: a search space (interval, choice with a tag, ...) needs a "
                             "search sweeper, e.g. hparams_search=optuna_pareto outside a study")
        size = max_batch_size or len(jobs) or 1
        return [jobs[start:start + size] for start in range(0, len(jobs), size)]
