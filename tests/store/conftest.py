"""Store fixtures. ``make_gallery`` is parametrised over the backends; every test that uses it
runs against each one (the PostgreSQL backend adds itself to BACKENDS)."""
from __future__ import annotations

from typing import Callable, Iterator

import pytest

from cnnkit.store import SQLiteGallery

BACKENDS = ["sqlite-memory", "sqlite-file"]


@pytest.fixture(params=BACKENDS)
def make_gallery(request: pytest.FixtureRequest, tmp_path) -> Iterator[Callable[..., object]]:
    opened = []

    def factory(**kwargs):
        if request.param == "sqlite-memory":
            g = SQLiteGallery(":memory:", **kwargs)
        elif request.param == "sqlite-file":
            g = SQLiteGallery(tmp_path / "gallery.sqlite", **kwargs)
        else:  # other backends register a factory fixture named "<backend>_gallery_factory"
            g = request.getfixturevalue(f"{request.param.replace('-', '_')}_gallery_factory")(**kwargs)
        opened.append(g)
        return g

    yield factory
    for g in opened:
        g.close()
