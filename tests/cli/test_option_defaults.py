"""Every CLI option that sets a library dataclass field gives the field's own default (after its
callback: what the command receives), so that a default has one owner and ``--help`` tells the
truth: a library default changed without the CLI fails here."""
import dataclasses

import pytest

# options whose CLI default differs from the library's on purpose, and why
_CLI_OWN = {
    "style": {"progress": "a terminal user wants the bar; library callers do not"},
    "train": {"encoder": "the CLI trains the pretrained MobileNetV2; the library default needs no weights"},
}


def _command(name, tmp_path):
    """(click command, the dataclass its options fill, the fewest arguments it parses with)."""
    if name == "style":
        from cnnkit.cli.style import style
        from cnnkit.style.optimize import StyleOptions

        return style, StyleOptions, ["photo.jpg", "painting.jpg", "-o", str(tmp_path / "out.png")]
    if name == "train":
        from cnnkit.cli.train import train
        from cnnkit.train.loop import TrainConfig

        return train, TrainConfig, [str(tmp_path), "-o", str(tmp_path / "model")]
    from cnnkit.cli.serve import serve
    from cnnkit.serve.service import ServeConfig

    return serve, ServeConfig, []


@pytest.mark.parametrize("name", ["style", "train", "serve"])
def test_cli_defaults_are_the_dataclass_defaults(name, tmp_path):
    command, cls, args = _command(name, tmp_path)
    library = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
               for f in dataclasses.fields(cls)
               if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    with command.make_context(name, args) as ctx:
        cli = dict(ctx.params)
    if name == "style":  # layer specs are text on the command line; the library parses both forms
        from cnnkit.style.loss import parse_layer_weights

        for key in ("content_layers", "style_layers"):
            cli[key], library[key] = parse_layer_weights(cli[key]), parse_layer_weights(library[key])
    shared = (set(library) & set(cli)) - set(_CLI_OWN.get(name, {}))
    assert len(shared) >= 6, f"{name}: only {sorted(shared)} map to {cls.__name__} fields"
    wrong = {k: (cli[k], library[k]) for k in sorted(shared) if cli[k] != library[k]
             and not (isinstance(cli[k], tuple) and cli[k] == (library[k],))}  # --steps 300 is (300,)
    assert not wrong, f"{name}: CLI default != {cls.__name__} default (cli, library): {wrong}"
    for option in _CLI_OWN.get(name, {}):
        assert cli[option] != library[option], f"{name} --{option}: now the library's; drop it from _CLI_OWN"
