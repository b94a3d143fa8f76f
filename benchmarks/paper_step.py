"""Training step time and memory of the paper's MNIST model ([784, 64, 64, 10], Taylor d=2 + layer norm).

Inside the real Lightning training loop (RPNClassifier, AdamW, Trainer, the preloaded data module), for each
reconciliation and compute path: the median time of a training step (forward, backward, optimizer step and
logging, from on_train_batch_start to on_train_batch_end), the median period of the loop (one step end to
the next), the time outside the step (from one step's end to the next one's start: fetching and standardizing
the batch, moving it to the device and Lightning's own loop work), the same step in
a plain PyTorch loop, and memory: resident memory before fit (model and data loaded) and the peak during fit.
Each configuration runs in its own process so its memory is its own.

    python benchmarks/paper_step.py                                  # dual_lphm r=5 and identity, fast and materialized
    python benchmarks/paper_step.py --runs dual_lphm:fast --steps 500
    python benchmarks/paper_step.py --accelerator gpu                # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import compose, peak_since_reset_mb, print_table, reset_peak_rss, rss_mb  # noqa: E402

RUNS = ["dual_lphm:fast", "dual_lphm:materialized", "identity:fast", "identity:materialized"]


def overrides(run: str, dataset: str, more: list[str]) -> list[str]:
    reconciliation, path = run.split(":")
    extra = ["reconciliation.r=5"] if reconciliation in ("dual_lphm", "lphm", "lorr") else []
    if path == "materialized":
        extra.append("model.materialize=true")
    return ["experiment=paper_mnist", f"dataset={dataset}", f"reconciliation={reconciliation}", *extra, *more]


def measure(run: str, steps: int, dataset: str, accelerator: str, more: list[str], probe: bool = True) -> dict:
    """One configuration, in this process (``probe``: the GPU asked about once, as a run does, not on every step)."""
    import lightning as L
    import torch
    import torch.nn.functional as F
    from hydra.utils import instantiate

    from rpn_exp.config.build import build_datamodule, build_network
    from rpn_exp.run.gpu_probe import probe_gpu_once
    from rpn_exp.run.module import RPNClassifier

    if probe:
        probe_gpu_once()

    class StepTimer(L.Callback):
        def __init__(self):
            self.starts, self.ends = [], []

        def on_train_batch_start(self, *args):
            self._sync()
            self.starts.append(time.perf_counter())

        def on_train_batch_end(self, *args):
            self._sync()
            self.ends.append(time.perf_counter())

        _sync = staticmethod(torch.cuda.synchronize if accelerator != "cpu" else (lambda: None))

    cfg = compose(overrides(run, dataset, more))
    L.seed_everything(0)
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    net = build_network(cfg, datamodule.num_features, datamodule.num_classes)
    module = RPNClassifier(net, optimizer=instantiate(cfg.optimizer))
    timer = StepTimer()
    trainer = L.Trainer(max_steps=steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator=accelerator,
                        devices=1, callbacks=[timer])
    before = rss_mb()
    reset_peak_rss()
    trainer.fit(module, datamodule=datamodule)
    peak = peak_since_reset_mb()

    warm = max(1, steps // 10)
    inside = [(e - s) * 1e3 for s, e in zip(timer.starts[warm:], timer.ends[warm:])]
    period = [(b - a) * 1e3 for a, b in zip(timer.ends[warm:], timer.ends[warm + 1:])]
    outside = [(s - e) * 1e3 for e, s in zip(timer.ends[warm:], timer.starts[warm + 1:])]  # fetch + loop

    # the same step in a plain PyTorch loop: forward, cross entropy, backward, AdamW step
    device = torch.device("cuda" if accelerator == "gpu" else accelerator)
    module.to(device)  # Lightning moves the model back to the CPU when fit ends
    optimizer = instantiate(cfg.optimizer)(module.parameters())
    batches = iter(datamodule.train_dataloader())
    plain = []
    for i in range(min(steps, 200)):
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        StepTimer._sync()
        start = time.perf_counter()
        loss = F.cross_entropy(module(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        StepTimer._sync()
        if i >= warm:
            plain.append((time.perf_counter() - start) * 1e3)
    return {
        "reconciliation": run.split(":")[0],
        "path": net.layers[0].path + (f" / {net.layers[1].path}" if net.layers[1].path != net.layers[0].path else ""),
        "learnable": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "step ms (Lightning)": statistics.median(inside),
        "loop period ms": statistics.median(period),
        "outside step ms": statistics.median(outside),
        "plain loop ms": statistics.median(plain),
        "RSS before fit MB": before,
        "peak in fit MB": peak,
        "added by training MB": peak - before,
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=",".join(RUNS), help="reconciliation:path list (path: fast or materialized)")
    parser.add_argument("--steps", type=int, default=400, help="training steps of the fast structured runs")
    parser.add_argument("--dense-steps", type=int, default=20,
                        help="training steps of the runs that build W or κ (identity, materialized)")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--extra", default="", help="config overrides for every run, space-separated")
    parser.add_argument("--nvml-every-step", action="store_true",
                        help="ask NVML for a GPU in every optimizer step, as before rpn_exp.run.gpu_probe")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # child process: one configuration, result as JSON on the last line
        dense = args.one.startswith("identity") or args.one.endswith("materialized")
        steps = args.dense_steps if dense else args.steps
        print(json.dumps(measure(args.one, steps, args.dataset, args.accelerator, args.extra.split(),
                                 probe=not args.nvml_every_step)))
        return
    rows = []
    for run in args.runs.split(","):
        command = [sys.executable, __file__, "--one", run, "--steps", str(args.steps), "--dense-steps",
                   str(args.dense_steps), "--dataset", args.dataset, "--accelerator", args.accelerator,
                   "--extra", args.extra, *(["--nvml-every-step"] if args.nvml_every_step else [])]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{run} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"measured {run}", file=sys.stderr)
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
