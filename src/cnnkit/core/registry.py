"""The one registry class: named components (encoders, models, detectors, face encoders, tasks),
registered by decorator and built by name (timm's pattern). A registry knows no component
module; the package that owns the components imports the modules that register them."""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar, overload

from cnnkit.core.errors import CnnkitError, ConfigError, DuplicateNameError, UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> components (classes, factory functions or instances) of one ``kind``.

    >>> ENCODERS: Registry[Callable[..., nn.Module]] = Registry("encoder")
    >>> @ENCODERS.register            # under the function's own name
    ... def small_cnn(**kw): ...
    >>> @ENCODERS.register("tiny")    # under an explicit name
    ... class Tiny(nn.Module): ...
    >>> ENCODERS.build("small_cnn", embedding_dim=64)
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    @overload
    def register(self, target: str) -> Callable[[T], T]: ...
    @overload
    def register(self, target: T) -> T: ...

    def register(self, target: Any) -> Any:
        """Decorator: register under ``target.__name__``, or ``@register("name")``.

        Raises:
            DuplicateNameError: the name is taken.
        """
        if isinstance(target, str):
            return lambda obj: self.add(target, obj)
        return self.add(target.__name__, target)

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` and return it."""
        if name in self._items:
            raise DuplicateNameError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        """The component registered as ``name``.

        Raises:
            UnknownNameError: naming the kind and listing the registered names.
        """
        if name not in self._items:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}")
        return self._items[name]

    def build(self, name: str, /, **kwargs: Any) -> Any:
        """Call the component ``name`` (a class or factory) with ``kwargs``.

        Raises:
            UnknownNameError: ``name`` is not registered.
            ConfigError: the component rejected the keyword arguments (a wrong name or value).
        """
        factory = self.get(name)
        try:
            return factory(**kwargs)  # type: ignore[operator]
        except (TypeError, ValueError) as exc:
            if isinstance(exc, CnnkitError) or not kwargs:  # already typed, or not the caller's options
                raise
            raise ConfigError(f"{self.kind} {name!r}: {exc}") from exc

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
