"""The small surface every loss shares, which the engine adapters are written against."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from gbfocal import FocalLoss, MulticlassFocalLoss, loss_from_dict
from gbfocal._loss import check_loss

LOSSES = [
    FocalLoss(0.3, 1.5, hessian="clip"),
    MulticlassFocalLoss(None, 2.0),
    MulticlassFocalLoss([0.5, 1.0, 2.0], 0.5, hessian="exact"),
]


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_loss_records_round_trip_through_json(loss):
    assert loss_from_dict(json.loads(json.dumps(loss.to_dict()))) == loss


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ([1, 2], "must be a dict"),
        ({"loss": "focal", "alpha": 0.25, "gamma": 2.0}, "not a gbfocal loss record"),
        ({"loss": "other", "alpha": 0.25, "gamma": 2.0, "hessian": "positive"}, "not a gbfocal loss record"),
        ({"loss": "focal", "alpha": 1.5, "gamma": 2.0, "hessian": "positive"}, "invalid loss: alpha"),
        ({"loss": "multiclass_focal", "alpha": [1, -1], "gamma": 2.0, "hessian": "clamp"}, "invalid loss"),
    ],
)
def test_bad_loss_records_are_refused(record, match):
    with pytest.raises(ValueError, match=match):
        loss_from_dict(record, "the record")


def test_n_outputs_and_prepared():
    assert FocalLoss().n_outputs == 1
    assert MulticlassFocalLoss([1.0, 1.0, 1.0]).n_outputs == 3
    assert MulticlassFocalLoss().n_outputs is None
    rows = FocalLoss().prepared(np.array([0.0, 1.0]), None, n_classes=2)
    assert rows.n_rows == 2
    with pytest.raises(ValueError, match="MulticlassFocalLoss"):
        FocalLoss().prepared(np.array([0.0, 1.0]), None, n_classes=3)


def test_check_loss_takes_every_loss_unless_binary_only():
    for loss in LOSSES:
        assert check_loss(loss) is loss
    with pytest.raises(TypeError, match=r"must be a gbfocal\.FocalLoss, got MulticlassFocalLoss"):
        check_loss(LOSSES[1], binary_only=True)
    with pytest.raises(TypeError, match="got str"):
        check_loss("focal")


def test_threads_sharing_multiclass_prepared_rows_each_get_their_own_results():
    rng = np.random.default_rng(0)
    n, k = 50_000, 4
    loss = MulticlassFocalLoss([1.0, 2.0, 0.5, 1.0], 2.0)
    y = rng.integers(0, k, n)
    w = rng.uniform(0.5, 2.0, n)
    rows = loss.prepared(y, w)
    margins = [rng.normal(size=(n, k)) * (i + 1) for i in range(6)]
    want = [loss.gradient_hessian(y, z, w) for z in margins]
    errors: list[str] = []
    start = threading.Barrier(len(margins))

    def work(i: int) -> None:
        start.wait()
        for _ in range(15):
            g, h = rows.gradient_hessian(loss, margins[i], n_threads=1)
            # the prepared rows may run the Python row formulas (cold-start budget) and the one-off call the
            # kernel: they agree to 1e-13; another thread's buffer would differ by far more
            if not (np.allclose(g, want[i][0], rtol=1e-12, atol=1e-300) and np.allclose(h, want[i][1], rtol=1e-12)):
                errors.append(f"thread {i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(margins))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
