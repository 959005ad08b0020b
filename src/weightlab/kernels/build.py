"""Compiling a kernel's C++ source once per machine and jaxlib, and loading it.

The library is cached in ``$WEIGHTLAB_HOME/kernels``, named by a digest of its source, the
compiler's flags, jaxlib's version (whose FFI headers it is built against) and the machine's
architecture, beside a file holding the library's SHA-256: a library is loaded only when it
matches. It is compiled into a scratch directory, loaded there, and only
then renamed into place, so no process ever finds a half-written or unloadable library under the
final name; one that stops loading later (another compiler's, another architecture's) is built
again, once. Anything that goes wrong — no compiler, an unwritable cache — is `KernelUnavailable`,
and weightlab then runs Keras's code. `python -m weightlab.kernels.build` compiles every kernel
ahead (``make`` does).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from weightlab.fileio import atomic_write

SOURCES = Path(__file__).parent
# -ffp-contract=off: the compiler fuses no multiply-add the source does not write (results stay
# bit for bit those the source's std::fma calls define); -fno-math-errno lets sqrt vectorise.
FLAGS = ("-std=c++20", "-O3", "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-shared", "-w")


class KernelUnavailable(Exception):
    """A kernel that cannot be built or loaded here; the message says why (the fused path then runs Keras's code)."""


def library(name: str, symbol: str) -> tuple[ctypes.CDLL, Path]:
    """The kernel ``name`` (``<name>.cc`` beside this module) loaded, with ``symbol`` in it, and its path.

    Compiled first where the cache lacks an intact copy; a cached copy that will not load is
    compiled again, once.
    """
    path = compiled(name)
    try:
        return _loaded(path, symbol), path
    except KernelUnavailable:
        _remove(path)
        path = compiled(name)
        return _loaded(path, symbol), path


def verdict(library_path: Path, check: Callable[[], bool]) -> bool:
    """``check()`` of the library at ``library_path``, remembered beside it for this CPU, these versions and XLA's flags.

    What a kernel is checked against (the code XLA compiles from Keras) changes with the CPU's
    features, jax's, jaxlib's and Keras's versions and ``XLA_FLAGS``; any change is a new check.
    A verdict that cannot be written is still returned (and the check runs again next time).
    """
    import jax
    import jaxlib
    import keras

    facts = [_sha256(library_path), jax.__version__, jaxlib.__version__, keras.__version__, _cpu()]
    facts.append(os.environ.get("XLA_FLAGS", ""))
    key = hashlib.sha256("\0".join(facts).encode()).hexdigest()[:16]
    remembered = library_path.with_name(f"{library_path.stem}.agrees-{key}")
    try:
        text = remembered.read_text()
        if text in ("true", "false"):
            return text == "true"
    except OSError:
        pass
    agrees = check()
    with contextlib.suppress(OSError), atomic_write(remembered) as handle:  # unremembered: checked again next time
        handle.write("true" if agrees else "false")
    return agrees


def compiled(name: str) -> Path:
    """The path of kernel ``name``'s compiled library, compiling it if the cache holds no intact copy."""
    import jax
    import jaxlib

    source = SOURCES / f"{name}.cc"
    key = hashlib.sha256(
        "\0".join([source.read_text(), *FLAGS, jaxlib.__version__, platform.machine()]).encode()
    ).hexdigest()[:16]
    target = _cache() / f"{name}-{key}.so"
    if _intact(target):
        return target
    compiler = (
        shlex.split(os.environ.get("CXX", ""))
        or [found for found in (shutil.which(c) for c in ("c++", "g++", "clang++")) if found][:1]
    )
    if not compiler:
        raise KernelUnavailable("no C++ compiler on PATH (c++, g++ or clang++; or set CXX)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            built = Path(scratch) / target.name
            _compile([*compiler, *FLAGS, "-I", jax.ffi.include_dir(), str(source), "-o", str(built)], source)
            _loaded(built)  # raises if what the compiler wrote is not a library this process can load
            built.chmod(0o755)
            os.replace(built, target)  # the library first: a digest without its library is never read
        with atomic_write(target.with_suffix(".sha256")) as handle:
            handle.write(_sha256(target))
    except OSError as error:
        raise KernelUnavailable(f"could not build {name} in {target.parent}: {error.strerror or error}") from error
    return target


def _compile(command: list[str], source: Path) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise KernelUnavailable(f"{command[0]} could not run: {error}") from error
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise KernelUnavailable(f"{command[0]} could not compile {source.name}: {last}")


def _loaded(path: Path, symbol: str | None = None) -> ctypes.CDLL:
    """The library at ``path``, loaded, with ``symbol`` in it where one is named."""
    try:
        loaded = ctypes.CDLL(str(path))
        if symbol is not None:
            getattr(loaded, symbol)
    except (OSError, AttributeError) as error:
        raise KernelUnavailable(f"could not load {path.name}: {error}") from error
    return loaded


def _cpu() -> str:
    """The CPU's model and features, as the kernel's results may depend on them (Linux; elsewhere the architecture)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    wanted = ("model name", "flags", "Features", "CPU part")
    return "\n".join(dict.fromkeys(line for line in lines if line.split(":")[0].strip() in wanted))


def _cache() -> Path:
    from weightlab.data import weightlab_home

    return weightlab_home() / "kernels"


def _intact(library_path: Path) -> bool:
    """Whether ``library_path`` exists and matches the SHA-256 written beside it when it was built."""
    try:
        return library_path.with_suffix(".sha256").read_text().strip() == _sha256(library_path)
    except OSError:
        return False


def _remove(library_path: Path) -> None:
    for path in (library_path, library_path.with_suffix(".sha256")):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    """Compile every kernel into the cache and say so; one that cannot be built is said too, not an error (weightlab
    then runs Keras's code: the same results, slower)."""
    for source in sorted(SOURCES.glob("*.cc")):
        try:
            print(f"kernel {source.stem}: {compiled(source.stem)}")
        except KernelUnavailable as error:
            print(
                f"kernel {source.stem} not built ({error}); weightlab runs Keras's code instead: same results, slower"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
