"""The optimisation loop with a stand-in encoder: it lowers the cost, repeats bit for bit, honours
its options and refuses bad input with clear errors."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import torch
import pytest
from PIL import Image

from cnnkit.core.errors import CnnkitError, InvalidImageError, OutputPathError, UnknownNameError
from cnnkit.style.optimize import StyleOptions, run, save_image, transfer
from cnnkit.style.quality import content_kept

LAYERS = {"content_layers": "conv2_1", "style_layers": "conv1_1,conv2_1"}


def _photo(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, 0.5 + 0 * xx], axis=2) * 200 + rng.integers(0, 50, (h, w, 3))
    return base.clip(0, 255).astype(np.uint8)


def _opts(**kw) -> StyleOptions:
    return StyleOptions(**{"size": 32, "steps": 8, "style_weight": 10.0, "threads": 1, **LAYERS, **kw})


def test_lowers_the_style_cost_and_keeps_size(tiny_encoder):
    res = run(_photo(0), _photo(1, 40, 40), _opts(steps=15, style_weight=1000.0), encoder=tiny_encoder)
    assert res.image.size == (32, 24)
    assert res.style_loss < 0.2 * res.initial_style_loss
    assert 15 <= res.evaluations <= 17  # one per iteration, plus what the first one's line search adds
    assert set(res.as_dict()) == {"content_loss", "style_loss", "initial_style_loss", "tv_loss", "seconds", "size"}


def _png(res) -> bytes:
    buf = io.BytesIO()
    res.image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("init", ["noise", "content"])
def test_same_seed_same_bytes(tiny_encoder, init):
    a = run(_photo(0), _photo(1), _opts(init=init, seed=3), encoder=tiny_encoder)
    b = run(_photo(0), _photo(1), _opts(init=init, seed=3), encoder=tiny_encoder)
    assert _png(a) == _png(b)
    if init == "noise":
        c = run(_photo(0), _photo(1), _opts(init=init, seed=4), encoder=tiny_encoder)
        assert _png(a) != _png(c)


def test_save_every_calls_back_with_iterations(tiny_encoder):
    seen = []
    run(_photo(0), _photo(1), _opts(steps=6, save_every=2), encoder=tiny_encoder,
        on_save=lambda i, img: seen.append((i, img.size)))
    assert seen == [(2, (32, 24)), (4, (32, 24)), (6, (32, 24))]


def test_adam_and_style_init(tiny_encoder):
    res = run(_photo(0), _photo(1), _opts(optimizer="adam", init="style", steps=5), encoder=tiny_encoder)
    assert res.evaluations == 5 and res.image.size == (32, 24)


def test_multiscale_ends_at_last_scale(tiny_encoder):
    res = run(_photo(0), _photo(1, 64, 64), _opts(scales=(16, 32), steps=(4, 3)), encoder=tiny_encoder)
    assert res.image.size == (32, 24)
    assert [s["size"] for s in res.scales] == [[16, 12], [32, 24]]
    per_scale = [s["evaluations"] for s in res.scales]
    assert res.evaluations == sum(per_scale) and 4 <= per_scale[0] <= 6 and 3 <= per_scale[1] <= 5


def test_preserve_luminance_keeps_content_colours(tiny_encoder):
    content = np.zeros((24, 32, 3), np.uint8)
    content[..., 0] = 200  # a red picture
    content[..., 1] = np.linspace(0, 120, 32, dtype=np.uint8)
    style = _photo(1)
    style[..., 2] = 255  # a very blue style
    res = run(content, style, _opts(preserve_color="luminance"), encoder=tiny_encoder)
    out = np.asarray(res.image, dtype=float)
    assert out[..., 0].mean() > out[..., 2].mean() + 50  # stays red
    plain = np.asarray(run(content, style, _opts(preserve_color="histogram"), encoder=tiny_encoder).image, float)
    assert plain[..., 0].mean() > plain[..., 2].mean()  # the style was recoloured to the content's palette


def test_blend_of_two_styles(tiny_encoder):
    res = run(_photo(0), [_photo(1), _photo(2)], _opts(style_blend=(0.7, 0.3)), encoder=tiny_encoder)
    assert res.image.size == (32, 24)
    with pytest.raises(CnnkitError, match="blend weights"):
        run(_photo(0), [_photo(1), _photo(2)], _opts(style_blend=(1.0,)), encoder=tiny_encoder)


def test_unknown_layer_lists_valid_names(tiny_encoder):
    with pytest.raises(UnknownNameError, match=r"'conv7_1'; valid names: conv1_1, relu1_1, pool1"):
        run(_photo(0), _photo(1), _opts(style_layers="conv1_1,conv7_1"), encoder=tiny_encoder)


def test_unreadable_image(tiny_encoder, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("this is not a picture")
    with pytest.raises(InvalidImageError, match="bad.jpg: not an image"):
        run(bad, _photo(1), _opts(), encoder=tiny_encoder)
    with pytest.raises(InvalidImageError, match="no such file"):
        run(_photo(0), tmp_path / "absent.png", _opts(), encoder=tiny_encoder)


def test_style_far_smaller_than_output(tiny_encoder, tmp_path):
    small = tmp_path / "tiny_style.png"
    Image.fromarray(_photo(1, 6, 7)).save(small)
    with pytest.raises(InvalidImageError, match=r"tiny_style.png: style image is 7x6 px, far smaller than the 32 px"):
        run(_photo(0), small, _opts(), encoder=tiny_encoder)


def test_memory_budget(tiny_encoder):
    logs: list[str] = []
    with pytest.raises(CnnkitError, match="more than --max-memory"):
        run(_photo(0), _photo(1), _opts(max_memory=1000), encoder=tiny_encoder, log=logs.append)
    assert logs and "estimated peak memory" in logs[0]


def test_transfer_returns_image_and_rejects_unknown_options(tiny_encoder, tmp_path):
    img = transfer(_photo(0), _photo(1), encoder=tiny_encoder, size=32, steps=2, **LAYERS)
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    with pytest.raises(OutputPathError, match="sub does not exist"):  # no folder is made for the user
        save_image(img, tmp_path / "sub" / "out.png")
    assert not (tmp_path / "sub").exists()
    assert save_image(img, tmp_path / "out.png").stat().st_size > 0
    with pytest.raises(CnnkitError, match=r"unknown option \['stpes'\]"):
        transfer(_photo(0), _photo(1), encoder=tiny_encoder, stpes=2)


def test_bad_options(tiny_encoder):
    with pytest.raises(CnnkitError, match="one per scale"):
        run(_photo(0), _photo(1), _opts(scales=(16, 32), steps=(1, 2, 3)), encoder=tiny_encoder)
    with pytest.raises(CnnkitError, match="unknown optimizer"):
        run(_photo(0), _photo(1), _opts(optimizer="sgd"), encoder=tiny_encoder)


def test_stops_when_the_picture_is_reached(tiny_encoder):
    content, style = _photo(0), _photo(1, 40, 40)
    full = run(content, style, _opts(steps=60), encoder=tiny_encoder)
    res = run(content, style, _opts(steps=60, stop_at=0.5, keep_content=0.9), encoder=tiny_encoder)
    assert res.reached is True and full.reached is None
    assert res.evaluations < full.evaluations
    photo_style = run(content, style, _opts(steps=1, learning_rate=0.0, init="content"),
                      encoder=tiny_encoder).initial_style_loss
    assert res.style_loss <= 0.5 * photo_style
    got = torch.from_numpy(np.asarray(res.image, np.float32) / 255).permute(2, 0, 1)[None]
    ref = torch.from_numpy(content.astype(np.float32) / 255).permute(2, 0, 1)[None]
    assert content_kept(got, ref) >= 0.9


def test_unreachable_quality_runs_every_step(tiny_encoder):
    res = run(_photo(0), _photo(1, 40, 40), _opts(steps=6, stop_at=1e-9), encoder=tiny_encoder)
    assert res.reached is False and res.evaluations >= 6


def test_first_lbfgs_step_is_long_and_lowers_the_cost(tiny_encoder):
    from cnnkit.style.optimize import FIRST_STEP

    photo, painting = _photo(0), _photo(1, 40, 40)
    opts = _opts(steps=1, init="content", style_weight=1000.0)
    res = run(photo, painting, opts, encoder=tiny_encoder)
    start = run(photo, painting, replace(opts, learning_rate=0.0), encoder=tiny_encoder)
    moved = np.abs(np.asarray(res.image, np.float64) - photo) / 255
    # torch's own first step would move each value by about 1e-6 (nothing after rounding to uint8)
    assert 1e-3 <= moved.mean() <= 1.2 * FIRST_STEP
    total = lambda r: r.content_loss + 1000.0 * r.style_loss  # noqa: E731
    assert total(res) < total(start)


def test_recolored_start_has_the_style_colours(tiny_encoder):
    photo = _photo(0)
    painting = (_photo(1, 40, 40) * np.array([1.0, 0.3, 0.5])).astype(np.uint8)  # a red painting
    start = run(photo, painting, _opts(steps=1, learning_rate=0.0), encoder=tiny_encoder)
    got = np.asarray(start.image, np.float64).reshape(-1, 3).mean(0)
    assert np.abs(got - painting.reshape(-1, 3).mean(0)).max() < 3
    assert np.abs(got - photo.reshape(-1, 3).mean(0)).max() > 10


def test_bad_precision(tiny_encoder):
    with pytest.raises(CnnkitError, match="unknown precision 'half'; valid: auto, bfloat16, float32"):
        run(_photo(0), _photo(1), _opts(precision="half"), encoder=tiny_encoder)


def test_a_diverging_run_is_a_typed_error_not_a_black_picture(tiny_encoder):
    class Overflowing(torch.nn.Module):  # activations whose Gram matrices overflow float32
        layer_names = tiny_encoder.layer_names

        def forward_layers(self, img, layers):
            return {k: v * 1e30 for k, v in tiny_encoder.forward_layers(img, layers).items()}

    with pytest.raises(CnnkitError, match="diverged at evaluation 1"):
        run(_photo(0), _photo(1, 40, 40), _opts(steps=3), encoder=Overflowing())


def test_init_names_one_list():
    from cnnkit.style.optimize import INITS

    assert StyleOptions().init == INITS[0] == "recolored"
    with pytest.raises(CnnkitError, match="valid: recolored, content, noise, style"):
        run(_photo(0), _photo(1), _opts(init="paint"))


def test_large_pictures_warm_up_at_half_size(tiny_encoder):
    from cnnkit.style.optimize import WARM_UP_FROM

    photo, painting = _photo(0, WARM_UP_FROM, WARM_UP_FROM), _photo(1, 200, 200)
    res = run(photo, painting, _opts(size=WARM_UP_FROM, steps=2, warm_up=3), encoder=tiny_encoder)
    assert [s["size"][0] for s in res.scales] == [WARM_UP_FROM // 2, WARM_UP_FROM]
    assert [s["steps"] for s in res.scales] == [3, 2]
    assert res.image.size == (WARM_UP_FROM, WARM_UP_FROM)
    for off in ({"warm_up": 0}, {"scales": (WARM_UP_FROM,)}, {"size": WARM_UP_FROM - 1}):
        res = run(photo, painting, _opts(**{"size": WARM_UP_FROM, "steps": 1, **off}), encoder=tiny_encoder)
        assert len(res.scales) == 1
    with pytest.raises(CnnkitError, match="warm_up must be >= 0"):
        run(photo, painting, _opts(warm_up=-1), encoder=tiny_encoder)
    assert StyleOptions().warm_up > 0 and StyleOptions().size >= WARM_UP_FROM  # the default run warms up
