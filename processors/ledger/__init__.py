"""The ledger service: agents' signed transactions on an EVM chain through web3.

* ``contracts/`` — Solidity sources and their committed solc-js artifacts;
* ``keys`` — agent identities (Ethereum accounts) in the data dir;
* ``requests`` — the signed request format (pure);
* ``chain`` — the web3 connection (in-process eth-tester or any JSON-RPC node);
* ``processor`` — the engine processor: ledger.transactions → ledger.receipts;
* ``binding`` — the service-binding adapter for CSP channels.
"""
