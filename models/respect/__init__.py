"""The respect model: how respectful an utterance sounds, as interpretable features plus a sentence encoder.

``features`` holds the lexicon of respect markers (Voigt et al. 2017; Danescu-Niculescu-Mizil et al. 2013),
``model`` the trained scorer and its artifact, ``train`` the recipe that builds it from the Stanford Politeness
Corpus. The trained artifact ships in ``models/respect/artifact`` with its model card, ``models/respect/CARD.md``.
"""
