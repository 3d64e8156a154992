"""The private names of libraries this code uses are all still there (koppelpunt.private_names).

A library update that removes one fails here, before the code that uses it fails in service."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from koppelpunt.private_names import PRIVATE_NAMES, PrivateName, missing, present


@pytest.mark.parametrize("entry", PRIVATE_NAMES, ids=lambda e: f"{e.owner}.{e.name}")
def test_name_is_in_the_installed_library(entry: PrivateName) -> None:
    assert present(entry), f"{entry.owner} has no {entry.name} any more ({entry.used_in})"


@pytest.mark.parametrize("entry", PRIVATE_NAMES, ids=lambda e: f"{e.used_in}:{e.name}")
def test_the_listed_user_uses_the_name(entry: PrivateName) -> None:
    """The list stays the list of what is used: a name no module uses is taken out."""
    source = inspect.getsource(importlib.import_module(entry.used_in))
    assert re.search(rf"\b{entry.name}\b", source)


def test_a_name_that_is_gone_is_reported() -> None:
    for on_instance in (False, True):
        gone = PrivateName(
            "aiokafka",
            "aiokafka.producer.producer:AIOKafkaProducer",
            "_no_such_name",
            on_instance,
            "x",
        )
        assert not present(gone)
    assert not present(PrivateName("x", "aiokafka.producer.producer:NoSuchClass", "_a", False, "x"))


def test_nothing_is_missing() -> None:
    assert missing() == ()
