"""Every ``python -m rpn_exp ...`` command shown in the README or on the documentation site (``docs/``) runs as written
(with ``dry_run=true``), and the
example sweep it publishes at reduced size gives, run for real, the accuracies of its table to the last digit.

Excluded: the SLURM launcher (tests/test_cluster.py runs it on a cluster it starts) and lines with a
``<placeholder>`` (a folder of the reader's own).
A sweep passes only if every job it launched is recorded as a dry run: a failed job does not fail a sweep's exit
code, so the records are read.
"""

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.forked import run_commands

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"^\s*(python -m rpn_exp(?:\s.*)?)$")


def readme_commands() -> list[str]:
    """The commands of the README, then of the documentation site's pages."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    commands = [m.group(1) for page in pages for line in page.read_text().splitlines() if (m := COMMAND.match(line))]
    return list(dict.fromkeys(c for c in commands if "submitit_slurm" not in c and "<" not in c))  # each once


def test_the_readme_shows_commands():
    commands = readme_commands()
    assert len(commands) >= 15 and any(" -m " in c.replace("python -m", "") for c in commands)


def dry_run_args(command: str, folder: Path) -> list[str]:
    """The arguments of ``command`` as written plus ``dry_run=true``, writing under ``folder``."""
    args = shlex.split(command, comments=True)[3:]  # after "python -m rpn_exp"
    return [*args, "dry_run=true", f"paths.log_dir={folder}", f"paths.data_dir={folder / 'no-data'}"]


@pytest.fixture(scope="module")
def command_runs(tmp_path_factory):
    """Every README command run once, each in a process of its own, two at a time (forked after the imports they
    share, ``tests.forked``); {command: (completed process, its folder)}."""
    commands = readme_commands()
    folders = [tmp_path_factory.mktemp("command") for _ in commands]
    done = run_commands([(dry_run_args(c, f), f) for c, f in zip(commands, folders)])
    return {command: (result, folder) for command, result, folder in zip(commands, done, folders)}


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands())
def test_a_readme_command_runs_as_written(command, command_runs):
    done, folder = command_runs[command]
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    if "--help" in command:
        assert "== Config groups" in done.stdout
        return
    records = [json.loads(p.read_text()) for p in folder.rglob("result.json")]
    assert records, done.stdout[-2000:]
    assert {r["status"] for r in records} == {"dry_run"}, [r.get("error") for r in records if r.get("error")]


def test_the_config_group_table_lists_every_option_of_every_group():
    """The README's table of config groups names each option in conf/ (one source: the folders)."""
    from tests.conftest import CONF, options

    table = (ROOT / "README.md").read_text().split("### Config groups")[1].split("\n\n")[1]
    rows = {}
    for line in table.splitlines()[2:]:
        groups, listed = line.split("|")[1:3]
        for group in groups.replace("(κ)", "").replace("(ψ)", "").replace("(ξ)", "").replace("(π)", "").split("/"):
            rows[group.strip()] = re.findall(r"[a-z_]+", listed)
    documented = {p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "paths", "__pycache__")}
    assert set(rows) == documented
    missing = {group: sorted(set(options(group)) - set(rows[group])) for group in documented}
    assert not any(missing.values()), missing


REDUCED = "threads=1 task_name=rank_digits_small"  # how the README's reduced example sweep is told apart


def published_reduced_example() -> tuple[str, dict[tuple[str, str], tuple[int, str]]]:
    """The README's reduced example sweep: its command and its table, {(family, r): (learnable parameters, test
    accuracy as printed)}."""
    lines = (ROOT / "README.md").read_text().splitlines()
    (command,) = [c for c in readme_commands() if c.endswith(REDUCED)]
    start = next(i for i, line in enumerate(lines) if line.endswith(REDUCED)) + 1
    header = next(i for i in range(start, len(lines)) if lines[i].startswith("| reconciliation | r |"))
    table = {}
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        family, r, params, acc = (cell.strip() for cell in line.strip("|").split("|"))
        table[(family, r)] = (int(params.replace(",", "")), acc)
    return command, table


@pytest.mark.slow
def test_the_reduced_example_sweep_gives_the_published_accuracies_to_the_last_digit(tmp_path):
    from tests.conftest import run_cli

    command, table = published_reduced_example()
    assert len(table) == 4
    done = run_cli(*shlex.split(command)[3:], f"hydra.sweep.dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/result.json"))]
    measured = {(r["reconciliation"], str(r["reconciliation_hparams"]["r"])):
                (r["learnable_params"], f"{r['metrics']['test/acc']:.4f}") for r in records}
    assert {r["threads"] for r in records} == {1}
    assert measured == table
