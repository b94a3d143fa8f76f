"""From a composed config to objects (``rpn_exp.config.build``): functions, data module, network; a bad value is a
ConfigError that names its key."""

import pytest
import torch
from omegaconf import OmegaConf

from rpn_exp.config.build import (
    ConfigError,
    build_datamodule,
    build_network,
    instantiate_functions,
    instantiate_node,
    model_name,
    qualify,
)
from tests.conftest import compose_config


def test_a_components_message_is_put_in_the_configs_terms():
    assert qualify("dataset", ValueError("root=/x does not exist"), ["root", "download"]) == \
        "dataset.root=/x does not exist"
    assert qualify("dataset", "fashion_mnist not found; give root=<folder> or set download=true", ["root", "download"]) \
        == "dataset: fashion_mnist not found; give dataset.root=<folder> or set dataset.download=true"
    assert qualify("model", "no key here", []) == "model: no key here"


def test_a_bad_value_is_refused_with_the_full_key():
    node = OmegaConf.create({"_target_": "rpn_exp.functions.reconciliation.LowRankReconciliation", "r": 0})
    with pytest.raises(ConfigError, match=r"^reconciliation.r=0 is invalid; it must be an integer >= 1$"):
        instantiate_node(node, "reconciliation")
    missing = OmegaConf.create({"_target_": "rpn_exp.functions.reconciliation.NoSuchFamily"})
    with pytest.raises(ConfigError, match="^reconciliation: .*NoSuchFamily"):
        instantiate_node(missing, "reconciliation")


def test_the_default_config_builds_its_functions_data_and_network():
    cfg = compose_config()
    functions = instantiate_functions(cfg)
    assert [f.name for f in functions.values()] == ["taylor", "dual_lphm", "none", "zero"]
    datamodule = build_datamodule(cfg)
    net = build_network(cfg, datamodule.num_features, datamodule.num_classes)
    assert net.widths == [64, 128, 10] and sum(p.numel() for p in net.parameters()) == 2085


def test_a_dry_run_network_is_built_on_the_meta_device():
    net = build_network(compose_config(["experiment=paper_mnist", "reconciliation=identity"]), 784, 10,
                        shapes_only=True)
    assert all(p.is_meta for p in net.parameters()) and sum(p.numel() for p in net.parameters()) == 39_696_000


def test_a_rank_no_layer_can_reach_is_refused():
    with pytest.raises(ConfigError, match=r"reconciliation.r=1000 is above the rank that any layer's factors"):
        build_network(compose_config(["reconciliation=lorr", "reconciliation.r=1000"]), 64, 10)


def test_model_names_tell_an_rpn_from_the_dense_baselines():
    assert model_name(compose_config()) == "rpn"
    assert model_name(compose_config(["model=mlp"])) == "mlp"
    assert model_name(compose_config(["model=mlp", "model.hidden=[]"])) == "linear"


def test_the_built_network_computes_logits_for_every_class():
    cfg = compose_config(["reconciliation=hm"])
    net = build_network(cfg, 64, 10)
    assert net(torch.randn(5, 64)).shape == (5, 10)


@pytest.mark.parametrize("p, per_layer", [(1, [1, 1, 1]), (2, [2, 2, 2]), (4, [4, 4, 2]), (8, [8, 8, 5])])
def test_a_p_sweep_builds_every_job_of_the_paper_model_with_each_layers_p(p, per_layer, caplog):
    cfg = compose_config(["experiment=paper_mnist", "reconciliation=lphm", f"reconciliation.p={p}"])
    with caplog.at_level("WARNING", logger="rpn_exp"):
        net = build_network(cfg, 784, 10, shapes_only=True)  # [784, 64, 64, 10]
    assert [row["p"] for row in net.describe()] == per_layer
    fitted = [r.getMessage() for r in caplog.records if "largest divisor below it" in r.getMessage()]
    assert len(fitted) == sum(used != p for used in per_layer)  # each fitted layer is named


def test_a_p_that_divides_no_layer_is_refused_with_each_layers_values():
    cfg = compose_config(["experiment=paper_mnist", "reconciliation=lphm", "reconciliation.p=3"])
    with pytest.raises(ConfigError, match=r"reconciliation.p=3 divides no layer's width, so no layer would use it\. "
                                          r"Valid values per layer: layer 0 \(p divides 64\): 1, 2, 4, 8, 16, 32, 64; "
                                          r"layer 1 \(p divides 64\).*layer 2 \(p divides 10\): 1, 2, 5, 10"):
        build_network(cfg, 784, 10, shapes_only=True)


@pytest.mark.parametrize("override", ["reconciliation.k=1000000", "model.channels=100000"])
def test_a_dry_run_of_a_network_too_large_for_memory_answers_and_says_so(override, tmp_path, caplog):
    from rpn_exp.run.record import read_record
    from rpn_exp.run.task import train

    train(compose_config([override, "dry_run=true", "print_config=false"], output_dir=tmp_path))
    record = read_record(tmp_path)
    assert record["status"] == "dry_run"
    assert "this network would not fit: the network has" in caplog.text and "more than this machine" in caplog.text
    with pytest.raises(ConfigError, match="more than this machine's"):  # and a run of it is refused, unallocated
        build_network(compose_config([override]), 64, 10)
