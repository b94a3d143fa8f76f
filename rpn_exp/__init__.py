"""rpn_exp: Hydra + Lightning experiments with Reconciled Polynomial Networks.

``rpn_exp.functions`` holds the pure PyTorch component functions, ``rpn_exp.layers`` the RPN modules;
``build_model(cfg)`` turns a composed Hydra config into the network.
"""

__version__ = "0.1.0"


def build_model(cfg):
    """The ``torch.nn.Module`` for a composed config: (batch, num_features) -> class logits."""
    from .build import build_model as _build_model

    return _build_model(cfg)


__all__ = ["build_model", "__version__"]
