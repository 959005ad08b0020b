"""weightlab as a user gets it from a wheel: built, installed into a fresh environment, run there.

The fresh environment cannot see the source tree: it is made outside it, PYTHONPATH is dropped,
and the commands run from an empty directory. Its third-party packages come from this
environment's site-packages through a plain path entry (no network, seconds not minutes), which
does not run that site-packages' own .pth files — so weightlab's editable install stays invisible.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "weightlab"
pytestmark = pytest.mark.slow


def package_data_files() -> set[str]:
    """Every file under src/weightlab that is not Python source: what the wheel must carry besides code."""
    return {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }


def run_checked(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the tree (the build writes build/ and egg-info beside its input)."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    run_checked([*command, "--wheel-dir", str(dist), str(tree)])
    (built,) = dist.glob("weightlab-*.whl")
    return built


def test_wheel_carries_every_package_data_file(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"weightlab/data/checksums.txt", "weightlab/report/templates/report.html.j2"} <= package_data_files()
    assert package_data_files() <= names, f"missing from the wheel: {sorted(package_data_files() - names)}"
    assert any(name.endswith("entry_points.txt") for name in names)


def test_installed_wheel_runs_and_reports_without_the_source_tree(wheel, tmp_path):
    venv = tmp_path / "venv"
    run_checked([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(run_checked([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "dependencies-from-the-test-environment.pth").write_text("\n".join(sorted(here)) + "\n")
    run_checked(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ]
    )

    work = tmp_path / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["WEIGHTLAB_HOME"] = str(tmp_path / "home")
    probe = "import os, sys, weightlab; print(weightlab.__file__); print([e for e in sys.path if os.path.isdir(os.path.join(e or '.', 'weightlab'))])"
    imported, holders = run_checked([python, "-c", probe], cwd=work, env=env).stdout.splitlines()
    assert Path(imported).is_relative_to(venv), f"weightlab imported from {imported}, not the installed wheel"
    assert holders == repr([str(site)]), f"sys.path entries holding a weightlab package: {holders}"

    weightlab = str(venv / "bin" / "weightlab")
    run_checked([weightlab, "run", "--dataset", "synthetic", "--epochs", "1", "--out", "runs"], cwd=work, env=env)
    (run_dir,) = (work / "runs").iterdir()
    (run_dir / "report.html").unlink()
    printed = run_checked([weightlab, "report", str(run_dir)], cwd=work, env=env).stdout
    assert "report.html" in printed
    assert (run_dir / "report.html").stat().st_size > 10_000
