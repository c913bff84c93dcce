"""The one registry class: duplicates raise, unknown names list the known ones, bad options are
typed errors naming the component; every registry of the package is one of these."""
import pytest

from cnnkit.core.errors import ConfigError, DuplicateNameError, UnknownNameError
from cnnkit.core.registry import Registry


def test_register_by_own_name_and_by_given_name():
    reg: Registry = Registry("widget")

    @reg.register
    def small(*, size: int = 1) -> tuple:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        return ("small", size)

    @reg.register("big_one")
    class Big:
        def __init__(self, *, size: int = 9) -> None:
            self.size = size

    assert reg.names() == ["big_one", "small"] and "small" in reg and "Big" not in reg
    assert reg.build("small", size=3) == ("small", 3) and reg.build("big_one").size == 9
    with pytest.raises(DuplicateNameError, match="widget 'small' is already registered"):
        reg.add("small", small)
    with pytest.raises(UnknownNameError, match="unknown widget 'tiny'; available: big_one, small"):
        reg.get("tiny")
    with pytest.raises(ConfigError, match="widget 'small': size must be >= 0, got -1"):
        reg.build("small", size=-1)
    with pytest.raises(ConfigError, match="widget 'big_one'.*colour"):
        reg.build("big_one", colour="red")


def test_every_registry_is_the_one_class():
    from cnnkit.faces.detect import DETECTORS
    from cnnkit.faces.encoders import FACE_ENCODERS
    from cnnkit.nn.models import MODELS
    from cnnkit.nn.registry import ENCODERS
    from cnnkit.tasks.registry import TASKS

    for reg, member in [(ENCODERS, "small_cnn"), (MODELS, "unet2d"), (DETECTORS, "retinaface"),
                        (FACE_ENCODERS, "dlib_resnet"), (TASKS, "ecg200")]:
        assert type(reg) is Registry and member in reg.names(), reg
