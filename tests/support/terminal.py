"""A command in a real terminal, as a user runs it: script(1) gives it a pseudo-terminal
of its own (job control off, the terminal's line discipline on), the test reads what it
prints and types keys — Ctrl-C becomes SIGINT to the terminal's foreground processes,
exactly as at a keyboard.  ``prefix`` runs script(1) elsewhere (e.g. ``nsenter`` into a
container), so the terminal is that system's own."""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.wait import wait_until

CTRL_C = b"\x03"


class Terminal:
    def __init__(
        self,
        command: Sequence[str],
        prefix: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ):
        self.command = shlex.join(command)
        argv = [*prefix, "script", "--quiet", "--flush", "--return", "--echo", "never"]
        # exec: the command itself is the terminal's first process, as when typed at a
        # shell prompt (a non-interactive sh waiting for it would die of the Ctrl-C)
        argv += ["--command", f"exec {self.command}", "/dev/null"]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        self._out = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            with self._lock:
                self._out += chunk

    @property
    def output(self) -> str:
        with self._lock:
            data = bytes(self._out)
        return data.decode(errors="replace").replace("\r\n", "\n")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Until the output matches ``pattern`` (a regular expression); the match."""
        regex = re.compile(pattern, re.M)

        def seen() -> re.Match[str] | None:
            if self.proc.poll() is not None and not regex.search(self.output):
                raise AssertionError(f"exited {self.proc.returncode} first")
            return regex.search(self.output)

        try:
            return wait_until(seen, timeout=timeout, interval=0.05)
        except AssertionError as exc:
            raise AssertionError(
                f"{self.command}: no {pattern!r} within {timeout:g} s ({exc});"
                f" its output:\n{self.output[-4000:]}"
            ) from None

    def ctrl_c(self) -> None:
        self.proc.stdin.write(CTRL_C)
        self.proc.stdin.flush()

    def wait(self, timeout: float) -> int:
        """Its exit status (script(1) returns the command's); fails on a hang."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.command}: still running {timeout:g} s later; its output:\n"
                f"{self.output[-4000:]}"
            ) from None
        self._reader.join(10)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
