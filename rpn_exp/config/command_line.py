"""The command line checked before Hydra composes it: a mistyped option, key or override is one line naming it with
the closest valid choices, where Hydra's own messages take 6 to 25 lines.

Checked: the override grammar; every ``group=option`` against the options of ``conf/<group>/`` (each value of a
sweep too); every ``key=value`` and ``~key`` against the keys of the config those options compose; ``+key`` for a
key that exists already. Hydra's own flags (``--cfg``, ``--help``, ...), ``hydra.*`` keys and a command with its
own ``hydra.searchpath`` (options this check cannot see) are left to Hydra.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from omegaconf import OmegaConf

#: Flags that take no value and change nothing this check looks at.
PLAIN_FLAGS = ("-m", "--multirun")


def command_line_problem(args: list[str], conf: Path) -> str | None:
    """One line saying what in ``args`` (``python -m rpn_exp ARGS``) Hydra would refuse, and the closest valid
    choices; None when nothing is found (or the command is Hydra's to judge)."""
    if any(a.startswith("-") and a not in PLAIN_FLAGS for a in args):
        return None
    texts = [a for a in args if a not in PLAIN_FLAGS]
    if any(t.lstrip("+~").startswith("hydra.searchpath") for t in texts):
        return None
    overrides = []
    for text in texts:
        problem, override = _parse(text)
        if problem:
            return problem
        overrides.append(override)
    groups = {o.key_or_group.split("@")[0]: o for o in overrides if (conf / _key(o).split("@")[0]).is_dir()}
    for group, override in groups.items():
        problem = _option_problem(group, override, conf)
        if problem:
            return problem
    keys = [o for o in overrides if _key(o).split("@")[0] not in groups and not _key(o).startswith("hydra")]
    if not keys:
        return None
    cfg = _compose([f"{o.key_or_group}={_values(o)[0]}" for o in groups.values() if _values(o)], conf)
    return next(filter(None, (_key_problem(o, cfg) for o in keys)), None)


def _parse(text: str):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return None, OverridesParser.create().parse_overrides([text])[0]
    except HydraException as error:  # OverrideParseException, with Hydra's words for what it expected
        first = str(error).strip().splitlines()[0]
        return (f"cannot read the override {text!r} ({first}); write key=value, group=option, a sweep as "
                f"key=a,b, and quote values with spaces or brackets"), None


def _key(override) -> str:
    return override.key_or_group


def _values(override) -> list[str]:
    """The option(s) a group override names (each of a sweep); [] for a deletion or a sweep this cannot list."""
    if override.is_delete():
        return []
    if override.is_sweep_override():
        try:
            return [str(v) for v in override.sweep_string_iterator()]
        except Exception:  # a range or glob sweep: left to Hydra
            return []
    return [override.get_value_element_as_str()]


def _option_problem(group: str, override, conf: Path) -> str | None:
    options = sorted(p.stem for p in (conf / group).glob("*.yaml"))
    for value in _values(override):
        if value in options or value == "null":
            continue
        close = difflib.get_close_matches(value, options, n=3, cutoff=0.6)
        guess = f"did you mean {' or '.join(close)}? " if close else ""
        return f"{group}={value} is not an option of {group}; {guess}valid choices: {', '.join(options)}"
    return None


def _compose(overrides: list[str], conf: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            return compose("config", overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def _key_problem(override, cfg) -> str | None:
    key = _key(override)
    missing = object()
    exists = OmegaConf.select(cfg, key, default=missing) is not missing
    adding = override.is_add() or override.is_force_add()
    if adding and exists and override.is_add():
        return f"+{key}: {key} is in the config already; set it with {key}=<value> (without '+')"
    if exists or adding:
        return None
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    siblings = [str(k) for k in node.keys()] if OmegaConf.is_dict(node) else []
    prefix = f"{parent}." if parent else ""
    close = [prefix + k for k in difflib.get_close_matches(leaf, siblings, n=3, cutoff=0.6)]
    guess = f"did you mean {' or '.join(close)}? " if close else ""
    where = f"{parent}'s keys: {', '.join(sorted(siblings))}" if parent and siblings else "python -m rpn_exp --cfg job"
    return f"{key} is not a key of the config; {guess}({where}); add a new key with +{key}=<value>"
