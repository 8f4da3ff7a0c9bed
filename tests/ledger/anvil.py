"""An anvil EVM node for the ledger tests (npm @foundry-rs/anvil, installed by `make tools`)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from web3 import Web3

from infra.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def anvil_binary() -> str | None:
    local = ROOT / ".tools" / "node_modules" / ".bin" / "anvil"
    return str(local) if local.exists() else shutil.which("anvil")


@contextmanager
def anvil_node() -> Iterator[str]:
    binary = anvil_binary()
    if binary is None:
        pytest.skip("anvil is not installed (make tools: npm install @foundry-rs/anvil)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--host", "127.0.0.1", "--silent"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        w3 = Web3(Web3.HTTPProvider(url))
        deadline = time.monotonic() + 30
        while not w3.is_connected():
            assert time.monotonic() < deadline, "anvil did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
