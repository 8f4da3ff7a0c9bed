"""Compile the contracts with solc-js (npm ``solc``) into ``artifacts/<Name>.json``.

    python processors/ledger/contracts/build.py [--solcjs PATH] [--check]

``--check`` compiles into memory and exits 1 when a committed artifact differs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
SOLC_VERSION = "0.8.37"
CONTRACTS = ("Agreement", "AuditAnchor")


def find_solcjs() -> str | None:
    for candidate in (HERE.parents[2] / ".tools" / "node_modules" / ".bin" / "solcjs", shutil.which("solcjs")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def compile_all(solcjs: str) -> dict[str, dict[str, object]]:
    """Standard-JSON compile of every contract; returns name -> artifact."""
    request = {
        "language": "Solidity",
        "sources": {f"{name}.sol": {"content": (HERE / f"{name}.sol").read_text()} for name in CONTRACTS},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": "cancun",
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    script = (
        "const solc=require(process.argv[1]);let s='';process.stdin.on('data',d=>s+=d);"
        "process.stdin.on('end',()=>process.stdout.write(solc.compile(s)));"
    )
    solc_module = str(Path(solcjs).resolve().parents[1] / "solc")
    out = subprocess.run(
        ["node", "-e", script, solc_module], input=json.dumps(request), capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    errors = [e for e in result.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise SystemExit("solc errors:\n" + "\n".join(e["formattedMessage"] for e in errors))
    artifacts: dict[str, dict[str, object]] = {}
    for name in CONTRACTS:
        compiled = result["contracts"][f"{name}.sol"][name]
        artifacts[name] = {
            "contractName": name,
            "compiler": f"solc-js {SOLC_VERSION}",
            "abi": compiled["abi"],
            "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
        }
    return artifacts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--solcjs", default=None)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    solcjs = args.solcjs or find_solcjs()
    if solcjs is None:
        print("solcjs not found: npm install solc (make tools)", file=sys.stderr)
        return 2
    artifacts = compile_all(solcjs)
    ARTIFACTS.mkdir(exist_ok=True)
    stale = []
    for name, artifact in artifacts.items():
        text = json.dumps(artifact, indent=2, sort_keys=True) + "\n"
        path = ARTIFACTS / f"{name}.json"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"artifacts differ from a fresh compile: {stale}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
