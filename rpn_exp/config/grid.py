"""``model=grid``: from the ``model.grid`` node and the dataset's grid to the arguments of
:class:`~rpn_exp.nn.grid.GridNetwork` (patches, centre distances, pooling). Errors name the key to change."""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import OmegaConf

from rpn_exp.functions import patches
from rpn_exp.functions.geometry import PATCH_SHAPES, Grid, Patch, centre_distance
from rpn_exp.functions.shapes import check_positive_int

#: The half-extents each patch shape reads (the others must be left unset).
PATCH_KEYS = {
    "cuboid": ("p_h", "p_w", "p_d", "p_h_prime", "p_w_prime", "p_d_prime"),
    "cylinder": ("p_r", "p_d", "p_d_prime"),
    "sphere": ("p_r",),
}
_REQUIRED = {"cuboid": ("p_h", "p_w"), "cylinder": ("p_r",), "sphere": ("p_r",)}


def dataset_grid(shape, num_features: int) -> Grid:
    """The dataset's grid from its data module's ``grid`` (channels, h, w, d), checked against its input width."""
    if shape is None:
        raise ValueError("model=grid needs a dataset whose samples are grids (a data module with grid = (channels, "
                         "h, w, d)), and this one has none; use dataset=digits (8×8) or the MNIST family (28×28)")
    channels, h, w, d = shape
    grid = Grid(h, w, d, channels)
    if grid.size != num_features:
        raise ValueError(f"dataset: its grid {grid} holds {grid.size} values but its samples have {num_features} "
                         "features; the data module's grid must match them")
    return grid


def build_patch(node: Mapping, key: str) -> Patch:
    """A :class:`Patch` from a ``{shape, p_h, ...}`` node at ``key`` (the keys another shape reads left null)."""
    values = {k: v for k, v in dict(node).items() if v is not None}
    shape = values.pop("shape", "cuboid")
    if shape not in PATCH_SHAPES:
        raise ValueError(f"{key}.shape={shape!r} is invalid; valid choices: {', '.join(PATCH_SHAPES)}")
    extra = sorted(set(values) - set(PATCH_KEYS[shape]))
    if extra:
        raise ValueError(f"{key}.{extra[0]}={values[extra[0]]!r} does not apply to a {shape} patch, which reads "
                         f"{', '.join(PATCH_KEYS[shape])}; choose the shape by its config (model/patch={shape}) or "
                         f"set {key}.{extra[0]}=null")
    missing = [k for k in _REQUIRED[shape] if k not in values]
    if missing:
        raise ValueError(f"{key}.{missing[0]} is not set; a {shape} patch needs {', '.join(_REQUIRED[shape])}")
    try:
        return getattr(Patch, shape)(**values)
    except ValueError as error:
        raise ValueError(f"{key}.{error}") from error


def _centre_distance(node: Mapping, patch: Patch, key: str) -> tuple[int, int, int]:
    try:
        return centre_distance(patch, node.get("packing"), node.get("cd"))
    except ValueError as error:
        name = "cd" if node.get("cd") is not None else "packing"
        raise ValueError(f"{key}.{name}: {error}") from error


def _choice(node: Mapping, name: str, choices: tuple[str, ...], default: str, key: str) -> str:
    value = node.get(name, default)
    if value not in choices:
        raise ValueError(f"{key}.{name}={value!r} is invalid; valid choices: {', '.join(choices)}")
    return value


def grid_arguments(model, grid: Grid, num_classes: int) -> dict:
    """:class:`~rpn_exp.nn.grid.GridNetwork`'s arguments from ``model`` (the model node) and the input grid."""
    container = (lambda v: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else dict(v))  # noqa: E731
    node = container(model.grid)
    patch = build_patch(container(model.patch), "model.patch")
    arguments = {
        "grid": grid,
        "out_channels": list(node["out_channels"]),
        "widths": [*model.hidden, num_classes],
        "patch": patch,
        "cd": _centre_distance(node, patch, "model.grid"),
        "mode": _choice(node, "mode", patches.MODES, "padding", "model.grid"),
        "grid_processing": node.get("processing"),
    }
    pooling = node.get("pooling")
    if pooling:
        pool_patch = build_patch(pooling["patch"], "model.grid.pooling.patch")
        arguments["pooling"] = {"patch": pool_patch,
                                "mode": _choice(pooling, "mode", patches.POOLINGS, "max", "model.grid.pooling"),
                                "cd": _centre_distance(pooling, pool_patch, "model.grid.pooling")}
        arguments["pool_every"] = check_positive_int(pooling.get("every", 1), name="model.grid.pooling.every")
        arguments["pooling_processing"] = pooling.get("processing")
    return arguments
