"""The built wheel carries its configs: installed into a clean venv it runs from any directory."""

import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_runs_elsewhere(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True, timeout=300)
    (wheel,) = list((tmp_path / "dist").glob("rpn_exp-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # the heavy dependencies come from this environment; the package itself only from the wheel
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    deps = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if "site-packages" in p]
    (purelib / "deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([str(python), "-m", "rpn_exp", "dry_run=true", "reconciliation=hm"], cwd=elsewhere,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rpn_exp [dry_run]" in done.stdout
    located = subprocess.run([str(python), "-c", "import rpn_exp.config.location as c; print(c.config_dir())"],
                             cwd=elsewhere, capture_output=True, text=True, check=True).stdout.strip()
    assert located.startswith(str(purelib)) and Path(located, "config.yaml").is_file()
    assert list((elsewhere / "outputs").rglob("result.json"))
