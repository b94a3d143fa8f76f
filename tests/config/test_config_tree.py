"""The config tree printed when a run starts: each group with its option and values, on one screen."""

from rpn_exp.config.tree import format_config_tree
from tests.conftest import compose_config


def test_each_group_is_a_branch_with_its_option_and_values(tmp_path):
    cfg = compose_config(["reconciliation=lphm", "reconciliation.r=2"], output_dir=tmp_path)
    tree = format_config_tree(cfg, {"reconciliation": "lphm", "dataset": "digits"})
    lines = tree.splitlines()
    assert lines[0] == "config"
    assert "├── reconciliation: lphm  r=2  k=1  p=null  q=null  layout=kronecker" in lines
    assert any(line.startswith("├── dataset: digits  batch_size=64") for line in lines)
    assert any(line.startswith("│   ├── model_checkpoint  ") and "monitor=val/acc" in line for line in lines)
    assert lines[-1].startswith("└── task_name=train  tags=[]  seed=42")
    assert "_target_" not in tree and str(tmp_path) in tree  # resolved values, no targets
    groups = [key for key, value in cfg.items() if hasattr(value, "items")]
    assert all(sum(line.startswith(("├── " + g, "└── " + g)) for line in lines) == 1 for g in groups)
    assert len(lines) < 30  # fits on a screen


def test_a_config_that_cannot_be_resolved_outside_hydra_is_shown_unresolved():
    cfg = compose_config([])  # paths.output_dir is ${hydra:runtime.output_dir}
    assert "output_dir=${hydra:runtime.output_dir}" in format_config_tree(cfg)


def test_a_model_that_fixes_its_functions_says_which_groups_do_not_apply():
    cfg = compose_config(["model=mlp"])
    lines = format_config_tree(cfg, {"model": "mlp", "reconciliation": "dual_lphm"}).splitlines()
    assert any(line.startswith("├── reconciliation: dual_lphm (not used: model.functions)") for line in lines)
    assert "│   │   ├── reconciliation: IdentityReconciliation" in lines
