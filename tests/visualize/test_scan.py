"""The streaming top-k scan against a brute-force sort of all activations, ties included."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.core.errors import CnnkitError, UnknownNameError
from cnnkit.visualize.scan import scan_top_units


def _integer_model(ndim: int) -> nn.Sequential:
    """Integer weights on integer inputs: activations are small integers, so ties are everywhere."""
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[ndim - 1]
    pool = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[ndim - 1]
    model = nn.Sequential(conv(2, 4, 3, padding=1), nn.ReLU(), pool(2), conv(4, 3, 3, stride=2))
    gen = torch.Generator().manual_seed(ndim)
    with torch.no_grad():
        for m in model:
            if isinstance(m, conv):
                m.weight.copy_(torch.randint(-1, 2, m.weight.shape, generator=gen).float())
                m.bias.zero_()
    return model.eval()


def _brute_force(model: nn.Module, data: torch.Tensor, layer: str, k: int, distinct: bool):
    """Every activation, sorted by (activation desc, index asc, position asc) in plain Python."""
    acts = []
    h = dict(model.named_modules())[layer].register_forward_hook(lambda _m, _a, o: acts.append(o))
    with torch.no_grad():
        model(data)
    h.remove()
    act = acts[0]
    shape = act.shape[2:]
    flat = act.flatten(2)
    out = []
    for c in range(act.shape[1]):
        entries = []
        for i in range(act.shape[0]):
            values = flat[i, c].tolist()
            if distinct:
                best = max(values)
                entries.append((-best, i, values.index(best)))
            else:
                entries += [(-v, i, p) for p, v in enumerate(values)]
        entries.sort()
        top = entries[:k]
        out.append([(-v, i, tuple(torch.unravel_index(torch.tensor(p), shape))) for v, i, p in top])
    return out


def _as_entries(result, layer):
    t = result.layers[layer]
    return [[(float(t.activation[u, j]), int(t.index[u, j]), tuple(int(q) for q in t.position[u, j]))
             for j in range(t.activation.shape[1])] for u in range(len(t.units))]


@pytest.mark.parametrize("ndim,shape", [(1, (2, 23)), (2, (2, 11, 13)), (3, (2, 7, 8, 9))])
@pytest.mark.parametrize("distinct", [True, False])
def test_topk_equals_brute_force_with_ties(ndim, shape, distinct):
    model = _integer_model(ndim)
    data = torch.randint(0, 3, (37, *shape), generator=torch.Generator().manual_seed(7)).float()
    result = scan_top_units(model, data, ["1", "3"], top=9, batch_size=5, distinct_inputs=distinct,
                            progress=False)
    assert result.seen == 37
    for layer in ("1", "3"):
        expected = _brute_force(model, data, layer, 9, distinct)
        got = _as_entries(result, layer)
        values = [v for unit in expected for v, _, _ in unit]
        assert len(values) > len(set(values)), "the test must contain ties"
        assert [[(v, i, tuple(int(q) for q in p)) for v, i, p in u] for u in expected] == got


def test_units_option_and_small_data_sets():
    model = _integer_model(2)
    data = torch.randint(0, 3, (4, 2, 11, 13), generator=torch.Generator().manual_seed(1)).float()
    result = scan_top_units(model, data, ["3"], top=9, units=2, progress=False)
    table = result.layers["3"]
    assert table.units.tolist() == [0, 1]
    assert table.activation.shape == (2, 4)  # only 4 inputs, one entry per input
    assert table.feature_shape == (2, 2)
    assert table.receptive_field.size == (8, 8)


class _Flaky(torch.utils.data.Dataset):
    """A tensor data set that can be made to fail at one index, and counts what it served."""

    description = "flaky-test-data"

    def __init__(self, data: torch.Tensor, fail_at: int | None = None) -> None:
        self.data, self.fail_at, self.served = data, fail_at, 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        if i == self.fail_at:
            raise KeyboardInterrupt
        self.served += 1
        return self.data[i]


def test_resume_from_checkpoint_gives_the_uninterrupted_result(tmp_path):
    model = _integer_model(1)
    data = torch.randint(0, 3, (40, 2, 23), generator=torch.Generator().manual_seed(3)).float()
    full = scan_top_units(model, data, ["3"], top=5, batch_size=4, progress=False, distinct_inputs=False)
    ckpt = tmp_path / "scan.ckpt"
    with pytest.raises(KeyboardInterrupt):
        scan_top_units(model, _Flaky(data, fail_at=25), ["3"], top=5, batch_size=4, progress=False,
                       distinct_inputs=False, checkpoint=ckpt, checkpoint_every=2)
    assert ckpt.exists()  # written after 2, 4 and 6 batches (24 inputs); input 25 failed
    again = _Flaky(data)
    resumed = scan_top_units(model, again, ["3"], top=5, batch_size=4, progress=False,
                             distinct_inputs=False, checkpoint=ckpt, checkpoint_every=2)
    assert again.served == 1 + (40 - 24)  # one probe input, then only the inputs not yet scanned
    assert _as_entries(resumed, "3") == _as_entries(full, "3")
    with pytest.raises(CnnkitError, match="different scan"):
        scan_top_units(model, again, ["3"], top=3, batch_size=4, progress=False, checkpoint=ckpt)


def test_bad_arguments():
    model = _integer_model(1)
    with pytest.raises(UnknownNameError, match="conv7"):
        scan_top_units(model, torch.rand(3, 2, 20), ["conv7"], progress=False)
    with pytest.raises(CnnkitError, match="empty"):
        scan_top_units(model, torch.rand(0, 2, 20), ["1"], progress=False)
