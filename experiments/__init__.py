"""Experiment configs: one module per experiment, run with `alignjax run NAME`."""
