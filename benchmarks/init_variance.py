"""Initial output variance of an RPN layer for every reconciliation family, against the dense layer's.

For each family (its conf/reconciliation default, plus rank 1 for the rank-r families), channel count C and head
count H: the median over 20 seeds of E[y²] at initialization (y = layer(x), 16 → 16, Taylor d=2 + layer norm,
x ~ N(0, 1)) as a multiple of the dense reference's (identity reconciliation, C = H = 1), and the spread across
seeds (standard deviation / mean) as a multiple of the dense one's; with init=variance (default) and
init=reference.

    python benchmarks/init_variance.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra.utils import instantiate  # noqa: E402

from benchmarks.common import compose, print_table  # noqa: E402
from rpn_exp.nn.diagnostics import layer_statistics, spread  # noqa: E402

FIXED = {"zero", "one", "constant", "constant_eye"}  # no parameters: W is fixed, there is nothing to initialize


def families() -> list[tuple[str, list[str]]]:
    from rpn_exp.config.location import config_dir

    names = sorted(p.stem for p in (Path(config_dir()) / "reconciliation").glob("*.yaml") if p.stem not in FIXED)
    out = [(name, []) for name in names]
    out += [(f"{name} r=1", ["reconciliation.r=1"]) for name in ("lorr", "lphm", "dual_lphm")]
    out += [("dual_lphm layout=reference", ["reconciliation.layout=reference"])]
    return out


def maker(name: str, overrides: list[str]):
    node = compose([f"reconciliation={name.split()[0]}", *overrides]).reconciliation
    return lambda seed: instantiate(node, seed=seed)


def main() -> None:
    dense = layer_statistics(maker("identity", []))
    dense_median, dense_spread = statistics.median(dense), spread(dense)
    rows = []
    for name, overrides in families():
        make = maker(name, overrides)
        for init in ("variance", "reference"):
            for channels, heads in ((1, 1), (4, 1), (1, 4)):
                values = layer_statistics(make, channels=channels, heads=heads, init=init)
                rows.append({"family": name, "init": init, "C": channels, "H": heads,
                             "median / dense": f"{statistics.median(values) / dense_median:.2f}",
                             "spread / dense": f"{spread(values) / dense_spread:.1f}",
                             "range": f"{min(values):.3f}-{max(values):.3f}"})
    print(f"dense reference: median {dense_median:.4f}, spread {dense_spread:.4f} (std/mean over 20 seeds)")
    print_table(rows, ["family", "init", "C", "H", "median / dense", "spread / dense", "range"])


if __name__ == "__main__":
    main()
