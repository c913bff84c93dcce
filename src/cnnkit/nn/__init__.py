"""cnnkit.nn: building blocks, encoders and models, registered by name.

Importing the package imports the modules that register (the registries themselves know none)."""
from cnnkit.nn import encoders, models  # noqa: F401  (register the encoders and the models)
