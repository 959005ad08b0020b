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


def adam_kernel_ready() -> bool:
    """Whether the fused Adam kernel is in use here. It must be, unless this machine's own check refused it (its XLA
    rounds Keras's Adam otherwise): then Keras's update runs, the same weights, and the tests that need the kernel
    skip, saying so. Any other reason — not built, not loadable — fails."""
    from weightlab.kernels import adam

    readiness = adam.readiness()
    assert readiness.ready or adam.REFUSED in readiness.reason, f"the Adam kernel is not in use: {readiness.reason}"
    return readiness.ready
