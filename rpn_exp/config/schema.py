"""The types of the config: every value is checked against them before anything is built, each refusal one line that
names the full key, the value given and what to give.

* The run's own keys and the model's are Hydra structured configs (:class:`RunSchema`, :class:`ModelSchema`,
  stored in Hydra's ConfigStore as ``rpn_exp_run`` and ``model/rpn_exp_model``): the composed config is merged
  into them with OmegaConf, so OmegaConf's own rules decide (a boolean is true/false, yes/no, on/off or 1/0 and
  nothing else; an integer is an integer; a list is a list; an unknown model key is refused).
* Every node with a ``_target_`` (the functions, the data module, optimizer, scheduler, trainer, callbacks,
  loggers) is checked against the signature of what it instantiates (:func:`check_target`): a key that is not an
  argument is refused with the valid ones, and a value whose type the annotation rules out (a string for a
  ``bool``, a float for an ``int``) is refused. The defaults stay where they are (the YAML options and the
  signatures); the types come from the code that uses the values.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from rpn_exp.config.build import ConfigError


@dataclass
class PatchSchema:
    """A patch (``model.patch``: conf/model/patch; ``model.grid.pooling.patch``): its shape and the half-extents that
    shape reads (cuboid: p_h, p_w, p_d and their primed after-centre extents; cylinder: p_r, p_d, p_d_prime; sphere:
    p_r)."""

    shape: str = "cuboid"
    p_h: int | None = None
    p_w: int | None = None
    p_d: int | None = None
    p_h_prime: int | None = None
    p_w_prime: int | None = None
    p_d_prime: int | None = None
    p_r: int | None = None


@dataclass
class PoolingSchema:
    """``model.grid.pooling``: grid compression after every ``every``-th grid layer."""

    mode: str = "max"
    every: int = 1
    patch: PatchSchema = field(default_factory=lambda: PatchSchema(p_h=0, p_w=0, p_h_prime=1, p_w_prime=1))
    packing: str | None = None
    cd: Any = 2
    processing: Any = None


@dataclass
class GridSchema:
    """``model.grid`` (``model=grid``): the grid layers before the perceptron layers of ``model.hidden``."""

    out_channels: list[int] = field(default_factory=lambda: [8])
    packing: str = "densest_packing"
    cd: Any = None
    mode: str = "padding"
    processing: Any = None
    pooling: PoolingSchema | None = None


@dataclass
class ModelSchema:
    """``model``: the network's shape and how its layers are built (conf/model/*.yaml)."""

    name: str = "rpn"
    hidden: list[int] = field(default_factory=list)
    heads: int = 1
    channels: int = 1
    init: str = "variance"
    bias: bool = False
    output_processing: Any = None
    activation: Any = None
    functions: Any = None
    materialize: bool = False
    compile: str | None = None
    chunk_elements: int = 2**24
    layer_overrides: dict[Any, Any] = field(default_factory=dict)
    grid: GridSchema | None = None
    patch: PatchSchema | None = None


@dataclass
class RunSchema:
    """The run's own top-level keys (conf/config.yaml); the groups are typed by their own schemas."""

    task_name: str = "train"
    tags: list[str] = field(default_factory=list)
    seed: int = 42
    threads: int | None = None
    dry_run: bool = False
    ckpt_path: str | None = None
    test: bool = True
    objective: Any = "test/acc"
    print_config: bool = True
    progress_bars_in_sweeps: bool = False
    skip_completed: bool = False
    allow_config_change: bool = False


#: The keys of the model node: what ``rpn_exp.config.build.build_network`` reads.
MODEL_KEYS = tuple(f.name for f in fields(ModelSchema) if f.name != "name")

_store = ConfigStore.instance()
_store.store(name="rpn_exp_run", node=RunSchema)
_store.store(group="model", name="rpn_exp_model", node=ModelSchema)


def check_types(cfg: DictConfig) -> None:
    """The composed config against :class:`RunSchema`, :class:`ModelSchema` and, for every ``_target_`` node, the
    signature it instantiates. Raises ConfigError (one line) for the first value of the wrong type or unknown key."""
    top = {f.name: cfg.get(f.name) for f in fields(RunSchema) if f.name in cfg}
    _merge(RunSchema, top, "")
    if cfg.get("model") is not None:
        _merge(ModelSchema, OmegaConf.to_container(cfg.model, resolve=False), "model.")
    for key, node in target_nodes(cfg):
        check_target(node, key)


def _merge(schema: type, values: dict, prefix: str) -> None:
    hints = typing.get_type_hints(schema)
    for name, value in values.items():  # a boolean is a boolean: "no", "off" or 1 is not read as one
        if _fits(True, hints.get(name)) and not _fits(value, hints.get(name)):
            raise ConfigError(f"{prefix}{name}={value!r} is invalid; it must be true or false")
    try:
        OmegaConf.merge(OmegaConf.structured(schema), values)
    except ConfigKeyError as error:
        path = str(error.full_key or error.key).split(".")
        owner = _schema_at(schema, path[:-1])
        where = prefix + "".join(f"{part}." for part in path[:-1])
        valid = [f.name for f in fields(owner)]
        guess = difflib.get_close_matches(path[-1], valid, n=1)
        hint = f"; did you mean {where}{guess[0]}?" if guess else ""
        raise ConfigError(f"{where}{path[-1]} is not a key of {where.rstrip('.') or 'the config'}; valid keys: "
                          f"{', '.join(valid)}{hint}") from None
    except ValidationError as error:
        path = str(error.full_key).split(".")
        kind = _type_name(typing.get_type_hints(_schema_at(schema, path[:-1])).get(path[-1]))
        value = OmegaConf.select(OmegaConf.create(values), str(error.full_key))
        raise ConfigError(f"{prefix}{error.full_key}={value!r} is invalid; it must be {kind}") from None


def _schema_at(schema: type, path: list[str]) -> type:
    """The structured config class of a nested node (``["grid", "patch"]`` of ModelSchema: PatchSchema)."""
    for name in path:
        hint = typing.get_type_hints(schema).get(name)
        schema = next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), hint)
    return schema


def target_nodes(cfg: DictConfig, prefix: str = ""):
    """(key, node) of every mapping with a ``_target_`` in ``cfg``, outermost first."""
    for key, node in cfg.items_ex(resolve=False):
        if not isinstance(node, DictConfig) or str(key) == "hydra":
            continue
        path = f"{prefix}{key}"
        if "_target_" in node:
            yield path, node
        yield from target_nodes(node, f"{path}.")


def check_target(node: DictConfig, key: str) -> None:
    """``node``'s keys and value types against the signature of its ``_target_`` (module docstring)."""
    target = _locate(str(node["_target_"]))
    if target is None:
        return
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    parameters = signature.parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    hints = _hints(target)
    names = [n for n, p in parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n != "self"]
    for name in node:
        name = str(name)
        if name.startswith("_"):
            continue
        if name not in parameters:
            if open_ended:
                continue
            guess = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean {key}.{guess[0]}?" if guess else ""
            raise ConfigError(f"{key}.{name} is not an argument of {node['_target_']}; valid keys: "
                              f"{', '.join(names)}{hint}")
        annotation = hints.get(name)
        if annotation is None:
            continue
        try:
            value = OmegaConf.select(node, name, throw_on_missing=False)
        except Exception:  # an interpolation that resolves only inside the Hydra job: checked there
            continue
        if not isinstance(value, DictConfig | ListConfig) and not _fits(value, annotation):
            raise ConfigError(f"{key}.{name}={value!r} is invalid; it must be {_type_name(annotation)}")


def _locate(path: str):
    from hydra.utils import get_object

    try:
        return get_object(path)
    except Exception:  # instantiation reports a target that cannot be found
        return None


def _hints(target) -> dict:
    function = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(function)
    except Exception:  # annotations that do not evaluate here: none are checked
        return {}


def _fits(value, annotation) -> bool:
    """Whether ``value`` (a plain config value) is allowed by ``annotation``; unknown annotations allow anything."""
    if annotation is Any or annotation is object:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple) or annotation in (list, tuple):
        return isinstance(value, list | tuple)
    if origin in (dict, Mapping) or annotation is dict:
        return isinstance(value, Mapping)
    return True  # a tensor, a callable, a class: not a config value to judge here


def _type_name(annotation) -> str:
    """How a type reads in a message: ``true or false``, ``an integer``, ``a number or null``, ..."""
    if annotation is None:
        return "of the key's type"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        arms = [arm for arm in typing.get_args(annotation) if arm is not type(None)]
        names = list(dict.fromkeys(_type_name(arm) for arm in arms))
        optional = len(arms) < len(typing.get_args(annotation))
        return " or ".join(names + (["null"] if optional else []))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(annotation)))
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if annotation is str:
        return "a string"
    if origin in (list, tuple) or annotation in (list, tuple):
        item = typing.get_args(annotation)
        return f"a list of {_type_name(item[0]).replace('an ', '').replace('a ', '')}s, e.g. [a, b]" if item \
            else "a list, e.g. [a, b]"
    if origin is dict or annotation is dict:
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))
