import os

# Tests run in one process on one backend; a test that needs another starts a subprocess.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty WEIGHTLAB_HOME: no cached datasets."""
    path = tmp_path / "home"
    monkeypatch.setenv("WEIGHTLAB_HOME", str(path))
    return path


def real_mnist_cached() -> bool:
    from weightlab import data

    return data.cache_path("mnist").is_file()
