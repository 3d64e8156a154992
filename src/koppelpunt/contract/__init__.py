"""Contracts for consumers, generated from the code (AsyncAPI)."""
