"""One ``make build`` in a copy of the checkout, shared by the packaging tests."""

from __future__ import annotations

import pytest
from wheels import Built, build


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Every distribution's wheel and sdist, as ``make build`` leaves them in ``dist/``."""
    return build(tmp_path_factory.mktemp("build") / "checkout")
