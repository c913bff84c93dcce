"""The public API of each subpackage: every name in __all__ exists, and the core of the main job is
exported (httpx's __all__ guard)."""
import importlib

import pytest

SUBPACKAGES = ["core", "eval", "store", "faces", "losses", "mining", "distances", "style", "visualize", "tasks"]


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_all_names_exist(name):
    module = importlib.import_module(f"cnnkit.{name}")
    exported = getattr(module, "__all__", None)
    assert exported, f"cnnkit.{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"cnnkit.{name}.__all__ names missing objects: {missing}"


def test_main_job_api():
    import cnnkit.faces as faces
    import cnnkit.store as store

    assert {"FacePipeline", "FaceResult", "load_face_encoder", "read_pairs", "pair_distances", "compare", "enroll",
            "verify", "identify", "Decision", "resolve_decision"} <= set(faces.__all__)
    assert {"open_gallery", "SQLiteGallery", "FaceSource", "Match"} <= set(store.__all__)
