"""Colour preservation: YIQ round trip, luminance-only transfer parts, colour matching."""
from __future__ import annotations

import torch

from cnnkit.style.color import combine_luminance, luminance_image, match_color, rgb_to_yiq, yiq_to_rgb


def _img(seed, h=8, w=8):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_yiq_round_trip_and_grey_has_no_chroma():
    img = _img(0)
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(img)), img, atol=1e-6, rtol=0)
    grey = torch.full((1, 3, 2, 2), 0.4)
    yiq = rgb_to_yiq(grey)
    torch.testing.assert_close(yiq[:, 0], torch.full((1, 2, 2), 0.4))
    assert yiq[:, 1:].abs().max() < 1e-6


def test_luminance_image_matches_reference_statistics():
    img, ref = _img(1) * 0.3, _img(2)
    y = luminance_image(img, like=ref)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    ref_y = rgb_to_yiq(ref)[:, 0]
    assert abs(float(y[:, 0].mean() - ref_y.mean())) < 0.02


def test_combine_keeps_chroma_of_colour_source():
    colour, luma = _img(3) * 0.5 + 0.25, luminance_image(_img(4) * 0.5 + 0.25)
    out = combine_luminance(luma, colour)
    torch.testing.assert_close(rgb_to_yiq(out)[:, 1:], rgb_to_yiq(colour)[:, 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(rgb_to_yiq(out)[:, 0], luma[:, 0], atol=1e-5, rtol=0)


def test_match_color_gives_target_mean_and_covariance():
    source = _img(5, 32, 32) * torch.tensor([0.2, 0.5, 0.3]).view(1, 3, 1, 1) + 0.1
    target = _img(6, 16, 16) * 0.3 + 0.35
    out = match_color(source, target)
    o, t = out.reshape(3, -1).double(), target.reshape(3, -1).double()
    torch.testing.assert_close(o.mean(1), t.mean(1), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cov(o), torch.cov(t), atol=1e-4, rtol=0)
