"""The respect model: how respectful an utterance sounds, as interpretable features plus a sentence encoder.

``features`` holds the lexicon of respect markers (Voigt et al. 2017; Danescu-Niculescu-Mizil et al. 2013),
``folds`` the topic folds and content masking of the transfer-honest validation, ``model`` the trained scorer and
its artifact, ``train`` the recipe that builds it from the Stanford Politeness Corpus and the officer lines in
``eval/``. The trained artifact ships in ``models/respect/model`` with its model card, ``models/respect/model/CARD.md``.
"""
