"""pipelines."""

import bwc  # noqa: F401  (first: it loads CTranslate2's OpenMP runtime before torch's; see bwc/__init__.py)
