"""model=grid from a composed config: the dataset's grid, the patch config group, and bad values refused with
their key before anything trains."""

import pytest

from rpn_exp.config.build import ConfigError, build_model
from rpn_exp.config.grid import dataset_grid
from rpn_exp.config.schema import check_types
from rpn_exp.functions.geometry import Grid
from rpn_exp.nn.grid import GridLayer, GridNetwork
from tests.conftest import compose_config, options


def test_the_grid_model_reads_each_datasets_grid():
    digits = build_model(compose_config(["model=grid"]))
    assert isinstance(digits, GridNetwork) and digits.layers[0].grid_in == Grid(8, 8, 1, 1)
    mnist = build_model(compose_config(["model=grid", "dataset=fashion_mnist", "model.grid.out_channels=[4,8]"]))
    assert [layer.grid_in for layer in mnist.layers[:2]] == [Grid(28, 28), Grid(14, 14, 1, 4)]
    assert mnist.widths == [784, 4 * 14 * 14, 8 * 7 * 7, 10]


@pytest.mark.parametrize("shape", options("model/patch"))
def test_every_patch_option_builds(shape):
    overrides = ["model=grid", f"model/patch={shape}"]
    if shape == "sphere":  # a sphere needs depth: a 3-D grid is a user's data module; here the patch is refused
        with pytest.raises(ConfigError, match="model.patch: .*along d.*its disk is a cylinder"):
            build_model(compose_config(overrides))
        return
    layer = build_model(compose_config(overrides)).layers[0]
    assert isinstance(layer, GridLayer) and layer.patch.shape == shape


@pytest.mark.parametrize("override,message", [
    ("model.patch.p_h=4", r"model.patch: the patch of layer 0 \(cuboid 9×3×1 \(27 cells\)\) spans 9 cells along h, "
                          r"more than the grid's 8"),
    ("model.grid.cd=0", "model.grid.cd: cd=0 is invalid"),
    ("model.grid.cd=[1,0]", r"model.grid.cd: cd=\[1, 0\] is invalid"),
    ("model.grid.packing=hexagonal", "model.grid.packing: packing='hexagonal' is invalid for a cuboid patch; "
                                     "valid choices: densest_packing"),
    ("model.grid.out_channels=[2,2,2,2]", "model.grid.pooling.patch: the patch of the pooling after layer 3"),
    ("model.grid.mode=stack", "model.grid.mode='stack' is invalid; valid choices: padding, aggregation"),
    ("model.grid.pooling.mode=sum", "model.grid.pooling.mode='sum' is invalid; valid choices: max, mean, min"),
    ("model.grid.pooling.every=0", "model.grid.pooling.every=0 is invalid"),
    ("model.grid.out_channels=[]", r"out_channels=\[\] is invalid"),
    ("model.patch.p_w_prime=-1", "model.patch.p_w_prime=-1 is invalid"),
])
def test_a_bad_grid_value_is_refused_with_its_key(override, message):
    overrides = ["model=grid", "model/patch=cuboid", override]
    if "out_channels=[2" in override:
        overrides.append("model.patch.p_h=0")
        overrides.append("model.patch.p_w=0")
    with pytest.raises(ConfigError, match=message):
        build_model(compose_config(overrides))


def test_a_key_another_patch_shape_reads_is_refused():
    cfg = compose_config(["model=grid", "model/patch=cylinder", "+model.patch.p_h=1"])
    check_types(cfg)  # p_h is a patch key (of cuboids)
    with pytest.raises(ConfigError, match="model.patch.p_h=1 does not apply to a cylinder patch, which reads p_r, "
                                          "p_d, p_d_prime"):
        build_model(cfg)
    with pytest.raises(ConfigError, match="model.patch.p_x is not a key of model.patch; valid keys: shape, p_h"):
        check_types(compose_config(["model=grid", "+model.patch.p_x=1"]))


def test_a_grid_that_does_not_match_the_input_width_is_refused():
    assert dataset_grid((1, 28, 28, 1), 784) == Grid(28, 28)
    with pytest.raises(ValueError, match="its grid 1×8×8 holds 64 values but its samples have 784 features"):
        dataset_grid((1, 8, 8, 1), 784)
    with pytest.raises(ValueError, match="model=grid needs a dataset whose samples are grids"):
        dataset_grid(None, 784)


def test_the_cnn_baseline_is_a_grid_of_dense_convolutions_with_bias():
    from rpn_exp.config.build import is_baseline_model, model_name
    from rpn_exp.functions import expansion, reconciliation

    cfg = compose_config(["model=cnn", "dataset=fashion_mnist", "reconciliation=lorr"])  # ψ of the groups: not used
    net = build_model(cfg)
    assert model_name(cfg) == "cnn" and is_baseline_model("cnn") and not is_baseline_model("grid")
    first = net.layers[0]
    assert isinstance(first.heads[0].expansion, expansion.IdentityExpansion)
    assert isinstance(first.heads[0].reconciliation, reconciliation.IdentityReconciliation)
    assert [layer.describe()["learnable"] for layer in net.layers] == [4 * 9 + 4, 8 * 36 + 8, 10 * 8 * 7 * 7 + 10]


def test_the_cnn_baseline_sweep_grows_in_width():
    cfg = compose_config(["hparams_search=cnn_baseline", "dataset=fashion_mnist"], hydra_config=True)
    widths = cfg.hydra.sweeper.params["model.grid.out_channels"].split("],")
    sizes = [sum(p.numel() for p in build_model(compose_config(
        ["model=cnn", "dataset=fashion_mnist", f"model.grid.out_channels={w.rstrip(']')}]"])).parameters()
        if p.requires_grad) for w in widths]
    assert len(sizes) == 6 and min(sizes) < 2500 and max(sizes) > 20000


def test_the_rpn_cnn_preset_pools_every_second_layer_with_dropout():
    net = build_model(compose_config(["experiment=rpn_cnn"]))
    rows = net.describe()
    assert [row["layer"] for row in rows if "pool" in row] == ["layer 1", "layer 3"]
    assert rows[3]["pool"] == "max 3×3->32×7×7" and net.widths == [784, 16 * 28 * 28, 16 * 14 * 14, 32 * 14 * 14,
                                                                     32 * 7 * 7, 128, 10]
    assert "Dropout(p=0.25" in repr(net.pools[1]) and "Dropout(p=0.5" in repr(net.activations[0])
