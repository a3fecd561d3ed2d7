"""EPICS's own C++ client (pvxs) as a benchmark client: built here, driven through a pipe.

`build()` compiles pvxs_batch.cpp (beside this module) with the system C++ compiler against
the headers and libraries that the installed `pvxslibs` and `epicscorelibs` wheels carry,
into a cache folder outside the checkout (``$EPICS_PVA_BENCH_CACHE``, else
``$XDG_CACHE_HOME/epics-pva-bench`` or ``~/.cache/epics-pva-bench``, else the temp folder),
once per source, compiler and wheel set. The wheels are built with the old C++ ABI, hence
``-D_GLIBCXX_USE_CXX11_ABI=0``. `BuildSkipped` says why it cannot be built: no compiler, no
headers, or the first error line of the compiler.

`PvxsBatch` runs the program in its step mode: one batch (get, or put) per call, every
operation in flight at once, timed by the program itself; the pipe is not in the figure.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("pvxs_batch.cpp")
"""The C++ client's source, committed beside this module."""

BUILD_TIMEOUT = 300.0
"""Seconds allowed for one compilation."""


class BuildSkipped(RuntimeError):
    """The C++ client cannot be built or started here; the message says why, in one line."""


@dataclass(frozen=True)
class Toolchain:
    """A C++ compiler and the folders of the two wheels (each holding include/ and lib/)."""

    compiler: str
    pvxs: Path
    core: Path

    def command(self, source: Path, output: Path) -> list[str]:
        """The compiler's command line for `source` into `output`."""
        pvxs_lib, core_lib = self.pvxs / "lib", self.core / "lib"
        return [
            self.compiler, "-O2", "-std=c++11", "-D_GLIBCXX_USE_CXX11_ABI=0",
            f"-I{self.pvxs / 'include'}", f"-I{self.core / 'include'}",
            str(source), "-o", str(output),
            f"-L{pvxs_lib}", f"-L{core_lib}", "-lpvxs", "-lCom", "-pthread",
            f"-Wl,-rpath,{pvxs_lib}", f"-Wl,-rpath,{core_lib}",
        ]

    def version(self) -> str:
        """The compiler's first line of --version (e.g. "g++ (Debian 12.2.0-14) 12.2.0")."""
        try:
            out = subprocess.run([self.compiler, "--version"], capture_output=True, text=True,
                                 timeout=30, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return "?"
        return out.splitlines()[0].strip() if out.strip() else "?"


def _package_folder(name: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def find_toolchain(compiler: str | None = None) -> Toolchain:
    """The compiler (`compiler`, else $CXX, else g++) and the wheels' folders; BuildSkipped if
    either is missing."""
    name = compiler or os.environ.get("CXX") or "g++"
    found = shutil.which(name)
    if found is None:
        raise BuildSkipped(f"no C++ compiler ({name} not found)")
    folders = {}
    for package, header, library in (("pvxslibs", "pvxs/client.h", "libpvxs.so"),
                                     ("epicscorelibs", "epicsThread.h", "libCom.so")):
        folder = _package_folder(package)
        if folder is None:
            raise BuildSkipped(f"no {package} package: its headers are missing")
        for needed in (folder / "include" / header, folder / "lib" / library):
            if not needed.exists():
                raise BuildSkipped(f"no {package} headers or library: {needed.name} missing")
        folders[package] = folder
    return Toolchain(found, folders["pvxslibs"], folders["epicscorelibs"])


def cache_dir() -> Path:
    """Where built programs are kept (created if needed): never inside the checkout."""
    chosen = os.environ.get("EPICS_PVA_BENCH_CACHE")
    candidates = [Path(chosen)] if chosen else []
    xdg = os.environ.get("XDG_CACHE_HOME")
    candidates.append(Path(xdg) / "epics-pva-bench" if xdg else Path.home() / ".cache" / "epics-pva-bench")
    candidates.append(Path(tempfile.gettempdir()) / f"epics-pva-bench-{os.getuid()}")
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    raise BuildSkipped("no writable cache folder for the C++ client")


_ERROR = re.compile(r"\berror:|cannot find|undefined reference|No such file")


def first_error_line(output: str) -> str:
    """The compiler's (or linker's) first line stating an error in `output`, else its first line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if _ERROR.search(line):
            return line
    return lines[0] if lines else "no output"


def build(source: Path = SOURCE, toolchain: Toolchain | None = None, cache: Path | None = None) -> Path:
    """The built program for `source`, compiled now unless the cache has it; BuildSkipped if not.

    The cache key covers the source, the compiler's version, the command line (so the
    wheels' folders) and the wheels' versions: a new wheel or a new source builds anew. Parallel builds are safe: each
    compiles to its own name and the last rename wins.
    """
    toolchain = toolchain or find_toolchain()
    cache = cache or cache_dir()
    key = hashlib.sha256()
    key.update(Path(source).read_bytes())
    key.update(toolchain.version().encode())
    for package in ("pvxslibs", "epicscorelibs"):  # a wheel upgraded in place builds anew
        try:
            key.update(f"{package} {importlib.metadata.version(package)}".encode())
        except importlib.metadata.PackageNotFoundError:
            pass
    key.update("\0".join(toolchain.command(Path("SRC"), Path("OUT"))).encode())
    output = cache / f"{Path(source).stem}-{key.hexdigest()[:16]}"
    if output.is_file() and os.access(output, os.X_OK):
        return output
    fd, partial_name = tempfile.mkstemp(prefix=f".{output.name}-", dir=cache)
    os.close(fd)
    partial = Path(partial_name)
    try:
        try:
            done = subprocess.run(toolchain.command(Path(source), partial), capture_output=True,
                                  text=True, timeout=BUILD_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise BuildSkipped(f"build timed out after {BUILD_TIMEOUT:g} s") from None
        except OSError as exc:
            raise BuildSkipped(f"no C++ compiler ({exc})") from None
        if done.returncode != 0:
            raise BuildSkipped(f"build failed: {first_error_line(done.stderr + done.stdout)}")
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return output


def put_values(round_: int, n: int) -> list[float]:
    """The values a batch put of round `round_` gives PVs 0..n-1 (pvxs_batch.cpp's put_value):
    a new value every round, a different one for neighbouring PVs."""
    return [float(round_ % 50) + 0.5 + (i % 10) / 10.0 for i in range(n)]


def client_environment(conf: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its EPICS_* settings, plus `conf` (EPICS_PVA_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}
    env.update(conf)
    return env


class PvxsBatch:
    """pvxs_batch in step mode serving `names`: get(n) and put(n, round) return seconds.

    Raises BuildSkipped if the program does not start (its first line of error output), and
    RuntimeError if a batch reports errors. A context manager; close() ends the process.
    """

    def __init__(self, program: Path, names: Sequence[str], conf: Mapping[str, str],
                 timeout: float = 10.0) -> None:
        self.names = list(names)
        self.timeout = timeout
        self._errors = tempfile.TemporaryFile("w+")  # a file, not a pipe: never blocks the program
        self._process = subprocess.Popen(
            [str(program), "--step", "--timeout", f"{timeout:g}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors, text=True,
            env=client_environment(conf))
        assert self._process.stdin is not None
        try:
            self._process.stdin.write("".join(f"{name}\n" for name in self.names) + "\n")
            self._process.stdin.flush()
            ready = self._reply()
        except (OSError, RuntimeError, ValueError) as exc:
            error = self._stderr_after_exit()
            self.close()
            raise BuildSkipped(f"pvxs_batch did not start: {first_error_line(error) if error else exc}") from None
        if ready != {"ready": True, "n": len(self.names)}:
            self.close()
            raise BuildSkipped(f"pvxs_batch did not start: unexpected first line {ready!r}")

    def _stderr_after_exit(self) -> str:
        try:
            self._process.wait(5.0)
        except subprocess.TimeoutExpired:
            pass
        self._errors.seek(0)
        return self._errors.read()

    def _reply(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"pvxs_batch exited (code {self._process.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _batch(self, command: str) -> float:
        assert self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        reply = self._reply()
        if reply.get("bad") or reply.get("errors"):
            raise RuntimeError(f"pvxs_batch {command!r}: {reply.get('errors', 'bad command')} "
                               f"failed ({reply.get('error', '')})")
        return float(reply["ms"]) / 1e3

    def get(self, n: int) -> float:
        """Seconds for a batch get of the first `n` names, as the program measured it."""
        return self._batch(f"get {n}")

    def put(self, n: int, round_: int) -> float:
        """Seconds for a batch put of round `round_`'s values (put_values) to the first `n` names."""
        return self._batch(f"put {n} {round_}")

    def close(self) -> None:
        """End the program: quit on its stdin, then SIGKILL if it lingers."""
        process = self._process
        if process.poll() is None:
            try:
                assert process.stdin is not None
                process.stdin.write("quit\n")
                process.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                process.wait(5.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5.0)
        for pipe in (process.stdin, process.stdout, self._errors):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    def __enter__(self) -> PvxsBatch:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
