"""Writes the checkpoint files of tests/nn/test_checkpoint.py::test_files_written_before_keep_loading:
one face encoder (``cnnkit train`` layout) and one task model (``cnnkit conv train`` layout), tiny
and seeded, plus the outputs they gave on a fixed input. The committed files were written by
cnnkit 5089f4c (before nn/checkpoint.py took over tasks/checkpoint.py); rerun this only to add a
newer generation, never to overwrite those.

    python tests/assets/make_checkpoints.py OUT_DIR [ORL_DIR]   (ORL_DIR: also the trained model with its state)
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

out = Path(sys.argv[1])
torch.manual_seed(0)
from cnnkit.nn.checkpoint import save_encoder  # noqa: E402
from cnnkit.nn.models import create_model  # noqa: E402
from cnnkit.nn.registry import create_encoder  # noqa: E402

try:
    from cnnkit.nn.checkpoint import save_model
except ImportError:  # before nn/checkpoint.py held both formats
    from cnnkit.tasks.checkpoint import save_model

kwargs = {"embedding_dim": 8, "widths": [4, 8, 8, 8], "input_size": [40, 32]}
enc = create_encoder("small_cnn", **kwargs).eval()
save_encoder(out / "face_encoder", enc, {"encoder": "small_cnn", "kwargs": kwargs, "version": "asset-1",
                                         "input": {"size": [40, 32], "channels": 1, "align": False}})
x = torch.from_numpy(np.linspace(-1, 1, 40 * 32, dtype=np.float32).reshape(1, 1, 40, 32))
expected = {"face_encoder": enc(x).detach().numpy().round(6).tolist()}
mk = {"in_channels": 1, "num_classes": 3, "widths": [4, 8]}
model = create_model("classifier1d", **mk).eval()
save_model(out / "task_model", model, {"task": "ecg200", "metric": "accuracy", "model": "classifier1d",
                                       "model_kwargs": mk, "input_shape": [1, 16]})
s = torch.from_numpy(np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 1, 16))
expected["task_model"] = model(s).detach().numpy().round(6).tolist()
(out / "expected.json").write_text(json.dumps(expected))

# Generation 2 (cnnkit after the one training loop): a model directory with its resume state
# (model.state.pt, loaded with weights_only=True), from one epoch of `cnnkit train` on ORL s1..s4.
if len(sys.argv) > 2:
    from cnnkit.train.loop import TrainConfig, train_encoder  # noqa: E402

    cfg = TrainConfig(people="s1..s4", epochs=1, p=2, k=4, encoder="small_cnn", val_fraction=0.5,
                      encoder_kwargs={"embedding_dim": 8, "widths": [4, 8, 8, 8]}, size=(40, 32))
    train_encoder(sys.argv[2], out / "trained_encoder", cfg, progress=False, log=lambda s: None)
