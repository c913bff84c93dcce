"""``brain3d``: grey/white-matter segmentation of the MNI152 template with a 3D U-Net, trained on
random patches of one half of the brain and scored by Dice on the other half (whole half, one pass).

The split is posterior (train) / anterior (test) because the template is left/right symmetric."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cnnkit.data.volumes import TISSUES, load_mni152_tissues, random_patches, split_halves
from cnnkit.tasks.metrics import dice
from cnnkit.tasks.registry import ConvTask, DataPath, register_task
from cnnkit.train.classify import fit_classifier

PATCH = 32


@register_task
class Brain3d(ConvTask):
    name, metric, model, epochs = "brain3d", "dice", "unet3d", 5
    input_shape = (1, PATCH, PATCH, PATCH)
    classes = TISSUES
    preprocessing = {"template": "MNI152 2009 T1, 2 mm, values in [0, 1]", "split_axis": 1}
    model_kwargs = {"in_channels": 1, "num_classes": 3, "widths": (8, 16, 32)}
    patches = 300

    def train(self, model: nn.Module, *, epochs: int, seed: int, data: DataPath, progress: bool) -> list[float]:
        t1, labels = load_mni152_tissues(2)
        (train_t1, _), (train_lab, _) = split_halves(t1), split_halves(labels)
        x, y = random_patches(np.ascontiguousarray(train_t1), np.ascontiguousarray(train_lab), size=PATCH,
                              count=self.patches, rng=np.random.default_rng(seed))
        return fit_classifier(model, torch.from_numpy(x), torch.from_numpy(y), epochs=epochs, batch_size=4, lr=3e-3,
                   seed=seed, progress=progress, desc=self.name)

    def default_data(self) -> str:
        """The MNI152 template it was trained on."""
        return "mni152"

    def score(self, model: nn.Module, *, data: DataPath) -> dict[str, float]:
        t1, labels = load_mni152_tissues(2)
        test_t1, test_lab = split_halves(t1)[1], split_halves(labels)[1]
        step = 2 ** (len(self.model_kwargs["widths"]) - 1)
        pad = [(0, -n % step) for n in test_t1.shape]
        vol = torch.from_numpy(np.pad(test_t1, pad))[None, None]
        model.eval()
        with torch.no_grad():
            logits = model(vol)[0]
        pred = logits.argmax(0)[: test_t1.shape[0], : test_t1.shape[1], : test_t1.shape[2]]
        target = torch.from_numpy(np.ascontiguousarray(test_lab))
        gm, wm = dice(pred, target, 1), dice(pred, target, 2)
        return {"dice": (gm + wm) / 2, "dice_gm": gm, "dice_wm": wm}

