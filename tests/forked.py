"""``python -m rpn_exp ...`` command lines, each in a process of its own, without paying the imports each time.

A server process imports what a command imports (torch, Lightning, Hydra, the package) once, then forks one child
per command: the child is a fresh process (its own state, exit status, stdout and stderr) that runs
``rpn_exp.__main__.cli()`` with ``sys.argv`` set to the command, in the command's folder, exactly as
``python -m rpn_exp ARGS`` does after its imports.

* :func:`run_commands` runs a batch of commands ``workers`` at a time (the README's commands, the bad inputs);
* :func:`run_command` runs one, through a server kept for the whole test session (``tests.conftest.run_cli``).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _server(workers: int | None) -> subprocess.Popen:
    """A server: with ``workers``, one batch read from stdin; without, one command per line until stdin closes."""
    mode = [str(workers)] if workers else []
    return subprocess.Popen([sys.executable, "-m", "tests.forked", *mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def _completed(args: list[str], result: dict) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["python", "-m", "rpn_exp", *args], result["returncode"], result["stdout"],
                                       result["stderr"])


def run_commands(commands: list[tuple[list[str], Path]], workers: int = 2) -> list[subprocess.CompletedProcess]:
    """Each ``python -m rpn_exp ARGS`` of ``commands`` (args, working folder): their completed processes, in order."""
    jobs = [{"args": list(args), "cwd": str(cwd)} for args, cwd in commands]
    server = _server(workers)
    out, err = server.communicate(json.dumps(jobs), timeout=1800)
    if server.returncode != 0:
        raise RuntimeError(f"the command runner failed ({server.returncode}): {err[-3000:]}")
    return [_completed(job["args"], r) for job, r in zip(jobs, json.loads(out.splitlines()[-1]))]


_session: subprocess.Popen | None = None
_session_env: dict = {}


def _read_at_start(env: dict) -> dict:
    """The variables a Python process reads when it starts (a forked child cannot take new values of these)."""
    return {k: v for k, v in env.items() if k.startswith(("PYTHON", "OMP_", "MKL_", "CUDA_", "TORCH"))}


def run_command(args: list[str], cwd: Path | str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m rpn_exp ARGS`` in ``cwd`` (default: the repository) with this process's environment, run by the
    session's server; started from scratch instead when a variable read at start-up changed since the server
    started (``monkeypatch.setenv("OMP_NUM_THREADS", ...)``)."""
    global _session, _session_env
    if _session is None or _session.poll() is not None:
        _session, _session_env = _server(None), dict(os.environ)
        atexit.register(_session.stdin.close)
    if _read_at_start(dict(os.environ)) != _read_at_start(_session_env):
        return subprocess.run([sys.executable, "-m", "rpn_exp", *args], capture_output=True, text=True,
                              cwd=cwd, timeout=timeout)
    _session.stdin.write(json.dumps({"args": list(args), "cwd": str(cwd or ROOT), "env": dict(os.environ)}) + "\n")
    _session.stdin.flush()
    ready, _, _ = select.select([_session.stdout], [], [], timeout)
    if not ready:
        _session.kill()
        raise subprocess.TimeoutExpired(["python", "-m", "rpn_exp", *args], timeout)
    line = _session.stdout.readline()
    if not line:
        raise RuntimeError(f"the command server ended: {_session.stderr.read()[-3000:]}")
    return _completed(list(args), json.loads(line))


def _child(args: list[str], cwd: str, env: dict | None, out: Path, err: Path) -> None:
    """In the forked child: ``python -m rpn_exp ARGS`` in ``cwd`` (with ``env``, if given), stdout and stderr to
    files; never returns."""
    code = 1
    try:
        os.chdir(cwd)
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        for fd, path in ((0, os.devnull), (1, out), (2, err)):
            handle = os.open(path, os.O_RDONLY if fd == 0 else os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        sys.argv = [str(ROOT / "rpn_exp" / "__main__.py"), *args]
        import rpn_exp.__main__ as entry

        sys.modules["__main__"] = entry  # as under ``python -m rpn_exp`` (Lightning's DDP starts its ranks from it)
        entry.cli()
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


def _start(job: dict, folder: Path, index: int) -> tuple[int, Path, Path]:
    out, err = folder / f"{index}.out", folder / f"{index}.err"
    pid = os.fork()
    if pid == 0:
        _child(job["args"], job["cwd"], job.get("env"), out, err)
    return pid, out, err


def _result(status: int, out: Path, err: Path) -> dict:
    result = {"returncode": os.waitstatus_to_exitcode(status), "stdout": out.read_text(errors="replace"),
              "stderr": err.read_text(errors="replace")}
    out.unlink()
    err.unlink()
    return result


def _serve(workers: int | None) -> None:
    import tempfile

    import hydra  # noqa: F401  (what every command imports, once, before the forks)
    import lightning  # noqa: F401
    import torch  # noqa: F401

    import rpn_exp.__main__  # noqa: F401
    import rpn_exp.run.task  # noqa: F401

    folder = Path(tempfile.mkdtemp(prefix="rpn_exp-forked-"))
    if workers is None:  # one command per line, answered in order
        for index, line in enumerate(sys.stdin):
            pid, out, err = _start(json.loads(line), folder, index)
            _, status = os.waitpid(pid, 0)
            print(json.dumps(_result(status, out, err)), flush=True)
        return
    jobs = json.loads(sys.stdin.read())
    results: list[dict | None] = [None] * len(jobs)
    running: dict[int, tuple[int, Path, Path]] = {}
    queue = list(enumerate(jobs))
    while queue or running:
        while queue and len(running) < workers:
            index, job = queue.pop(0)
            pid, out, err = _start(job, folder, index)
            running[pid] = (index, out, err)
        pid, status = os.wait()
        index, out, err = running.pop(pid)
        results[index] = _result(status, out, err)
    print(json.dumps(results))


if __name__ == "__main__":
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else None)
