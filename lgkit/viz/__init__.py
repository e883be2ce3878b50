"""Figures and interactive widgets drawn from statistics tables.

May import: lgkit.analysis, lgkit.errors, lgkit.schema, lgkit.formats.records (for Example). Never torch.
"""
