"""What a run trains, as one identifier (``rpn_exp.config.configuration``): the same for runs that differ only in
seed, paths or bookkeeping, however their config arrives; different for anything that changes training."""

from omegaconf import OmegaConf

from rpn_exp.config.configuration import configuration_id
from tests.conftest import compose_config


def test_seed_paths_and_bookkeeping_do_not_change_the_configuration(tmp_path):
    base = configuration_id(compose_config(["seed=1"], output_dir=tmp_path / "a"))
    assert configuration_id(compose_config(["seed=2", "tags=[x]", "threads=1"], output_dir=tmp_path / "b")) == base
    assert configuration_id(compose_config(["reconciliation=dual_lphm", "reconciliation.r=5"],
                                           output_dir=tmp_path / "c")) == base  # the default, spelled out


def test_a_config_that_arrives_resolved_has_the_same_configuration(tmp_path):
    """A stacked group's members get their configs resolved; a solo run's keeps its interpolations."""
    cfg = compose_config(["dataset=fashion_mnist", "scheduler=cosine"], output_dir=tmp_path / "a")
    resolved = OmegaConf.create(OmegaConf.to_container(
        compose_config(["dataset=fashion_mnist", "scheduler=cosine", "seed=7"], output_dir=tmp_path / "b"),
        resolve=True))
    assert configuration_id(resolved) == configuration_id(cfg)


def test_what_changes_training_changes_the_configuration(tmp_path):
    base = configuration_id(compose_config(output_dir=tmp_path))
    for override in ("reconciliation.r=2", "optimizer.lr=0.1", "trainer.max_epochs=3", "dataset.batch_size=32"):
        assert configuration_id(compose_config([override], output_dir=tmp_path)) != base, override
