"""TensorBoard as a user sees it: a real sweep, a real ``tensorboard`` server, its hparams plugin's HTTP API."""

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rpn_exp.sweep.summary import read_csv
from scripts.example_sweep import free_port
from tests.conftest import multirun

pytestmark = pytest.mark.slow
METRICS = ("test/acc", "val/acc_best")


def post(port: int, route: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/data/plugin/hparams/{route}",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """A 4-job sweep and a TensorBoard server on it; yields (sweep folder, port)."""
    _, folder = multirun(tmp_path_factory.mktemp("dash"), "reconciliation=lphm,dual_lphm", "reconciliation.r=2,4")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(folder), "--host",
                               "127.0.0.1", "--port", str(port), "--reload_interval", "0", "--load_fast", "false"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600  # a server that never serves them; loading takes seconds, loaded or not
        while True:  # the server loads the event files in the background
            try:
                groups = post(port, "session_groups", query([]))
                if groups.get("totalSize") == 4 and all(g.get("metricValues") for g in groups["sessionGroups"]):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("tensorboard did not serve the 4 sessions within 10 minutes")
            time.sleep(1)
        yield folder, port
    finally:
        server.terminate()
        server.wait(timeout=30)


def query(hparams: list[str]) -> dict:
    columns = [{"metric": {"group": "", "tag": tag}, "includeInResult": True} for tag in METRICS]
    columns += [{"hparam": name, "includeInResult": True} for name in hparams]
    return {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                                     "STATUS_RUNNING"],
            "colParams": columns, "aggregationType": "AGGREGATION_AVG", "startIndex": 0, "sliceSize": 100,
            "includeMetrics": True}


def test_every_job_shows_the_metrics_of_its_record_and_its_per_layer_p_q(dashboard):
    folder, port = dashboard
    rows = {row["job"]: row for row in read_csv(folder / "summary.csv")}
    groups = post(port, "session_groups", query(["reconciliation", "r", "p", "q", "learnable_params"]))
    assert sorted(g["name"] for g in groups["sessionGroups"]) == sorted(rows)  # runs named after their job
    for group in groups["sessionGroups"]:
        record = json.loads((folder / group["name"] / "result.json").read_text())
        shown = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        for tag in METRICS:
            assert shown[tag] == pytest.approx(record["metrics"][tag], abs=1e-6)
        row = rows[group["name"]]
        assert group["hparams"]["reconciliation"] == row["reconciliation"]
        assert group["hparams"]["p"] == row["p"] == "8/2" and group["hparams"]["q"] == row["q"] == "64/128"
        assert int(group["hparams"]["r"]) == int(row["r"])
        assert int(group["hparams"]["learnable_params"]) == int(row["learnable_params"])


def test_the_columns_that_differ_come_first_and_constants_are_hidden(dashboard):
    _, port = dashboard
    experiment = post(port, "experiment", {"experimentName": "", "includeMetrics": True})
    infos = experiment["hparamInfos"]
    differs = [info.get("differs", False) for info in infos]
    assert differs == sorted(differs, reverse=True)  # every differing column before every constant one
    names = [info["name"] for info in infos]
    assert set(names[:3]) == {"reconciliation", "r", "learnable_params"}  # what the sweep varies
    assert set(names) <= {"reconciliation", "r", "k", "p", "q", "learnable_params"}
    assert not {"dataset", "batch_size", "expansion", "seed", "lr"} & set(names)  # constants of this sweep
    assert {m["name"]["tag"] for m in experiment["metricInfos"]} >= set(METRICS)
    assert not any(m["name"]["tag"].startswith("hp/") for m in experiment["metricInfos"])


def test_no_event_file_holds_a_placeholder(dashboard):
    folder, _ = dashboard
    for job in sorted(p for p in Path(folder).iterdir() if (p / "result.json").is_file()):
        (event_file,) = job.glob("events.out.tfevents.*")  # one per run
        events = EventAccumulator(str(event_file), size_guidance={"scalars": 0}).Reload()
        assert not any(tag.startswith("hp/") for tag in events.Tags()["scalars"])
        for tag in ("val/acc", "val/acc_best", "test/acc"):
            assert all(e.value > 0 for e in events.Scalars(tag))
        record = json.loads((job / "result.json").read_text())
        assert [e.value for e in events.Scalars("test/acc")] == [pytest.approx(record["metrics"]["test/acc"])]


def test_the_hparams_view_renders_in_headless_chromium(dashboard, tmp_path):
    import shutil

    from PIL import Image

    from scripts.example_sweep import screenshot

    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    folder, _ = dashboard
    screenshot(folder, tmp_path / "hparams.png", width=1200, height=700)
    image = Image.open(tmp_path / "hparams.png").convert("RGB")
    assert image.size == (1200, 700)
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 100  # text and widgets, not a blank page
    orange = sum(count for count, (r, g, b) in colours if r > 230 and 100 < g < 150 and b < 40)
    assert orange > 1200 * 40  # TensorBoard's header bar rendered


def test_each_hparams_column_holds_one_type_whatever_the_layers_resolve():
    """p is ``2`` in one job and ``8/2`` in another: both text, so TensorBoard sees one column of one type."""
    from rpn_exp.config.settings import RunSettings
    from rpn_exp.run.dashboard import dashboard_hparams

    def hparams(p_per_layer):
        layers = [{"layer": f"layer {i}", "r": 5, "p": p} for i, p in enumerate(p_per_layer)]
        record = {"reconciliation": "dual_lphm", "learnable_params": 2085, "lr": 0.01, "dataset": "digits",
                  "expansion": "taylor", "interdependence": "none", "remainder": "zero", "widths": [64, 128, 10],
                  "layers": layers}
        return dashboard_hparams(record, RunSettings(seed=1, batch_size=64, trainer={"max_epochs": 2}))

    uniform, mixed = hparams([2, 2]), hparams([8, 2])
    assert (uniform["p"], mixed["p"], uniform["r"]) == ("2", "8/2", "5")
    assert {key: type(value) for key, value in uniform.items()} == {key: type(value) for key, value in mixed.items()}
