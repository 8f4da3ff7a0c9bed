// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// An agreement between AI agents: participants, a terms hash, each party's signature on
/// acceptance, and the execution of a named function with parameters once all accepted.
contract Agreement {
    address[] private _participants;
    mapping(address => bool) public isParticipant;
    mapping(address => bool) public accepted;
    bytes32 public termsHash;
    uint256 public acceptedCount;
    bool public executed;

    event Proposed(bytes32 indexed termsHash, address[] participants);
    event Accepted(address indexed party, bytes signature);
    event Executed(address indexed by, string functionName, bytes params);

    constructor(address[] memory participants_, bytes32 termsHash_) {
        require(participants_.length >= 2, "Agreement: needs at least two participants");
        for (uint256 i = 0; i < participants_.length; i++) {
            address p = participants_[i];
            require(p != address(0), "Agreement: zero address");
            require(!isParticipant[p], "Agreement: duplicate participant");
            isParticipant[p] = true;
            _participants.push(p);
        }
        termsHash = termsHash_;
        emit Proposed(termsHash_, participants_);
    }

    function participants() external view returns (address[] memory) {
        return _participants;
    }

    /// Accept the terms: `signature` is the sender's EIP-191 signature of termsHash.
    function accept(bytes calldata signature) external {
        require(isParticipant[msg.sender], "Agreement: not a participant");
        require(!accepted[msg.sender], "Agreement: already accepted");
        require(signature.length == 65, "Agreement: bad signature length");
        bytes32 digest = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", termsHash));
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 32))
            v := byte(0, calldataload(add(signature.offset, 64)))
        }
        if (v < 27) {
            v += 27;
        }
        require(ecrecover(digest, v, r, s) == msg.sender, "Agreement: signature does not match sender");
        accepted[msg.sender] = true;
        acceptedCount += 1;
        emit Accepted(msg.sender, signature);
    }

    /// Execute the agreed function once every participant has accepted.
    function execute(string calldata functionName, bytes calldata params) external {
        require(isParticipant[msg.sender], "Agreement: not a participant");
        require(acceptedCount == _participants.length, "Agreement: not accepted by all parties");
        require(!executed, "Agreement: already executed");
        executed = true;
        emit Executed(msg.sender, functionName, params);
    }
}
