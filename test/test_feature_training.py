"""The auxiliary losses models/train_fashion_cnn.py trains the 8-class networks of bench/learning.py
with (their last hidden layer is what the plastic readout learns new classes from)."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models"))
from train_fashion_cnn import augmented, contrastive_loss, quarter_turned  # noqa: E402


def test_contrastive_loss_is_low_where_each_view_meets_its_match():
    torch.manual_seed(0)
    a = torch.randn(32, 64)
    matched = contrastive_loss(a, a + 0.05 * torch.randn(32, 64))
    shuffled = contrastive_loss(a, a[torch.randperm(32)] + 0.05 * torch.randn(32, 64))
    assert matched < 0.5 < 3.0 < shuffled  # log(63) = 4.1 for a view that meets only strangers


def test_augmented_views_are_shifted_images_in_range():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0
    view = augmented(x)
    assert view.shape == x.shape and view.min() >= 0 and view.max() <= 1
    assert not torch.equal(view, x)
    # a shift of at most 3 pixels keeps the square's centre inside every view
    assert (view[:, 0, 13:15, 13:15] > 0.5).all()


def test_quarter_turned_images_turn_back_by_their_label():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    turned, turns = quarter_turned(x)
    assert set(turns.tolist()) == {0, 1, 2, 3}
    assert not torch.equal(turned[turns > 0], x[turns > 0])
    for image, original, k in zip(turned, x, turns):
        assert torch.equal(torch.rot90(image, -int(k), dims=(1, 2)), original)
