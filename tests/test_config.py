import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightlab.config import RunConfig, resolve_backend
from weightlab.errors import ConfigError


def test_defaults_are_the_tutorials():
    config = RunConfig()
    assert (config.hidden, config.epochs, config.batch_size) == (64, 5, 32)
    assert (config.learning_rate, config.optimizer, config.validation_split) == (1e-3, "adam", 0.1)
    assert config.dataset == "mnist" and config.seed == 0


def test_json_round_trip_and_frozen():
    config = RunConfig(hidden=16, learning_rate=3e-3, backend="tensorflow")
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hidden = 3
    with pytest.raises(ConfigError, match="unknown config field"):
        RunConfig.from_dict({"hiden": 3})


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("epochs", -1, "--epochs"),
        ("hidden", 0, "--hidden"),
        ("batch_size", 0, "--batch-size"),
        ("learning_rate", float("nan"), "--learning-rate"),
        ("learning_rate", -1.0, "--learning-rate"),
        ("optimizer", "adamm", "choose one of"),
        ("dataset", "cifar", "choose one of"),
        ("backend", "theano", "choose one of"),
        ("validation_split", 1.0, "validation_split"),
        ("hidden", True, "--hidden"),
    ],
)
def test_bad_values_name_the_flag_to_fix(field, value, says):
    with pytest.raises(ConfigError, match=says):
        RunConfig(**{field: value})


@given(st.integers(max_value=0))
def test_any_non_positive_epoch_count_is_refused(epochs):
    with pytest.raises(ConfigError):
        RunConfig(epochs=epochs)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_learning_rate_is_accepted_exactly_when_positive_and_finite(rate):
    import math

    if math.isfinite(rate) and rate > 0:
        assert RunConfig(learning_rate=rate).learning_rate == rate
    else:
        with pytest.raises(ConfigError):
            RunConfig(learning_rate=rate)


def test_backend_resolution_order(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert resolve_backend(None) == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert resolve_backend(None) == "tensorflow"
    assert resolve_backend("torch") == "torch"
    assert RunConfig().resolved().backend == "tensorflow"


@settings(max_examples=200, deadline=None)
@given(samples=st.integers(2, 5000), split=st.sampled_from([0.01, 0.1, 0.2, 0.3, 0.33, 0.7, 0.9, 0.99]))
def test_fit_samples_is_where_keras_splits(samples, split):
    """The training split is Keras's own: the first rows it trains on, the rest it validates on."""
    import numpy as np
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    arrays = (np.arange(samples),)
    try:
        (train,), _ = train_validation_split(arrays, validation_split=split)
    except ValueError:  # Keras refuses a split that leaves one side empty
        return
    assert RunConfig(validation_split=split).fit_samples(samples) == len(train)


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=5))
def test_hidden_widths_round_trip_through_their_spelling(widths):
    from weightlab.config import hidden_text, parse_hidden

    hidden = widths[0] if len(widths) == 1 else tuple(widths)
    assert parse_hidden(hidden_text(hidden)) == hidden
    assert RunConfig(hidden=widths).widths == tuple(widths)


@given(st.text(max_size=12))
def test_any_hidden_text_parses_to_widths_or_one_line_error(text):
    from weightlab.config import parse_hidden

    try:
        hidden = parse_hidden(text)
    except ConfigError as error:
        assert "\n" not in str(error) and "128x64" in str(error)
        return
    widths = hidden if isinstance(hidden, tuple) else (hidden,)
    assert all(isinstance(w, int) for w in widths) and len(widths) == text.lower().count("x") + 1
