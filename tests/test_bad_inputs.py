"""Every bad input in the documentation's table is refused through the real command line, before anything is trained.

The rows are read from docs/guide/bad_inputs.md (one source: the documentation is what is tested). A ``<...>`` cell is a file
or folder made here: a folder with a truncated IDX file, one whose labels reach 11, a truncated checkpoint and a
checkpoint of another model.
"""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from rpn_exp.data.vision import SPECS
from tests.forked import run_commands
from tests.idx import write_dataset, write_idx

ROOT = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickled, it would run a shell command that leaves ``marker`` behind."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def table_rows(header: str = "| bad input | e.g. | refused with (excerpt) |") -> list[tuple[str, str, str]]:
    """(what, overrides, excerpt) of each row of the documentation's table that starts with ``header``."""
    text = (ROOT / "docs" / "guide" / "bad_inputs.md").read_text()
    table = text[text.index(header):].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        what, example, excerpt = (cell.strip() for cell in line.strip("|").split(" | "))
        rows.append((what, example.strip("`"), excerpt.strip("`")))
    return rows


def test_the_documented_table_lists_the_bad_inputs():
    assert len(table_rows()) >= 20


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The files the ``<...>`` cells stand for."""
    base = tmp_path_factory.mktemp("made")
    names = {part: tuple(files) for part, files in SPECS["mnist"].files(None).items()}
    write_dataset(base / "truncated", names)
    images = base / "truncated" / names["train"][0]
    images.write_bytes(images.read_bytes()[:-100])
    write_dataset(base / "labels", names, classes=12)
    checkpoint = base / "good.ckpt"
    torch.save({"state_dict": {"net.layers.0.heads.0.w": torch.zeros(1, 7)}}, checkpoint)
    (base / "truncated.ckpt").write_bytes(checkpoint.read_bytes()[:200])
    write_idx(base / "unused", np.zeros(1, dtype=np.uint8))
    (base / "result.json").write_text('{"status": "completed"}')
    crafted = torch.load(checkpoint, weights_only=True)
    crafted["extra"] = Payload(base / "payload-ran")
    torch.save(crafted, base / "crafted.ckpt")
    return {
        "<a run record, not a checkpoint>": base / "result.json",
        "<a folder with a truncated IDX file>": base / "truncated",
        "<a folder whose labels reach 11>": base / "labels",
        "<a truncated checkpoint>": base / "truncated.ckpt",
        "<a checkpoint of another model>": checkpoint,
        "<a checkpoint that runs code>": base / "crafted.ckpt",
    }


def row_args(example: str, made: dict) -> list[str]:
    """The command line of one row, its ``<...>`` cells made."""
    for placeholder, path in made.items():
        example = example.replace(placeholder, str(path))
    return shlex.split(example)


@pytest.fixture(scope="module")
def refusals(made, tmp_path_factory):
    """Every row of the table run once through the command line, each in a process of its own, two at a time
    (forked after the imports they share, ``tests.forked``); {example: (args, completed process, folder)}."""
    rows = table_rows()
    folders = [tmp_path_factory.mktemp("row") for _ in rows]
    args = [row_args(row[1], made) for row in rows]
    done = run_commands([([*a, "callbacks.progress_bar.refresh_rate=0", f"paths.log_dir={folder / 'logs'}",
                           f"paths.data_dir={folder / 'data'}"], ROOT) for a, folder in zip(args, folders)])
    return {row[1]: (a, result, folder) for row, a, result, folder in zip(rows, args, done, folders)}


@pytest.mark.slow
@pytest.mark.parametrize("what, example, excerpt", table_rows(), ids=[row[0] for row in table_rows()])
def test_a_bad_input_is_refused_before_training(what, example, excerpt, refusals, made):
    args, done, folder = refusals[example]
    assert done.returncode != 0, done.stdout[-2000:]
    error = done.stderr
    fragments = [f.strip() for f in re.split(r"\.\.\.", excerpt) if f.strip()]
    for fragment in fragments:
        assert fragment in error, f"{fragment!r} not in:\n{error[-2000:]}"
    key_value = args[-1].lstrip("+")  # the override that is wrong is named with its value
    if "<" not in excerpt and not key_value.startswith(("ckpt_path", "dataset.root")):
        assert key_value.split("=")[0].split(".")[-1] in error
    lines = [line for line in error.splitlines() if line.strip()]
    assert len(lines) <= 3, error[-2000:]  # one short line, not a traceback
    logs = folder / "logs"
    written = [p for p in logs.rglob("*") if p.is_file()] if logs.exists() else []
    assert not [p for p in written if p.suffix == ".ckpt" or p.name.startswith("events.out")]  # nothing trained
    assert {p.name for p in written} <= {"result.json", "config.yaml", "hydra.yaml", "overrides.yaml", "train.log",
                                         ".lock"}
    assert not (folder / "data").exists() or not any((folder / "data").rglob("*-ubyte"))  # nothing staged
    assert not (made["<a checkpoint that runs code>"].parent / "payload-ran").exists()  # no checkpoint ran code


VALUE_ROWS = table_rows("| bad value | e.g. | refused with (excerpt) |")


def test_the_readme_lists_the_bad_values_of_every_kind():
    assert len(VALUE_ROWS) >= 25


@pytest.mark.parametrize("what, example, excerpt", VALUE_ROWS, ids=[row[0] for row in VALUE_ROWS])
def test_a_bad_value_is_refused_before_anything_is_built(what, example, excerpt, tmp_path):
    """In-process through the task every command runs (``rpn_exp.run.task.train``): one ConfigError line naming the
    key, a failed record and nothing else written."""
    from rpn_exp.config.build import ConfigError
    from rpn_exp.run.record import read_record
    from rpn_exp.run.task import train
    from tests.conftest import compose_config

    cfg = compose_config([*shlex.split(example), "print_config=false"], output_dir=tmp_path / "run")
    with pytest.raises(ConfigError) as refused:
        train(cfg)
    message = str(refused.value)
    assert "\n" not in message
    for fragment in (f.strip() for f in excerpt.split("...") if f.strip()):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert read_record(tmp_path / "run")["status"] == "failed"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock", "result.json"]
