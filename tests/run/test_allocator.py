"""A run keeps the memory it frees for its next step (``rpn_exp.run.allocator``): a tensor allocated and freed step
after step is no longer faulted in afresh from the kernel each time; a user's own glibc settings are left alone."""

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(3) is glibc's")

#: A 64 MiB tensor made and freed 8 times, in a fresh process: the minor page faults of the last 4, whether the
#: thresholds were set.
STEPS = """
import json, resource, sys, torch
from rpn_exp.run.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 << 20).sum()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": sum(faults[4:])}))
"""
PAGES = (64 << 20) // os.sysconf("SC_PAGE_SIZE")  # of one such tensor


def steps(mode: str, **env: str) -> dict:
    result = subprocess.run([sys.executable, "-c", STEPS, mode], env={**os.environ, **env}, capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


def test_with_glibcs_defaults_every_step_faults_its_tensor_in_afresh():
    assert steps("default")["faults"] >= 4 * PAGES * 0.9  # above 32 MiB glibc unmaps it on free, every time


def test_a_run_keeps_the_freed_tensor_for_its_next_step():
    outcome = steps("keep")
    assert outcome["kept"] is True
    assert outcome["faults"] < PAGES / 10  # the same pages, reused


def test_a_users_own_glibc_settings_are_left_alone():
    outcome = steps("keep", GLIBC_TUNABLES="")
    assert outcome["kept"] is False
    assert outcome["faults"] >= 4 * PAGES * 0.9
