"""bwc: police body-worn-camera audio analysis. This package is the core (records, config, audio, store, catalog,
custody, CLI, review and research front ends); ``models``, ``scoring`` and ``pipelines`` import it first.

CTranslate2 is imported here, before anything can import torch. Each ships its own OpenMP runtime (libgomp). torch
puts its copy in the process's global symbol scope, and a CTranslate2 loaded after that binds its OpenMP calls to
torch's copy: whisper's thread team and torch's then live in one runtime that counts more threads than CPUs, and
libgomp stops spin-waiting (its "throttled" spin) for every team from then on. Measured on 2 cores: pyannote on an
82 s recording took 3.4 s before the first whisper window and 5.7 s after it, with 100,000 context switches instead
of 10; imported first, CTranslate2 keeps its own runtime and pyannote stays at 3.4 s. ``tests/test_engines.py``
checks the import order from the CLI, the Ray workers, the speech stage and the models; a program that imports
torch before bwc is warned.
"""

import contextlib
import sys
import warnings

if "torch" in sys.modules and "ctranslate2" not in sys.modules:
    warnings.warn(
        "torch was imported before bwc: CTranslate2 will share torch's OpenMP runtime, and torch runs up to 1.7x "
        "slower once whisper has run (import bwc, or ctranslate2, before torch)",
        RuntimeWarning,
        stacklevel=2,
    )
with contextlib.suppress(ImportError):  # without CTranslate2 (the openai engine only) there is nothing to keep apart
    import ctranslate2  # noqa: F401
