// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// Anchors of the platform's audit log: Merkle roots of signed checkpoints.
/// Only the platform's key (the deployer) may anchor.
contract AuditAnchor {
    address public immutable platform;
    mapping(uint64 => bytes32) public rootAt;
    uint64 public latestSize;

    event Anchored(bytes32 indexed root, uint64 treeSize, uint256 timestamp);

    constructor() {
        platform = msg.sender;
    }

    function anchor(bytes32 root, uint64 treeSize) external {
        require(msg.sender == platform, "AuditAnchor: only the platform may anchor");
        require(treeSize >= latestSize, "AuditAnchor: tree size went backwards");
        require(rootAt[treeSize] == bytes32(0) || rootAt[treeSize] == root, "AuditAnchor: size already anchored with another root");
        rootAt[treeSize] = root;
        latestSize = treeSize;
        emit Anchored(root, treeSize, block.timestamp);
    }
}
