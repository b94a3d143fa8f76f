"""rpn_exp: Hydra + Lightning experiments with Reconciled Polynomial Networks.

``rpn_exp.functions`` holds the pure PyTorch component functions, ``rpn_exp.nn`` the RPN modules;
``build_model(cfg)`` turns a composed Hydra config into the network.
"""

from rpn_exp.config.naming import register_resolvers

__version__ = "0.1.0"

# Config interpolations of rpn_exp (e.g. the sweep job folder names): registered on import, so every process
# that composes or resolves an rpn_exp config (launcher workers included) has them.
register_resolvers()


def build_model(cfg):
    """The ``torch.nn.Module`` for a composed config: (batch, num_features) -> class logits."""
    from rpn_exp.config.build import build_model as _build_model

    return _build_model(cfg)


__all__ = ["build_model", "__version__"]
