"""What a run prints: each message once, no TPU line or advert, and the same count in a sweep's job."""

import collections

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_the_default_run_prints_no_line_twice(tmp_path):
    done = run_cli("debug=limit", "callbacks.progress_bar.refresh_rate=0", f"paths.log_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line.split("] - ", 1)[-1].strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    messages = [line.removeprefix("INFO: ") for line in lines]
    repeated = [m for m, n in collections.Counter(messages).items() if n > 1 and set(m) - set("─━┃│┏┓┗┛┡┩└┘ ")]
    assert not repeated
    text = done.stdout + done.stderr
    assert "TPU available" not in text and "Tip:" not in text and "litlogger" not in text
    assert "GPU available" in text  # Lightning's useful messages are still there
    assert "DeprecationWarning" not in text and "LeafSpec" not in text
