"""The audit package loads its names on first use (``watchgate/_lazy.py``) and still offers every
name it lists, as the very object of its home module, and nothing else."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["watchgate.audit"])
def test_every_listed_name_is_there(package: str) -> None:
    facade = importlib.import_module(package)
    missing = [name for name in facade.__all__ if not hasattr(facade, name)]
    assert missing == []


@pytest.mark.parametrize("package", ["watchgate.audit"])
def test_an_unknown_name_is_an_attribute_error(package: str) -> None:
    facade = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nothing_here'"):
        facade.nothing_here  # noqa: B018


def test_a_name_is_the_one_of_its_module() -> None:
    from watchgate.audit import AuditStatus, verify_log
    from watchgate.audit.record import AuditStatus as status_at_home
    from watchgate.audit.verify import verify_log as verify_at_home

    assert AuditStatus is status_at_home and verify_log is verify_at_home
