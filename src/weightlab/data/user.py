"""A dataset of the user's own: an ``.npz`` with x_train, y_train, x_test, y_test, checked before use.

The archive is read with ``allow_pickle=False``: an object array (which only a pickle can
hold) is refused, never unpickled. Examples are images of any size and channel count —
(n, H, W) or (n, H, W, C) — or flat feature vectors (n, F), of any real numeric dtype (uint8
images are scaled by 1/255 as the tutorial scales MNIST; other dtypes are used as they are).
Labels are integers from 0; the number of classes is the largest training label plus one.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from weightlab.data.formats import ARRAY_NAMES
from weightlab.errors import DataError

MAX_CLASSES = 100_000  # a label beyond this is an identifier, not a class number


def file_sha256(path: Path) -> str:
    """The SHA-256 of the user's file, as every digest weightlab records is taken (`store.format.file_digest`)."""
    from weightlab.store.format import file_digest

    return file_digest(path)


def read(path: str | Path) -> dict[str, np.ndarray]:
    """The four arrays of ``path``, checked by `check`; DataError (one line) for anything unusable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--dataset {path}: no such file; pass an .npz holding {', '.join(ARRAY_NAMES)}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(f"--dataset {path} holds one array, not an .npz archive of {', '.join(ARRAY_NAMES)}")
            missing = [name for name in ARRAY_NAMES if name not in archive.files]
            if missing:
                raise DataError(
                    f"--dataset {path} lacks array(s) {', '.join(missing)}; it must hold {', '.join(ARRAY_NAMES)}"
                )
            arrays = {name: archive[name] for name in ARRAY_NAMES}
    except DataError:
        raise
    except ValueError as error:
        if "pickle" in str(error):
            raise DataError(
                f"--dataset {path} holds an object array, which only a pickle can load and weightlab never unpickles; "
                "save numeric arrays"
            ) from error
        raise DataError(
            f"--dataset {path} cannot be read as an .npz archive ({error}); save it with numpy.savez"
        ) from error
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as error:
        raise DataError(
            f"--dataset {path} cannot be read as an .npz archive ({error}); save it with numpy.savez"
        ) from error
    check(arrays, f"--dataset {path}")
    return arrays


def check(arrays: dict[str, np.ndarray], origin: str) -> None:
    """Raise DataError naming the first fault: dtypes, shapes, lengths, labels, non-finite values."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype.kind not in "uif":
            raise DataError(f"{origin}: x_{split} has dtype {x.dtype}; examples must be real numbers (uint8 or float)")
        if x.ndim not in (2, 3, 4):
            raise DataError(
                f"{origin}: x_{split} has shape {x.shape}; pass (n, features), (n, H, W) or (n, H, W, channels)"
            )
        if len(x) == 0:
            raise DataError(f"{origin}: x_{split} holds no examples")
        if 0 in x.shape[1:]:
            raise DataError(f"{origin}: x_{split} has shape {x.shape}, an empty example; pass examples with values")
        if y.dtype.kind not in "ui":
            raise DataError(f"{origin}: y_{split} has dtype {y.dtype}; labels must be integers (class 0, 1, 2, …)")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(
                f"{origin}: {len(x)} {split} examples but y_{split} has shape {y.shape}; pass one label each"
            )
        if y.min() < 0:
            raise DataError(f"{origin}: y_{split} holds label {int(y.min())}; labels must be 0 or more")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise DataError(f"{origin}: x_{split} holds {bad} NaN or infinite value(s); replace them with numbers")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(
            f"{origin}: training examples have shape {arrays['x_train'].shape[1:]} and test examples "
            f"{arrays['x_test'].shape[1:]}; they must be the same"
        )
    classes = int(arrays["y_train"].max()) + 1
    if classes > MAX_CLASSES:
        raise DataError(
            f"{origin}: y_train holds label {classes - 1}; labels must be class numbers 0 to at most {MAX_CLASSES - 1}"
        )
    if classes < 2:
        raise DataError(f"{origin}: y_train holds one class only; a classifier needs labels of at least two classes")
    if int(arrays["y_test"].max()) >= classes:
        raise DataError(
            f"{origin}: y_test holds label {int(arrays['y_test'].max())}, which no training label reaches (0–{classes - 1})"
        )
