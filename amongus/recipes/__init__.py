"""Corpus recipes: functions that build corpora from locally installed sources.

Each recipe is a subpackage with a ``main(argv)`` command line; ``python -m
amongus.recipes.<name>`` runs it.
"""
