"""The composed config as a short tree for the console: one branch per group, its option and its values."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError


def _plain(cfg: DictConfig) -> dict:
    """The config as plain containers, resolved where it can be (outside Hydra ``${hydra:...}`` cannot)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError:
        return OmegaConf.to_container(cfg, resolve=False)


def _inline(value) -> str:
    if isinstance(value, (list, ListConfig)):
        return "[" + ",".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_inline(v)}" for k, v in value.items()) + "}"
    return "null" if value is None else str(value)


def _branch(name: str, node, choice: str | None, prefix: str, last: bool, show_target: bool = False) -> list[str]:
    stem, indent = ("└── " if last else "├── "), ("    " if last else "│   ")
    if not isinstance(node, dict):
        return [f"{prefix}{stem}{name}: {_inline(node)}"]
    leaves = {k: v for k, v in node.items() if not isinstance(v, dict) and k != "_target_"}
    children = [(k, v) for k, v in node.items() if isinstance(v, dict)]
    target = str(node.get("_target_", "")).rsplit(".", 1)[-1] if show_target else ""
    head = f"{name}: {choice or target}" if choice or target else name
    text = "  ".join([head, *(f"{k}={_inline(v)}" for k, v in leaves.items())])
    lines = [f"{prefix}{stem}{text}"]
    for i, (key, child) in enumerate(children):
        lines += _branch(key, child, None, prefix + indent, i == len(children) - 1, show_target=name == "functions")
    return lines


def format_config_tree(cfg: DictConfig, choices: dict | None = None) -> str:
    """A tree of ``cfg``: each group with its chosen option and values inline, the top-level keys last.

    ``choices`` maps a group to the option Hydra picked (``hydra.runtime.choices``). ``--cfg job`` still prints
    every key in YAML; this is the part a person checks before a run starts.
    """
    plain, choices = _plain(cfg), dict(choices or {})
    model = plain.get("model") if isinstance(plain.get("model"), dict) else {}
    for group in model.get("functions") or {}:  # the model fixes its layer functions: these groups do not apply
        if group in plain:
            choices[group] = f"{choices.get(group, '')} (not used: model.functions)".lstrip()
    groups = [(k, v) for k, v in plain.items() if isinstance(v, dict)]
    top = {k: v for k, v in plain.items() if not isinstance(v, dict)}
    lines = ["config"]
    for i, (key, node) in enumerate(groups):
        lines += _branch(key, node, choices.get(key), "", i == len(groups) - 1 and not top)
    if top:
        lines.append("└── " + "  ".join(f"{k}={_inline(v)}" for k, v in top.items()))
    return "\n".join(lines)
