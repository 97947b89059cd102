"""Figures of the course: statistical plots (seaborn) that show and save themselves, as the notebooks draw them."""

from __future__ import annotations
