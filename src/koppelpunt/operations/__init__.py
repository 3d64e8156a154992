"""Operator tasks (beheer): the logic behind the CLI commands and the /v1/beheer endpoints."""
