"""Callbacks: weight snapshots in TensorBoard and the presets of the callbacks group."""

import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, RichProgressBar
from PIL import Image

from rpn_exp.config.build import instantiate_node
from rpn_exp.run.record import read_record
from rpn_exp.run.task import train
from tests.conftest import FAST, load_events


def test_weight_snapshots_are_readable_heatmaps_at_start_middle_and_end(make_config, tmp_path):
    train(make_config("trainer.max_epochs=4", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=1",
                      "callbacks.progress_bar.refresh_rate=0", output_dir=tmp_path))
    events = load_events(tmp_path)
    steps = {tag: [image.step for image in events.Images(tag)] for tag in events.Tags()["images"]}
    assert steps == {"weights/layer 0": [0, 6, 12], "weights/layer 1": [0, 6, 12]}
    first = events.Images("weights/layer 0")[0]
    assert first.width >= 800 and first.height >= 400  # one cell per weight of a 128 x 512 window, plus a colour bar
    import io

    pixels = Image.open(io.BytesIO(first.encoded_image_string)).convert("RGB")
    assert len(set(pixels.getdata())) > 50  # a colour map, not a blank strip


def callbacks_of(make_config, choice):
    cfg = make_config(f"callbacks={choice}")
    return {key: instantiate_node(node, key) for key, node in cfg.callbacks.items()}


def test_the_presets_add_to_the_default_callbacks(make_config):
    early = callbacks_of(make_config, "early_stopping")
    assert isinstance(early["early_stopping"], EarlyStopping) and "model_checkpoint" in early
    rich = callbacks_of(make_config, "rich_progress_bar")
    assert isinstance(rich["progress_bar"], RichProgressBar) and "weight_snapshots" in rich
    both = callbacks_of(make_config, "[early_stopping,rich_progress_bar]")
    assert isinstance(both["early_stopping"], EarlyStopping) and isinstance(both["progress_bar"], RichProgressBar)


def test_early_stopping_ends_training_when_val_acc_stops_improving(make_config, tmp_path):
    train(make_config(*FAST, "trainer.max_epochs=10", "callbacks=early_stopping",
                      "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=1.0",
                      "callbacks.progress_bar.refresh_rate=0", output_dir=tmp_path))
    record = read_record(tmp_path)
    assert record["status"] == "completed" and record["epochs"] == 2  # no gain of 1.0 after the first epoch


def test_a_grid_layers_filters_are_its_rows_laid_out_on_the_patch():
    from rpn_exp.functions.geometry import Patch
    from rpn_exp.run.snapshots import filter_figure, filter_images

    patch = Patch.cylinder(1)  # 5 cells: (-1, 0), (0, -1), (0, 0), (0, 1), (1, 0)
    W = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(2, 3 * 5)  # 2 outputs, 3 input channels
    images = filter_images(W, 3, patch)
    assert images.shape == (2, 3, 3, 3)
    assert images[1, 2, 0, 1] == W[1, 2 * 5 + 0] and images[1, 2, 1, 1] == W[1, 2 * 5 + 2]  # top cell, centre
    assert np.isnan(images[0, 0, 0, 0]) and np.isnan(images[0, 0, 2, 2])  # the corners are not in the disk
    figure = filter_figure(W, 3, patch, "layer 0 filters, step 0")
    assert len(figure.axes) == 2 * 3 + 1 and "cylinder r=1 (5 cells), 2 out x 3 in" in figure._suptitle.get_text()
