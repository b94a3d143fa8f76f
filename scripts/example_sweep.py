"""Regenerate the example sweep shown in the README, with the commit that made it and a TensorBoard screenshot.

    python scripts/example_sweep.py                 # the rank sweep on the digits (about a minute on 2 cores)
    python scripts/example_sweep.py --no-screenshot # without Chromium

It runs ``python -m rpn_exp -m hparams_search=rank task_name=rank_digits`` into a fresh sweep folder under
``outputs/rank_digits/``, then copies ``summary.csv``, ``summary.md`` and ``pareto.png`` into
``outputs/examples/rank_digits/`` together with ``provenance.json`` (the command, the git commit and whether the
tree was dirty, package versions, wall time). With Chromium (Debian's ``chromium``) it starts TensorBoard on the
sweep folder, on 127.0.0.1 only, and saves the HPARAMS table as ``hparams.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rpn_exp.run.provenance import provenance  # noqa: E402

COMMAND = ["-m", "hparams_search=rank", "task_name=rank_digits"]
EXAMPLE = ROOT / "outputs" / "examples" / "rank_digits"


def run_sweep() -> tuple[Path, float]:
    """Run the example sweep into a new folder; return the folder and the wall time (s)."""
    folder = ROOT / "outputs" / "rank_digits" / "multiruns" / time.strftime("example_%Y-%m-%d_%H-%M-%S")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rpn_exp", *COMMAND, f"hydra.sweep.dir={folder}"], cwd=ROOT, check=True)
    return folder, time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(folder: Path, out: Path, width: int = 1800, height: int = 820) -> None:
    """TensorBoard's HPARAMS table of ``folder`` as a PNG, through headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install chromium (or pass --no-screenshot)")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(folder), "--host",
                               "127.0.0.1", "--port", str(port), "--reload_interval", "0", "--load_fast", "false"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(60):  # until the hparams plugin serves the sessions
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugins_listing", timeout=5) as answer:
                    if json.loads(answer.read()).get("hparams", {}).get("enabled"):
                        break
            except OSError:
                pass
            time.sleep(1)
        subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={width},{height}", "--virtual-time-budget=20000", f"--screenshot={out}",
                        f"http://127.0.0.1:{port}/#hparams"], check=True, capture_output=True, timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-screenshot", action="store_true", help="skip the TensorBoard screenshot")
    args = parser.parse_args(argv)
    made_by = provenance("cpu")  # before anything is written: the tree the sweep ran from
    folder, wall = run_sweep()
    EXAMPLE.mkdir(parents=True, exist_ok=True)
    for name in ("summary.csv", "summary.md", "pareto.png"):
        shutil.copy2(folder / name, EXAMPLE / name)
    made = {"command": "python -m rpn_exp " + " ".join(COMMAND), "sweep_folder": str(folder.relative_to(ROOT)),
            "wall_time_s": round(wall, 1), **made_by}
    (EXAMPLE / "provenance.json").write_text(json.dumps(made, indent=2) + "\n")
    if not args.no_screenshot:
        screenshot(folder, EXAMPLE / "hparams.png")
    print(f"wrote {EXAMPLE}: summary, pareto.png{'' if args.no_screenshot else ', hparams.png'}, provenance.json "
          f"(commit {made['git']['commit']}, dirty={made['git']['dirty']}, {wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
