"""The digits views, their split and the mini-batch iterator (issue 4)."""

from __future__ import annotations

import pytest
import torch

from ravine.lab.train import models
from ravine.lab.train.data import LEVELS, batches, density, digits


def test_dense_split_shapes_and_disjointness():
    d = digits("dense")
    assert (len(d.train), len(d.val), len(d.test)) == (1078, 359, 360)
    assert d.n_features == 64 and d.train.x.dtype == torch.float32
    assert float(d.train.x.min()) >= 0.0 and float(d.train.x.max()) <= 1.0
    rows = {tuple(r.tolist()) for r in torch.cat([d.train.x, d.val.x, d.test.x])}
    assert len(rows) > 1700  # the three parts are one permutation of the 1797 images
    assert torch.equal(digits("dense").train.x, d.train.x)  # the split is seeded
    assert not torch.equal(digits("dense", split_seed=1).train.y, d.train.y)


def test_sparse_one_hot_is_sparse_and_rarely_on():
    s, d = digits("sparse"), digits("dense")
    assert s.n_features == 64 * LEVELS == 1088
    assert torch.equal(s.train.x.sum(1), torch.full((len(s.train),), 64.0))  # one level a pixel
    assert density(s.train.x) == pytest.approx(1 / LEVELS)
    on = (s.train.x != 0).float().mean(0)
    assert float((on < 0.05).float().mean()) > 0.7  # most features are rarely on
    assert torch.equal(s.train.y, d.train.y)  # same split as the dense view
    levels = s.train.x.reshape(-1, 64, LEVELS).argmax(-1).float() / (LEVELS - 1)
    assert torch.allclose(levels, d.train.x)


def test_image_view_and_models_shapes():
    img = digits("image")
    assert img.train.x.shape[1:] == (1, 8, 8)
    x = img.train.x[:5]
    assert models.cnn()(x).shape == (5, 10)
    assert models.mlp(dropout=0.5)(x).shape == (5, 10)
    assert models.logreg(64)(x).shape == (5, 10)
    with torch.no_grad():
        out = models.autoencoder()(x)
    assert out.shape == (5, 64) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_batches_cover_the_split_and_depend_only_on_seed_and_epoch():
    split = digits("dense").val
    seen = torch.cat([y for _, y in batches(split, 32, seed=3, epoch=1)])
    assert sorted(seen.tolist()) == sorted(split.y.tolist())
    again = torch.cat([y for _, y in batches(split, 32, seed=3, epoch=1)])
    other = torch.cat([y for _, y in batches(split, 32, seed=3, epoch=2)])
    assert torch.equal(seen, again) and not torch.equal(seen, other)
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(split, 0, seed=0, epoch=0))
    with pytest.raises(ValueError, match="kind"):
        digits("bag-of-words")
