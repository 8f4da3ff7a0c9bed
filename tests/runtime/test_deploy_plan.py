"""Deployment planning (pure: no broker): channel roles follow what the system communicates on."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.csp.runtime.deploy import DeployError, plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_hidden_channels_get_no_role() -> None:
    pl = plan(EXAMPLES / "buffer" / "buffer.csp", "BUFFER", outputs=["right"])
    assert set(pl.deployment.channels) == {"left", "right"}  # `mid` is hidden inside BUFFER
    assert pl.deployment.channels["right"].role != pl.deployment.channels["left"].role
    assert not pl.refused


def test_outputs_naming_a_hidden_channel_is_an_error() -> None:
    with pytest.raises(DeployError, match="mid.*hidden or unused"):
        plan(EXAMPLES / "buffer" / "buffer.csp", "BUFFER", outputs=["mid"])


def test_outputs_naming_an_unknown_channel_is_an_error() -> None:
    with pytest.raises(DeployError, match="unknown channel"):
        plan(EXAMPLES / "buffer" / "buffer.csp", "BUFFER", outputs=["nope"])
