"""``launcher=stacked``: a Hydra launcher that trains the jobs of a sweep that share every shape as one model (jobs
that differ only in the rank r of lorr, lphm or dual_lphm too, zero-padded to the group's largest r).

Jobs are grouped by :func:`rpn_exp.sweep.stacking.stack_groups`; each group of several jobs is trained by
:func:`rpn_exp.run.stacked.task.train_group` in this process (``max_members`` at once; the others queue and take the
slots of members that end: pruned, stopped early, diverged or done), each job of its own (a job
that stacks with nothing, or one with a setting a stacked group cannot honour) runs as the basic launcher runs it. Every
job gets its own folder with ``.hydra/``, log file, ``result.json`` and TensorBoard run, as under any launcher.

With ``n_jobs`` > 1 the groups (and solo jobs) train in that many worker processes at once (joblib's loky backend,
as ``launcher=joblib``), the longest first (a few steps of each timed: :mod:`rpn_exp.sweep.costs`), each worker
with its share of the cores (:mod:`rpn_exp.run.threads`); with fewer groups than workers the largest groups are
split in two until each worker has one. With 1 they train in this process, in the sweep's order.
"""


import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)


@dataclass
class StackedLauncherConf:
    _target_: str = "hydra_plugins.rpn_exp_stacked.stacked_launcher.StackedLauncher"
    max_members: int = 16  # jobs trained at once in a group; the others queue for the slots of those that end
    n_jobs: int = 1  # groups trained at once, each in a worker process of its own


ConfigStore.instance().store(group="hydra/launcher", name="stacked", node=StackedLauncherConf, provider="rpn_exp")


class StackedLauncher(Launcher):
    #: :meth:`launch` composes every job of a batch before it trains any: a job that does not compose fails first
    composes_first = True

    def __init__(self, max_members: int = 16, n_jobs: int = 1) -> None:
        for key, value, meaning in (("max_members", max_members, "members trained at once in a group"),
                                    ("n_jobs", n_jobs, "groups trained at once, each in a process of its own")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"hydra.launcher.{key}={value!r} is invalid; it must be an integer >= 1 ({meaning})")
        self.max_members, self.n_jobs = max_members, n_jobs
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from rpn_exp.config.settings import run_settings
        from rpn_exp.sweep.stacking import solo_reason, stack_groups

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        configs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(config):
                config.hydra.job.id = config.hydra.job.num = idx
            configs.append(config)
        prepared = [self._run(config, _prepare) for config in configs]  # folders, .hydra/, resolved configs
        tasks = [ret.return_value for ret in prepared]
        waiting = [i for i, (cfg, context) in enumerate(tasks) if not _already_completed(cfg, context)]
        groups = stack_groups([tasks[i][0] for i in waiting], workers=self.n_jobs)
        workers = max(1, min(self.n_jobs, len(groups)))
        for i in waiting:  # each job's threads: its share of the cores among the workers (rpn_exp.run.threads)
            tasks[i][1]["launcher"] = {**(tasks[i][1].get("launcher") or {}), "n_jobs": workers}
            with read_write(configs[i].hydra.launcher):
                configs[i].hydra.launcher.n_jobs = workers
        stacked = [len(g) for g in groups if len(g) > 1]
        log.info("Launching %d jobs: %d stacked groups (%s members), %d solo, %d completed earlier", len(configs),
                 len(stacked), " + ".join(map(str, stacked)) or "no", len(groups) - len(stacked),
                 len(configs) - len(waiting))
        if any(size > self.max_members for size in stacked):
            log.info("\t%d members of a group train at once; the others take the slots of members that end "
                     "(hydra.launcher.max_members)", self.max_members)
        for group in groups:
            reason = solo_reason(run_settings(tasks[waiting[group[0]]][0])) if len(group) == 1 else None
            if reason is not None:
                log.info("\t#%d runs solo: a stacked group cannot honour %s", waiting[group[0]], reason)
        units = [[waiting[i] for i in group] for group in groups]
        if workers > 1:  # in the order that ends soonest, so that no worker is left with a long one at the end
            units = _by_cost(units, tasks, workers, self.max_members)
        results: dict[int, JobReturn] = {}
        for jobs, returned in zip(units, self._train_units(units, configs, tasks, workers)):
            if len(jobs) == 1:
                results[jobs[0]] = returned
            else:
                for job, value in zip(jobs, returned):
                    results[job] = _returned(prepared[job], value)
        for job in range(len(configs)):  # completed earlier (skip_completed): the task reports and skips them
            if job not in results:
                results[job] = self._run(configs[job], self.task_function)
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [results[job] for job in range(len(configs))]

    def _run(self, config: DictConfig, task_function) -> JobReturn:
        return run_job(hydra_context=self.hydra_context, task_function=task_function, config=config,
                       job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")

    def _train_units(self, units: list[list[int]], configs, tasks, workers: int) -> list:
        """What each unit (a solo job, or a group of several) returns: its JobReturn, or its members' objectives."""
        if workers == 1:
            return [self._train_unit(jobs, configs, tasks) for jobs in units]
        from hydra.core.singleton import Singleton
        from joblib import Parallel, delayed

        state = Singleton.get_state()
        return Parallel(n_jobs=workers, backend="loky")(
            delayed(_in_worker)(self, state, jobs, [configs[j] for j in jobs], [tasks[j] for j in jobs])
            for jobs in units)

    def _train_unit(self, jobs: list[int], configs, tasks):
        from rpn_exp.config.settings import run_settings

        if len(jobs) == 1:
            return self._run(configs[jobs[0]], self.task_function)
        logs = [run_settings(tasks[j][0]).output_dir / f"{configs[j].hydra.job.name}.log" for j in jobs]
        return self._train_group([tasks[j] for j in jobs], logs)

    def _train_group(self, jobs, logs) -> list:
        from rpn_exp.run.stacked.task import train_group

        folders = [Path(cfg.paths.output_dir) for cfg, _ in jobs]
        name = f"{folders[0].parent.name}/" + "+".join(f.name.split("_")[0] for f in folders)
        with _group_log_files(logs):
            log.info("stacked group %s: %d members", name, len(jobs))
            return train_group(jobs, name, self.max_members)


def _in_worker(launcher: StackedLauncher, singleton_state, jobs: list[int], configs, tasks):
    """One unit trained in a joblib worker process, with the launching process's Hydra state."""
    from hydra.core.singleton import Singleton

    setup_globals()
    Singleton.set_state(singleton_state)
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    return launcher._train_unit(list(range(len(jobs))), configs, tasks)


def _by_cost(units: list[list[int]], tasks, workers: int, max_members: int) -> list[list[int]]:
    """The units in the order the workers take them: the order that ends soonest by a few timed steps of each, with a
    pruner the units of the most configurations first (:mod:`rpn_exp.sweep.costs`)."""
    from rpn_exp.config.configuration import configuration_id
    from rpn_exp.config.settings import run_settings
    from rpn_exp.run.threads import available_cores
    from rpn_exp.sweep.costs import launch_order, unit_cost

    threads = max(1, available_cores() // workers)
    costs = [unit_cost([tasks[j][0] for j in jobs], max_members, threads) for jobs in units]
    configurations = [len({configuration_id(tasks[j][0]) for j in jobs}) for jobs in units]
    pruning = any(run_settings(tasks[j][0]).pruner for jobs in units for j in jobs)
    order = launch_order(costs, configurations, workers, pruning)
    log.info("\t%d workers train the units at once, in the order that ends soonest%s (estimated from a few timed "
             "steps of each: ms of training per sample of the split, all epochs): %s", workers,
             ", the units of the most configurations first (pruning)" if pruning else "",
             ", ".join(f"{_label(units[i])} {costs[i]:.3g}" for i in order))
    return [units[i] for i in order]


def _label(jobs: list[int]) -> str:
    """A unit as its jobs' numbers: #0+#5+#10, or #0+#1+…+#44 (15 jobs)."""
    if len(jobs) <= 3:
        return "+".join(f"#{j}" for j in jobs)
    return f"#{jobs[0]}+#{jobs[1]}+…+#{jobs[-1]} ({len(jobs)} jobs)"


def _prepare(cfg: DictConfig):
    """The job's config resolved in its own Hydra context (its folder, its overrides) and that context."""
    from rpn_exp.run.context import hydra_context

    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)), hydra_context()


def _already_completed(cfg: DictConfig, context: dict) -> bool:
    """Whether the task decides this job by itself (``skip_completed``: completed earlier, or run with other
    settings, which the task refuses or runs again): it is not trained in a group."""
    from rpn_exp.config.settings import run_settings
    from rpn_exp.run.resume import rerun_state

    try:
        changed, done = rerun_state(cfg, run_settings(cfg), context["overrides"])
    except ValueError:  # another sweep's job: the task says so when it runs
        return True
    return changed is not None or done is not None


def _returned(prepared: JobReturn, value) -> JobReturn:
    ret = JobReturn(overrides=prepared.overrides, cfg=prepared.cfg, hydra_cfg=prepared.hydra_cfg,
                    working_dir=prepared.working_dir, task_name=prepared.task_name, status=JobStatus.COMPLETED)
    ret.return_value = value
    return ret


class _group_log_files:
    """While a group trains, the log lines of the process go to every member's log file."""

    def __init__(self, paths):
        self.handlers = [logging.FileHandler(path) for path in paths]

    def __enter__(self):
        root = logging.getLogger()
        self.previous = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
        formatter = self.previous[0].formatter if self.previous else None
        for handler in self.previous:
            root.removeHandler(handler)
        for handler in self.handlers:
            handler.setFormatter(formatter)
            root.addHandler(handler)
        return self

    def __exit__(self, *exc):
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        for handler in self.previous:
            root.addHandler(handler)
