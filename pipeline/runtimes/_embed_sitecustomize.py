"""rewheel: give PYTHONPATH back to python.org's embeddable CPython (its ._pth file makes it ignore it)."""

import os
import sys

_value = os.environ.get("PYTHONPATH", "")
_separator = ":" if _value.startswith("/") and ";" not in _value else ";"
for _entry in reversed([p for p in _value.split(_separator) if p]):
    if _entry not in sys.path:
        sys.path.insert(0, _entry)
