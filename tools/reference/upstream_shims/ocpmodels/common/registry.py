"""A registry of the upstream classes, kept apart from fairchem's (both know an `equiformer_v2`)."""

from __future__ import annotations


class Registry:
    """`register_model(name)` records the decorated class under `name`; `get_model_class(name)` returns it."""

    mapping: dict[str, type] = {}

    @classmethod
    def register_model(cls, name: str):
        def wrap(model_class: type) -> type:
            cls.mapping[name] = model_class
            return model_class

        return wrap

    @classmethod
    def get_model_class(cls, name: str) -> type:
        return cls.mapping[name]


registry = Registry()
