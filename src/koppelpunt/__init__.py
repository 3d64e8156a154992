"""Koppelpunt gemeenten of the VVA."""
