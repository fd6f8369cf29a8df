"""From transcripts to meaning: speaker roles, respect and act scores, encounter signals, flags.

Empty for now: the scoring stages arrive with issue 3 (language scoring) and issue 5 (flags). They will consume the
``utterances`` and ``words`` records that :mod:`pipelines.speech` produces.
"""
