"""Run a function in a child Python process, its logs forwarded to the parent's loggers.

Why not `multiprocessing`: inside an Airflow task its `spawn` re-imports the parent's `__main__` (Airflow's
CLI or the task runner) in every child, and `fork` copies a process with live threads and sockets. A child
here is a plain `python -m cart_recovery.subprocess_jobs`: it imports only what the job needs.

Protocol: the parent writes the pickled `(function path, payload)` to the child's stdin (a pipe: secrets in
the payload never reach argv or the environment) and keeps stdin open; the child writes its pickled result to
stdout and one line per log record to stderr (`level<TAB>logger<TAB>message`, newlines escaped). When the
child sees stdin close (the parent died or gave up), `PARENT_GONE` is set: a job should stop taking new work.
Payload and result must be picklable; the result of a job that raised is its error text.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# set in a child when its parent closed stdin: stop taking new work (what is in flight finishes)
PARENT_GONE = threading.Event()
_SEP = "\t"


@dataclass
class ChildJob:
    """A started child: `wait()` for its result."""

    name: str
    proc: subprocess.Popen[bytes]
    _logs: threading.Thread
    _out: list[bytes] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def wait(self, timeout: float | None = None) -> tuple[bool, Any]:
        """(ok, result): ok is False when the child crashed or its function raised (result: the reason)."""
        if self._reader is not None:
            self._reader.join(timeout)
        self.proc.wait(timeout)
        self._logs.join(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        if self.proc.returncode != 0:
            return False, f"{self.name} exited with code {self.proc.returncode}"
        try:
            ok, result = pickle.loads(b"".join(self._out))
        except Exception as exc:  # a child that died without writing its result
            return False, f"{self.name} wrote no result ({type(exc).__name__})"
        return ok, result


def _forward_logs(name: str, stream: Any) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        parts = line.split(_SEP, 2)
        if len(parts) == 3 and parts[0].isdigit():
            level, logger, message = int(parts[0]), parts[1], parts[2].replace("\\n", "\n")
        else:  # not one of ours (an interpreter crash): never dropped
            level, logger, message = logging.ERROR, __name__, line
        logging.getLogger(logger).log(level, "[%s] %s", name, message)


def start(name: str, function: str, payload: Any, env: dict[str, str] | None = None) -> ChildJob:
    """Start `function` ("package.module:name", called with `payload`) in a child process."""
    child_env = dict(os.environ if env is None else env)
    # the child imports what the parent can (Airflow puts plugins/ on sys.path, not on PYTHONPATH)
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "cart_recovery.subprocess_jobs", str(logging.getLogger().getEffectiveLevel())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env,
    )
    if proc.stdin is None or proc.stdout is None or proc.stderr is None:  # pipes were asked for
        raise RuntimeError("no pipes to the child process")
    data = pickle.dumps((function, payload))
    proc.stdin.write(len(data).to_bytes(8, "big") + data)
    proc.stdin.flush()
    logs = threading.Thread(target=_forward_logs, args=(name, proc.stderr), name=f"{name}-logs", daemon=True)
    logs.start()
    job = ChildJob(name, proc, logs)
    out = proc.stdout

    def read() -> None:
        job._out.append(out.read())

    job._reader = threading.Thread(target=read, name=f"{name}-result", daemon=True)
    job._reader.start()
    return job


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", "\\n")
        return f"{record.levelno}{_SEP}{record.name}{_SEP}{text}"


def _watch_stdin(fd: int, gone: threading.Event) -> None:
    # the raw descriptor: a daemon thread blocked in a buffered read aborts the interpreter's shutdown
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass
    gone.set()


def _child_main() -> int:
    level = int(sys.argv[1]) if len(sys.argv) > 1 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter("%(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    stdin = sys.stdin.buffer
    # the result gets fd 1 to itself: whatever else writes to stdout (a stray print) goes to stderr, a log line
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    size = int.from_bytes(stdin.read(8), "big")
    function, payload = pickle.loads(stdin.read(size))
    # this file runs as __main__: the jobs see the event of the module they import
    from cart_recovery import subprocess_jobs

    threading.Thread(target=_watch_stdin, args=(stdin.fileno(), subprocess_jobs.PARENT_GONE), daemon=True).start()
    module, _, attr = function.partition(":")
    try:
        result: tuple[bool, Any] = (True, getattr(importlib.import_module(module), attr)(payload))
    except Exception as exc:
        from cart_recovery.channels import scrub

        logging.getLogger(module).exception("%s failed", function)
        result = (False, f"{type(exc).__name__}: {scrub(str(exc))}"[:1000])  # O5: no address in the reason
    stdout.write(pickle.dumps(result))
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
