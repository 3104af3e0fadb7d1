"""Disentanglement metrics over arrays and over ground-truth datasets.

Every metric is a function returning a ``dict`` of named floats; its module
docstring names its reference (paper and disentanglement_lib function).
"""
