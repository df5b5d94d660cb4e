"""SIGINT/SIGTERM during ``fit``: finish the step, checkpoint, stop with a message."""

from __future__ import annotations

import os
import signal
import threading


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived during ``fit``; a checkpoint was written if a directory was given."""


class SignalFlag:
    """Turn SIGINT/SIGTERM into a flag checked between steps (main thread only). A second
    signal stops at once, without writing a checkpoint.

    A signal the process was told to ignore when ``fit`` began (``SIG_IGN``: a background job
    of a non-interactive shell ignores SIGINT, ``nohup`` SIGHUP) stays ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, directory=None):
        self.raised = None
        self.directory = directory
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._old[sig] = signal.signal(sig, self._handler)

    def _handler(self, signum, frame):
        name = signal.Signals(signum).name
        if self.raised is None:
            self.raised = name
            return
        self.restore()
        raise TrainingInterrupted(f"second {name} received: stopped at once, without a new checkpoint; "
                                  f"the newest checkpoint in {os.fspath(self.directory)!r} is intact. "
                                  "Resume with the same command plus --resume.")

    def restore(self):
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._old = {}


def interrupt_message(signame, state, epochs, steps, path) -> str:
    """What an interrupted ``fit`` tells the user: where it stopped and how to resume."""
    where = (f"in epoch {state.epoch + 1}/{epochs} after step {state.step}/{steps}" if state.step
             else f"after epoch {state.epoch}/{epochs}")
    directory = os.path.dirname(path)
    return (f"{signame} received: training stopped {where}; checkpoint written to {path}. "
            f"To resume, run the same command with --resume (Python: fit(..., "
            f"checkpoint_dir={directory!r}, resume=True)).")
