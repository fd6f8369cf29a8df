"""Labelled police-stop utterances and the evaluation of the PII redactor (see CARD.md)."""
