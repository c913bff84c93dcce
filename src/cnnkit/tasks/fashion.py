"""``fashion-mnist``: 10-class classification of 28x28 grey images with a 2D conv classifier."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.data.idx import FASHION_CLASSES, load_fashion_mnist
from cnnkit.tasks.metrics import accuracy
from cnnkit.tasks.registry import ConvTask, DataPath, register_task
from cnnkit.train.classify import fit_classifier, predict_logits

MEAN, STD = 0.2860, 0.3530   # of the Fashion-MNIST training pixels, scaled to [0, 1]


def _tensors(split: str, data: DataPath) -> tuple[Tensor, Tensor]:
    images, labels = load_fashion_mnist(split, root=data)  # type: ignore[arg-type]
    x = (torch.from_numpy(images).float()[:, None] / 255.0 - MEAN) / STD
    return x, torch.from_numpy(labels)


def augment_images(img: Tensor, gen: torch.Generator, max_shift: int = 2) -> Tensor:
    """Random horizontal flip and a random shift of up to ``max_shift`` pixels per image
    (B, 1, H, W); pixels shifted in take the background value."""
    b, _, h, w = img.shape
    flip = torch.rand(b, generator=gen) < 0.5
    img = torch.where(flip[:, None, None, None], img.flip(-1), img)
    background = float(img.min())
    padded = F.pad(img, (max_shift,) * 4, value=background)
    dy, dx = (torch.randint(0, 2 * max_shift + 1, (b,), generator=gen) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h))[:, :, None].expand(b, h, w)
    cols = (dx[:, None] + torch.arange(w))[:, None, :].expand(b, h, w)
    flat = padded[:, 0].reshape(b, -1)
    return flat.gather(1, (rows * (w + 2 * max_shift) + cols).reshape(b, -1)).reshape(b, 1, h, w)


@register_task
class FashionMNIST(ConvTask):
    name, metric, model, epochs = "fashion-mnist", "accuracy", "classifier2d", 8
    input_shape = (1, 28, 28)
    classes = FASHION_CLASSES
    preprocessing = {"scale": 1 / 255, "mean": MEAN, "std": STD}
    model_kwargs = {"in_channels": 1, "num_classes": 10, "widths": (32, 64, 128), "blocks_per_stage": 1,
                    "head_size": 3, "dropout": 0.3}

    def train(self, model: nn.Module, *, epochs: int, seed: int, data: DataPath, progress: bool) -> list[float]:
        x, y = _tensors("train", data)
        return fit_classifier(model, x, y, epochs=epochs, batch_size=128, lr=3e-3, seed=seed, label_smoothing=0.1,
                   augment=augment_images, progress=progress, desc=self.name)

    def score(self, model: nn.Module, *, data: DataPath) -> dict[str, float]:
        x, y = _tensors("test", data)
        return {"accuracy": accuracy(predict_logits(model, x).argmax(1), y), "n_test": float(len(y))}
