"""The demo's processes: cancellation (Ctrl-C, checkpoints), process groups, the pipeline runs each in a process
group of its own (and what the pipeline process runs, started as `python -m mlops.demo RESULT`), and the progress lines.

Every process the demo starts runs in a process group of its own: the servers, and the pipeline runs with their
step processes. Ctrl-C reaches the demo alone, which stops the traffic and the servers at once and lets a step
under way finish (so the registry is never left half-written) before no further step starts; a second Ctrl-C
stops the pipeline at once.
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM."""


STOP = threading.Event()  # set by the first Ctrl-C; the demo stops at its next checkpoint


def checkpoint() -> None:
    if STOP.is_set():
        raise Interrupted("interrupted")


def pause(seconds: float) -> None:
    if STOP.wait(seconds):
        raise Interrupted("interrupted")


# --- progress ---------------------------------------------------------------------------------------------

class Progress:
    """Step lines with the elapsed time; while traffic runs, a live count of requests."""

    def __init__(self, steps: int):
        self.start, self.steps, self.step = time.monotonic(), steps, 0
        self.tty = sys.stdout.isatty()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {text}", flush=True)

    def next(self, name: str) -> None:
        checkpoint()
        self.step += 1
        self.say(f"step {self.step}/{self.steps}: {name}")

    def live(self, counts: Callable[[], str], stop: threading.Event) -> threading.Thread:
        """A thread printing `counts()` (the requests so far) every second (in place on a terminal, every 5 s
        otherwise)."""
        def run():
            last = None
            while not stop.wait(1.0 if self.tty else 5.0):
                line = counts()
                if line != last:
                    print(f"\r           {line}" if self.tty else f"           {line}", end="" if self.tty else "\n",
                          flush=True)
                    last = line
            if self.tty and last:
                print(flush=True)
        thread = threading.Thread(target=run, name="demo-progress", daemon=True)
        thread.start()
        return thread


# --- processes --------------------------------------------------------------------------------------------

def stop_group(pid: int, grace: float = 30.0) -> None:
    """SIGTERM to the process group `pid` leads; SIGKILL to what is left after `grace` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_group(pid, grace):
        kill_group(pid)


def wait_group(pid: int, timeout: float) -> bool:
    """True once no process of the group is left (reaping the leader if it is our child)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_group(pid, 10.0)


# --- pipeline runs in a process group of their own --------------------------------------------------------

def _stop_between_steps() -> None:
    """In the pipeline process: SIGTERM lets the step under way finish, then no further step starts."""
    from kfp.local import subprocess_task_handler as handler

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    run_step = handler.run_local_subprocess

    def guarded(*args, **kwargs):
        if stopping.is_set():
            raise KeyboardInterrupt("stopped between steps")
        return run_step(*args, **kwargs)

    handler.run_local_subprocess = guarded


class Pipelines:
    """Runs `func(*args)` (a kfp.local pipeline run) in a process (`python -m mlops.demo`) leading a session
    and process group of its own, with every step process it starts."""

    def __init__(self, home: Path):
        self.home, self.pid = home, None

    def run(self, func, *args):
        result = self.home / "logs" / f"pipeline-{time.time_ns()}.pickle"
        process = subprocess.Popen([sys.executable, "-m", "mlops.demo", str(result)], stdin=subprocess.PIPE,
                                   start_new_session=True)
        self.pid = process.pid
        process.stdin.write(pickle.dumps((func, args)))
        process.stdin.close()
        while process.poll() is None:
            pause(0.2)
        self.pid = None
        if not result.is_file():
            raise DemoError(f"the pipeline process ended ({process.returncode}) without a result")
        status, value = pickle.loads(result.read_bytes())
        result.unlink()
        if status == "error":
            raise DemoError(value)
        return value

    def stop(self, at_once: bool, progress: Progress | None = None) -> None:
        """Stop a run under way: at a step boundary (the group ends when the step under way has), or at once."""
        pid = self.pid
        if pid is None:
            return
        if not at_once:
            if progress:
                progress.say("waiting for the pipeline step under way to finish (Ctrl-C again: stop it at once)")
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if wait_group(pid, 600):
                self.pid = None
                return
        kill_group(pid)
        self.pid = None


# --- the pipeline process ---------------------------------------------------------------------------------

def _pipeline_process(result: str) -> None:
    """The pipeline process: runs the call pickled on stdin, writes ("ok", value) or ("error", message) to
    `result`. Ctrl-C is the demo's to handle; SIGTERM stops it between steps."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stop_between_steps()
    func, args = pickle.load(sys.stdin.buffer)
    try:
        outcome = ("ok", func(*args))
    except BaseException as exc:  # noqa: BLE001 - reported to the demo, which raises it there
        outcome = ("error", f"{type(exc).__name__}: {exc}")
    Path(result).write_bytes(pickle.dumps(outcome))
