"""The bounding boxes morphometry crops vertebrae by are exactly ``ndimage.find_objects``'."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pipeline.morphometry import _label_boxes


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("density", [0.0, 0.002, 0.3])
def test_label_boxes_are_find_objects_boxes(order: str, density: float) -> None:
    rng = np.random.default_rng(3)
    shape = (31, 22, 17)
    values = (rng.random(shape) < density) * rng.integers(1, 28, shape)
    labels = np.asarray(values, dtype=np.uint8, order=order)
    for view in (labels, labels[2:, ::2, 1:-1]):
        top = int(view.max(initial=0))
        assert _label_boxes(view, top) == ndimage.find_objects(view, max_label=top)


def test_label_boxes_keep_missing_labels_as_none() -> None:
    labels = np.zeros((20, 20, 20), dtype=np.uint8, order="F")
    labels[3:5, 6:9, 10:12] = 4
    labels[15, 2, 19] = 2
    boxes = _label_boxes(labels, 4)
    assert boxes == ndimage.find_objects(labels, max_label=4)
    assert boxes[0] is None and boxes[2] is None
    assert boxes[3] == (slice(3, 5), slice(6, 9), slice(10, 12))
