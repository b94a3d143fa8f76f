"""Many ``python -m rpn_exp ...`` command lines, each in a process of its own, without paying the imports each time.

``run_commands([(args, folder), ...])`` starts one Python that imports what a command imports (torch, Lightning,
Hydra, the package) and then forks one child per command: the child is a fresh process (its own state, its own
exit status, its own stdout and stderr) that runs ``rpn_exp.__main__.cli()`` with ``sys.argv`` set to the command,
in ``folder``, exactly as ``python -m rpn_exp ARGS`` would after its imports. The children run ``workers`` at a
time. Used by the tests that run every command of the README (each one mostly importing, when run from scratch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_commands(commands: list[tuple[list[str], Path]], workers: int = 2,
                 env: dict | None = None) -> list[subprocess.CompletedProcess]:
    """Each ``python -m rpn_exp ARGS`` of ``commands`` (args, working folder): their completed processes, in order."""
    jobs = [{"args": list(args), "cwd": str(cwd)} for args, cwd in commands]
    done = subprocess.run([sys.executable, "-m", "tests.forked", str(workers)], input=json.dumps(jobs),
                          capture_output=True, text=True, cwd=ROOT, timeout=1800,
                          env={**(env or os.environ), "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise RuntimeError(f"the command runner failed ({done.returncode}): {done.stderr[-3000:]}")
    results = json.loads(done.stdout.splitlines()[-1])
    return [subprocess.CompletedProcess(["python", "-m", "rpn_exp", *job["args"]], r["returncode"], r["stdout"],
                                        r["stderr"]) for job, r in zip(jobs, results)]


def _child(args: list[str], cwd: str, out: Path, err: Path) -> None:
    """In the forked child: ``python -m rpn_exp ARGS`` in ``cwd``, stdout and stderr to files; never returns."""
    code = 1
    try:
        os.chdir(cwd)
        for fd, path in ((1, out), (2, err)):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        sys.argv = [str(ROOT / "rpn_exp" / "__main__.py"), *args]
        from rpn_exp.__main__ import cli

        cli()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # what the interpreter would print before exiting with 1
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve(workers: int) -> None:
    import tempfile

    import hydra  # noqa: F401  (what every command imports, once, before the forks)
    import lightning  # noqa: F401
    import torch  # noqa: F401

    import rpn_exp.__main__  # noqa: F401
    import rpn_exp.run.task  # noqa: F401

    jobs = json.loads(sys.stdin.read())
    results: list[dict | None] = [None] * len(jobs)
    running: dict[int, tuple[int, Path, Path]] = {}
    folder = Path(tempfile.mkdtemp(prefix="rpn_exp-forked-"))
    queue = list(enumerate(jobs))
    while queue or running:
        while queue and len(running) < workers:
            index, job = queue.pop(0)
            out, err = folder / f"{index}.out", folder / f"{index}.err"
            pid = os.fork()
            if pid == 0:
                _child(job["args"], job["cwd"], out, err)
            running[pid] = (index, out, err)
        pid, status = os.wait()
        index, out, err = running.pop(pid)
        results[index] = {"returncode": os.waitstatus_to_exitcode(status), "stdout": out.read_text(errors="replace"),
                          "stderr": err.read_text(errors="replace")}
    print(json.dumps(results))


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
