"""The admin's password, as the wizard's first step judges it: refused with advice when easy to guess."""

from __future__ import annotations

import pytest

from podium_appliance.errors import ApplianceError
from podium_appliance.setup.passwords import check_password


def test_passwords_weak_ones_are_refused_with_advice():
    for weak in ["short", "Password123!", "admin@example.com1", "qwertyuiop12"]:
        with pytest.raises(ApplianceError, match="password"):
            check_password(weak, ["admin@example.com"])
    check_password("correct horse battery staple", ["admin@example.com"])
