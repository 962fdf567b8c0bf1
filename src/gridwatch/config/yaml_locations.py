"""YAML loading that remembers where every value came from.

A config error is only useful when it names the file, the line and the field. PyYAML's
composer keeps a mark on every node; we build plain Python values from the node tree and keep a
map from each value's path (``("cameras", 0, "rules", 1, "zone")``) to its line and column.

>>> doc = load_yaml_with_locations("a: 1\\nb:\\n  - {c: 2}\\n", "x.yaml")
>>> doc.data
{'a': 1, 'b': [{'c': 2}]}
>>> doc.location(("b", 0, "c"))
(3, 6)
>>> doc.location(("b", 0, "missing"))  # falls back to the nearest known parent
(3, 5)
>>> try:
...     load_yaml_with_locations("grids: []\\ncameras: []\\ngrids: [a]\\n", "x.yaml")
... except YamlSyntaxError as e:
...     print(e.line, e.column, e.message.split(":")[0])
3 1 duplicate key 'grids' (first at line 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


class YamlSyntaxError(ValueError):
    """The file is not YAML at all; carries the line and column of the problem."""

    def __init__(self, filename: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{filename}:{line}:{column}: {message}")
        self.filename = filename
        self.line = line
        self.column = column
        self.message = message


@dataclass
class LocatedDocument:
    filename: str
    data: Any
    locations: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def location(self, path: Sequence[str | int]) -> tuple[int, int] | None:
        """(line, column), 1-based, of ``path`` or of its nearest ancestor that exists."""
        p = tuple(path)
        while True:
            if p in self.locations:
                return self.locations[p]
            if not p:
                return None
            p = p[:-1]


def _construct(node: yaml.Node, path: Path, out: dict[Path, tuple[int, int]], loader: Any) -> Any:
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, list):
                key = tuple(key)
            if key in result:  # PyYAML keeps the last silently: a config would lose a section
                first = out[(*path, key)][0]
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key!r} (first at line {first}): the second would "
                    "replace the first; merge them",
                    problem_mark=key_node.start_mark,
                )
            result[key] = _construct(value_node, (*path, key), out, loader)
            # A key's own position is the better place to point at for "unknown field".
            out[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[(*path, key, "__value__")] = (
                value_node.start_mark.line + 1,
                value_node.start_mark.column + 1,
            )
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, (*path, i), out, loader) for i, child in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml_with_locations(text: str, filename: str) -> LocatedDocument:
    """Parse ``text``; raise :class:`YamlSyntaxError` with a position when it is not YAML."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        locations: dict[Path, tuple[int, int]] = {}
        data = None if node is None else _construct(node, (), locations, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        col = mark.column + 1 if mark else 0
        raise YamlSyntaxError(filename, line, col, f"{exc.problem or exc}") from exc
    finally:
        loader.dispose()
    return LocatedDocument(filename=filename, data=data, locations=locations)
