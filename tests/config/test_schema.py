"""The types of the config (``rpn_exp.config.schema``): structured configs for the run and the model, signatures
for every ``_target_`` node; each refusal one line naming the full key."""

import pytest
from omegaconf import OmegaConf

from rpn_exp.config.build import ConfigError
from rpn_exp.config.schema import MODEL_KEYS, ModelSchema, check_target, check_types
from tests.conftest import compose_config, options

GROUPS = ["dataset", "expansion", "reconciliation", "interdependence", "remainder", "model", "optimizer", "scheduler",
          "trainer", "logger", "callbacks"]


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_of_every_group_has_the_types_its_code_takes(group, option, tmp_path):
    check_types(compose_config([f"{group}={option}"], output_dir=tmp_path))


@pytest.mark.parametrize("override, message", [
    ("model.bias=no", "model.bias='no' is invalid; it must be true or false"),  # never read as true
    ("model.bias=1", "model.bias=1 is invalid; it must be true or false"),
    ("dry_run=yes", "dry_run='yes' is invalid; it must be true or false"),
    ("tags=foo", "tags='foo' is invalid; it must be a list of strings, e.g. [a, b]"),
    ("model.heads=2.5", "model.heads=2.5 is invalid; it must be an integer"),
    ("+model.hiden=[3]", "model.hiden is not a key of model; valid keys: name, hidden, "),
])
def test_the_run_and_model_keys_are_refused_by_their_structured_config(override, message, tmp_path):
    with pytest.raises(ConfigError) as refused:
        check_types(compose_config([override], output_dir=tmp_path))
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("node, message", [
    ({"_target_": "torch.optim.AdamW", "momentum": 0.9}, "optimizer.momentum is not an argument of torch.optim.AdamW"),
    ({"_target_": "torch.optim.AdamW", "fused": "maybe"}, "optimizer.fused='maybe' is invalid; it must be true or "
                                                          "false or null"),
    ({"_target_": "torch.optim.AdamW", "weight_decay": "some"}, "optimizer.weight_decay='some' is invalid; it must be "
                                                                "a number"),
    ({"_target_": "lightning.pytorch.Trainer", "max_epoch": 3}, "optimizer.max_epoch is not an argument of "
                                                                "lightning.pytorch.Trainer; valid keys: accelerator"),
    ({"_target_": "rpn_exp.functions.reconciliation.LPHMReconciliation", "r": 2.5},
     "optimizer.r=2.5 is invalid; it must be an integer"),
])
def test_a_target_node_is_checked_against_the_signature_it_builds(node, message):
    with pytest.raises(ConfigError) as refused:
        check_target(OmegaConf.create(node), "optimizer")
    assert str(refused.value).startswith(message)


def test_a_target_that_takes_any_keyword_accepts_any_key():
    check_target(OmegaConf.create({"_target_": "builtins.dict", "anything": 1}), "x")


def test_the_model_keys_come_from_the_schema():
    assert "hidden" in MODEL_KEYS and set(MODEL_KEYS) < {f for f in ModelSchema.__dataclass_fields__}
