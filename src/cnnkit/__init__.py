"""cnnkit: special applications of convolutional networks, made real and usable.

Importing cnnkit loads no model, touches no file and starts no thread; subpackages are imported
on use (``import cnnkit.faces``, ``import cnnkit.style``...).
"""
__version__ = "0.1.0"

__all__ = ["__version__"]
