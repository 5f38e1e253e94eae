# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Reading the plugin's YAML configuration files (data manifests, experiment and
system files) with errors that point at ``FILE:LINE``.

:func:`load_yaml` returns mappings that remember the line of every key;
:func:`check_keys` and :func:`as_list` raise the caller's error class (by default
:class:`~xlt_fairseq.data.formats.DataFormatError`) with that line.
"""

from typing import Dict, List, Optional, Type

import yaml

from .formats import DataFormatError
from .spec import as_list as _spec_as_list
from .textio import decode_text, read_bytes


class ConfigError(DataFormatError):
    """A problem in a configuration file (experiment, system, manifest), located by file and line."""


class LineDict(dict):
    """A YAML mapping that remembers its own line (``.line``) and each key's (``.lines[key]``)."""

    line: int = 0
    lines: Dict = {}


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path, error: Type[DataFormatError] = DataFormatError) -> LineDict:
    """A YAML file whose mappings carry ``.line`` and ``.lines[key]``; a mapping at the top level."""
    try:
        text = decode_text(path, read_bytes(path))
    except DataFormatError as e:
        if error is DataFormatError:
            raise
        raise error(e.path, e.line, e.message) from None
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise error(path, mark.line + 1 if mark else None, f"invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise error(path, None, "expected a YAML mapping at the top level")
    return data


def line_of(mapping, key=None) -> Optional[int]:
    """The line of ``key`` in ``mapping`` (of the mapping itself without a key); None for a plain dict."""
    if isinstance(mapping, LineDict):
        return mapping.lines.get(key, mapping.line) if key is not None else mapping.line
    return None


def check_keys(path, mapping, known, what, error: Type[DataFormatError] = DataFormatError):
    """Refuses the first key of ``mapping`` that is not in ``known``, at its line."""
    for key in mapping:
        if key not in known:
            raise error(
                path, line_of(mapping, key), f"unknown key {key!r} in {what} (known: {', '.join(sorted(known))})"
            )


def as_list(value, path, line, what, error: Type[DataFormatError] = DataFormatError) -> List[str]:
    """A YAML list or a comma-separated string as a list of strings."""
    try:
        return _spec_as_list(value, path, line, what)
    except DataFormatError as e:
        if error is DataFormatError:
            raise
        raise error(e.path, e.line, e.message) from None


def plain(value):
    """``value`` with every :class:`LineDict` turned into a plain dict (for yaml.safe_dump, pickling)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
