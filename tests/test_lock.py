"""The environment is the lock: every locked package at its locked version, and nothing else.

`make` installs requirements.lock with `uv pip sync` (or requirements-torch.lock with `make torch`);
this test fails when the environment the tests run in drifted from it — a package added by hand,
a dependency added to pyproject.toml without `make lock`, a lock edited without `make`.
"""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# The only installed distribution a lock does not name: weightlab itself, installed editable on top.
# (uv, which installs the lock, lives outside the environment, in .uv/.)
NOT_LOCKED = {"weightlab"}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$")


def locked_versions(text: str) -> dict[str, str]:
    """{canonical name: version} of the pins in a uv/pip-compile lock whose markers hold here."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = PIN.match(line)
        if match is None:
            continue
        marker = match["marker"]
        if marker is None or Marker(marker).evaluate():
            pins[canonicalize_name(match["name"])] = match["version"]
    return pins


def installed_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(canonicalize_name(name), dist.version)
    return versions


def test_lock_parser_reads_pins_hashes_and_markers():
    text = (
        "# made by make lock\n"
        "absl-py==2.5.1 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via keras\n"
        "Jinja2==3.1.6 \\\n    --hash=sha256:cc\n"
        "torch==2.13.0+cpu \\\n    --hash=sha256:dd\n"
        "appnope==1.0.0 ; sys_platform == 'never-such-a-platform' \\\n    --hash=sha256:ee\n"
        "numpy==2.4.6 ; python_full_version >= '3.0' \\\n    --hash=sha256:ff\n"
    )
    assert locked_versions(text) == {"absl-py": "2.5.1", "jinja2": "3.1.6", "torch": "2.13.0+cpu", "numpy": "2.4.6"}


def test_installed_packages_are_exactly_the_lock():
    installed = installed_versions()
    lock = ROOT / ("requirements-torch.lock" if "torch" in installed else "requirements.lock")
    locked = locked_versions(lock.read_text())
    assert len(locked) > 50, f"{lock.name} names only {len(locked)} packages"
    wrong = {name: (installed[name], version) for name, version in locked.items() if installed.get(name) != version}
    missing = sorted(name for name, (have, _) in wrong.items() if have is None)
    differ = {name: pair for name, pair in wrong.items() if pair[0] is not None}
    extra = sorted(set(installed) - set(locked) - NOT_LOCKED)
    assert not (missing or differ or extra), (
        f"the environment is not {lock.name}: missing {missing}, installed≠locked {differ}, not locked {extra}; "
        "run `make` (after `make lock` if pyproject.toml changed)"
    )


@pytest.mark.parametrize(
    ("lock_name", "extras"), [("requirements.lock", ["test"]), ("requirements-torch.lock", ["test", "torch"])]
)
def test_each_lock_satisfies_pyproject(lock_name, extras):
    """A dependency added to (or tightened in) pyproject.toml without `make lock` fails here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(text) for text in project["dependencies"]]
    wanted += [Requirement(text) for extra in extras for text in project["optional-dependencies"][extra]]
    locked = locked_versions((ROOT / lock_name).read_text())
    applicable = [requirement for requirement in wanted if requirement.marker is None or requirement.marker.evaluate()]
    unmet = [
        str(requirement)
        for requirement in applicable
        if canonicalize_name(requirement.name) not in locked
        or not requirement.specifier.contains(locked[canonicalize_name(requirement.name)], prereleases=True)
    ]
    assert not unmet, f"{lock_name} does not satisfy pyproject.toml's {unmet}: run `make lock`"
