"""The fused encoder: weighted concatenation of unit embeddings, so that its squared distance is
the weighted sum of the parts' squared distances; its tag names the parts and gives its spec back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnkit.core.errors import UnknownNameError
from cnnkit.faces import FacePipeline, load_face_encoder
from cnnkit.faces.encoders import choose_encoder
from cnnkit.faces.fused import parse_fused_spec, spec_from_tag
from cnnkit.faces.pairs import encode_files

ORL = Path(__file__).resolve().parents[2] / "data" / "orl"


def test_spec_parsing() -> None:
    assert parse_fused_spec("dlib_resnet+sface") == (("dlib_resnet", "sface"), None)
    assert parse_fused_spec("dlib_resnet*0.3, sface*0.7") == (("dlib_resnet", "sface"), (0.3, 0.7))
    for bad in ("dlib_resnet", "dlib_resnet*0.3+sface", "a*-1+b*2", "a b+c"):
        with pytest.raises(UnknownNameError):
            parse_fused_spec(bad)


def test_tag_gives_the_spec_back() -> None:
    enc = load_face_encoder("dlib_resnet*1+sface*3")
    assert enc.weights == (0.25, 0.75) and enc.dim == 256 and enc.blocks == (128, 128)
    again = load_face_encoder(choose_encoder(None, enc.tag))
    assert again.tag == enc.tag
    assert spec_from_tag(load_face_encoder("sface").tag) == "sface"


def test_squared_distance_is_the_weighted_sum_of_the_parts() -> None:
    fused = FacePipeline("dlib_resnet*0.3+sface*0.7", threads=1)
    dlib, sface = FacePipeline("dlib_resnet", threads=1), FacePipeline("sface", threads=1)
    a, b = ORL / "s1" / "1.pgm", ORL / "s2" / "1.pgm"
    fa, fb = fused.encode_one(a).embedding, fused.encode_one(b).embedding
    assert np.linalg.norm(fa) == pytest.approx(1.0, abs=1e-5)

    def unit_d2(pipe):
        x, y = pipe.encode_one(a).embedding, pipe.encode_one(b).embedding
        return float(np.sum((x / np.linalg.norm(x) - y / np.linalg.norm(y)) ** 2))

    expected = 0.3 * unit_d2(dlib) + 0.7 * unit_d2(sface)
    assert float(np.sum((fa - fb) ** 2)) == pytest.approx(expected, rel=1e-4)


def test_cached_fused_encodings_are_the_pipelines(tmp_path) -> None:
    pipe = FacePipeline("dlib_resnet+sface", threads=1)
    f = ORL / "s3" / "1.pgm"
    cached = encode_files(pipe, [f], cache_dir=tmp_path, progress=False)[f]
    np.testing.assert_allclose(cached, pipe.encode_one(f).embedding, atol=1e-6)
    assert len(list(tmp_path.glob("*.npz"))) == 2  # one cache per part, shared with the parts alone


def test_unregistered_gallery_tag_needs_an_explicit_encoder() -> None:
    with pytest.raises(UnknownNameError, match="--encoder"):
        choose_encoder(None, "mobilenet_v2_face:0:0123456789abcdef")
    assert choose_encoder("sface", "dlib_resnet:1:0123456789abcdef") == "sface"


def test_fusion_weights_read_off_a_block_sq_head() -> None:
    from cnnkit.faces.fused import fusion_from_head

    # logit = 1.6 - 2 D_1 - 6 D_2 with stored weights 0.5, 0.5: same iff 1 d_1^2 + 3 d_2^2 < 1.6
    out = fusion_from_head({"weights": [-2.0, -6.0], "bias": 1.6}, (0.5, 0.5))
    assert out["fusion_weights"] == [0.25, 0.75]
    assert out["fusion_threshold"] == pytest.approx((1.6 / 4) ** 0.5, abs=1e-4)
    with pytest.raises(UnknownNameError):
        fusion_from_head({"weights": [2.0, 6.0], "bias": 1.6}, (0.5, 0.5))


def test_fit_fusion_finds_the_informative_part_and_the_best_threshold() -> None:
    from cnnkit.eval.verification import best_threshold
    from cnnkit.faces.fused import fit_fusion

    rng = np.random.default_rng(0)
    same = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    useful = np.where(same, rng.uniform(0.0, 0.9, 400), rng.uniform(1.1, 2.0, 400))  # separates alone
    noise = rng.uniform(0.0, 2.0, 400)
    (w1, w2), thr, acc = fit_fusion(np.stack([useful, noise], 1), same)
    assert acc == 1.0 and w1 > 0.5 and w1 + w2 == pytest.approx(1.0)
    fused = np.sqrt(w1 * useful + w2 * noise)
    assert np.mean((fused <= thr) == same) == 1.0
    assert best_threshold(fused, same)[1] == acc


def test_block_sq_head_over_a_fusion_decides_by_the_fitted_weights() -> None:
    import json

    from cnnkit.faces.fused import fusion_from_head
    from cnnkit.faces.head import fit_head

    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 6)).astype(np.float32)
    b = a + rng.normal(scale=np.r_[[0.05] * 3, [1.0] * 3], size=(300, 6)).astype(np.float32)
    same = rng.uniform(size=300) < 0.5
    b[~same, :3] = rng.normal(size=(int((~same).sum()), 3))  # the first block tells people apart
    head = fit_head(a, b, same, features=("block_sq",), blocks=(3, 3), stored_weights=(0.5, 0.5))
    fused = fusion_from_head(json.loads(head.to_json()), (0.5, 0.5))
    assert fused["fusion_weights"][0] > 0.5


def test_mirror_averaging_per_part() -> None:
    from cnnkit.faces.fused import FusedEncoder

    enc = FusedEncoder.from_spec("dlib_resnet*0.5+sface*0.5", part_flips=(True, False))
    pipe = FacePipeline(enc, threads=1)
    assert pipe.part_flips == (True, False) and "|flip=10|" in pipe.config_key
    dlib_part, sface_part = pipe.part_pipelines()
    assert dlib_part.flip and not sface_part.flip
    assert dlib_part.config_key == FacePipeline("dlib_resnet", threads=1).config_key  # caches shared
    f = ORL / "s4" / "1.pgm"
    expected = enc.combine([FacePipeline("dlib_resnet", threads=1).encode_one(f).embedding[None],
                            FacePipeline("sface", threads=1, flip=False).encode_one(f).embedding[None]])[0]
    np.testing.assert_allclose(pipe.encode_one(f).embedding, expected, atol=1e-6)
    # an explicit flip is every part's
    assert FacePipeline(enc, threads=1, flip=False).part_flips == (False, False)
    assert "|flip|" in FacePipeline("dlib_resnet+sface", threads=1, flip=True).config_key


def test_the_default_is_the_fitted_fusion() -> None:
    from cnnkit.faces.fused import FUSIONS

    pipe = FacePipeline(threads=1)
    weights, threshold, flips = FUSIONS[("dlib_resnet", "sface")]
    assert [p.name for p in pipe.encoder.parts] == ["dlib_resnet", "sface"]
    assert pipe.encoder.weights == pytest.approx(weights) and pipe.default_threshold == threshold
    assert pipe.part_flips == flips == (True, False)
    assert choose_encoder(None, pipe.tag) == "dlib_resnet*0.8+sface*0.2"
    assert load_face_encoder(choose_encoder(None, pipe.tag)).part_flips == flips  # a gallery's tag: same flips
