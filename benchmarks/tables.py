"""Shared by the benchmark scripts: whole-process measurement and markdown tables written to stdout and results/."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PYTHON = sys.executable
WEIGHTLAB = [PYTHON, "-m", "weightlab.cli"]

# A wrapper that runs a command and reports its own peak memory: RUSAGE_CHILDREN of a fresh
# process is the peak of that one child, not of every process this benchmark has started.
MEASURE = (
    "import resource, subprocess, sys, time, json\n"
    "start = time.perf_counter()\n"
    "result = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "seconds = time.perf_counter() - start\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
    "print(json.dumps({'rc': result.returncode, 'seconds': seconds, 'peak_bytes': peak, 'stdout': result.stdout, 'stderr': result.stderr[-2000:]}))\n"
)


def measure_process(command: list[str], env: dict[str, str] | None = None) -> dict:
    """{'seconds', 'peak_bytes', 'output'} of one whole process; ``output`` is the last JSON document it printed."""
    result = subprocess.run(
        [PYTHON, "-c", MEASURE, *command], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    record = json.loads(result.stdout)
    if record["rc"] != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}\n{record['stderr']}")
    # the plain scripts print Keras epoch lines then one JSON line; weightlab --json prints one JSON document
    stdout = record["stdout"].strip()
    output = json.loads(stdout) if stdout.startswith("{") else json.loads(stdout.splitlines()[-1])
    return {"seconds": record["seconds"], "peak_bytes": record["peak_bytes"], "output": output}


def when_and_where() -> str:
    """Today's date and this machine, as a table's title gives them."""
    return f"{time.strftime('%Y-%m-%d')}, {machine()}"


def machine() -> str:
    """The CPU's model name and core count, as lscpu and os.cpu_count give them."""
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def markdown(title: str, columns: list[str], rows: list[list[str]], notes: list[str] = (), where: str = "") -> str:
    """A markdown table under a title line (date and machine: ``where``, by default today and this one), with notes after it."""
    lines = [f"{title} ({where or when_and_where()})", ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if notes:
        lines += [""] + list(notes)
    return "\n".join(lines) + "\n"


def alternated(names, repeats: int, measure_one) -> dict:
    """{name: [its measurements]}: each of ``names`` measured once per repeat, in turn, so drift hits all alike.
    A measurement that comes back None (a contender that failed) is left out."""
    records: dict = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names:
            print(f"repeat {repeat + 1}/{repeats}: {name}", file=sys.stderr, flush=True)
            record = measure_one(name)
            if record is not None:
                records[name].append(record)
    return records


def publish(name: str, text: str, partial: bool = False) -> None:
    """Print a table and keep it as results/<name>.md, for the README to quote; a ``partial`` one is only printed."""
    if not partial:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.md").write_text(text)
    print(text, flush=True)
