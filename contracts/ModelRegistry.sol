// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IModelRegistry} from "./interfaces/IModelRegistry.sol";

/// @title ModelRegistry
/// @notice Content-addressed, versioned ONNX models. A model is a unique name with an owner;
///         its versions are immutable (sha256, URIs, tensor spec, decimals, modes, fee) and can
///         only be deprecated.
contract ModelRegistry is IModelRegistry {
    /// @notice Highest output precision a version may declare.
    uint8 public constant MAX_DECIMALS = 18;
    /// @notice Bitmask of every verification mode the protocol defines.
    uint8 public constant ALL_MODES = 0x0f;
    /// @notice The ZK mode bit; it requires a verifier.
    uint8 public constant MODE_ZK = 0x02;
    /// @notice The consensus mode bit: what an optimistic challenge escalates to.
    uint8 public constant MODE_CONSENSUS = 0x01;
    /// @notice The optimistic mode bit; a version allowing it must allow consensus mode too.
    uint8 public constant MODE_OPTIMISTIC = 0x04;
    /// @notice Longest model name in bytes.
    uint256 public constant MAX_NAME_LENGTH = 64;
    /// @notice Smallest `maxOutputBytes`: a canonical error output must always fit.
    uint32 public constant MIN_OUTPUT_BYTES = 416;
    /// @notice Largest `maxOutputBytes` a version may declare; the hub applies its own, lower cap
    ///         (what one block can reveal and store).
    uint32 public constant MAX_OUTPUT_BYTES = 1 << 20;
    /// @notice Longest execution class in bytes.
    uint256 public constant MAX_CLASS_LENGTH = 128;
    /// @notice Largest relative tolerance: 1e6 millionths (100 %).
    uint32 public constant MAX_TOLERANCE_PPM = 1_000_000;
    /// @notice Modes that compare outputs element by element and so can settle a tolerance version:
    ///         consensus and attested.
    uint8 public constant TOLERANCE_MODES = 0x09;

    struct Model {
        address owner;
        uint32 versionCount;
        address pendingOwner;
        string name;
    }

    mapping(bytes32 modelId => Model) private _models;
    mapping(bytes32 modelId => mapping(uint32 version => Version)) private _versions;
    /// @dev keyed by the artifact hash for portable versions, by keccak(hash, classId) for the others
    mapping(bytes32 modelId => mapping(bytes32 artifactKey => uint32 version)) private _versionOfArtifact;

    modifier onlyModelOwner(bytes32 modelId) {
        address owner = _models[modelId].owner;
        if (owner == address(0)) revert UnknownModel(modelId);
        if (owner != msg.sender) revert NotModelOwner(modelId, msg.sender);
        _;
    }

    /// @inheritdoc IModelRegistry
    function registerModel(string calldata name) external returns (bytes32 modelId) {
        _checkName(bytes(name));
        modelId = keccak256(bytes(name));
        if (_models[modelId].owner != address(0)) revert ModelExists(modelId);
        _models[modelId] = Model({owner: msg.sender, versionCount: 0, pendingOwner: address(0), name: name});
        emit ModelRegistered(modelId, msg.sender, name);
    }

    /// @inheritdoc IModelRegistry
    function publishVersion(bytes32 modelId, VersionParams calldata params)
        external
        onlyModelOwner(modelId)
        returns (uint32 version)
    {
        bytes32 classId = _classId(bytes(params.executionClass));
        bytes32 artifactKey = _artifactKey(params.artifactSha256, params.executionClass);
        _validate(modelId, params, artifactKey);
        Model storage model = _models[modelId];
        version = ++model.versionCount;
        Version storage stored = _versions[modelId][version];
        stored.artifactSha256 = params.artifactSha256;
        stored.fee = params.fee;
        stored.decimals = params.decimals;
        stored.modes = params.modes;
        stored.maxOutputBytes = params.maxOutputBytes;
        stored.toleranceUnits = params.toleranceUnits;
        stored.tolerancePpm = params.tolerancePpm;
        stored.verifier = params.verifier;
        stored.publishedAt = uint64(block.number);
        stored.classId = classId;
        stored.uris = params.uris;
        stored.tensorSpec = params.tensorSpec;
        stored.executionClass = params.executionClass;
        _versionOfArtifact[modelId][artifactKey] = version;
        emit VersionPublished(modelId, version, params.artifactSha256, params, classId);
    }

    /// @inheritdoc IModelRegistry
    function deprecateVersion(bytes32 modelId, uint32 version) external onlyModelOwner(modelId) {
        Version storage stored = _storedVersion(modelId, version);
        if (stored.deprecated) revert AlreadyDeprecated(modelId, version);
        stored.deprecated = true;
        emit VersionDeprecated(modelId, version);
    }

    /// @inheritdoc IModelRegistry
    function transferModelOwnership(bytes32 modelId, address newOwner) external onlyModelOwner(modelId) {
        if (newOwner == address(0)) revert InvalidOwner();
        _models[modelId].pendingOwner = newOwner;
        emit ModelOwnershipTransferStarted(modelId, msg.sender, newOwner);
    }

    /// @inheritdoc IModelRegistry
    function acceptModelOwnership(bytes32 modelId) external {
        Model storage model = _models[modelId];
        if (model.owner == address(0)) revert UnknownModel(modelId);
        if (model.pendingOwner != msg.sender) revert NotPendingOwner(modelId, msg.sender);
        address previous = model.owner;
        model.owner = msg.sender;
        model.pendingOwner = address(0);
        emit ModelOwnershipTransferred(modelId, previous, msg.sender);
    }

    /// @inheritdoc IModelRegistry
    function modelIdOf(string calldata name) external pure returns (bytes32) {
        return keccak256(bytes(name));
    }

    /// @inheritdoc IModelRegistry
    function exists(bytes32 modelId) external view returns (bool) {
        return _models[modelId].owner != address(0);
    }

    /// @inheritdoc IModelRegistry
    function getModel(bytes32 modelId) external view returns (address owner, string memory name, uint32 versionCount) {
        Model storage model = _models[modelId];
        if (model.owner == address(0)) revert UnknownModel(modelId);
        return (model.owner, model.name, model.versionCount);
    }

    /// @inheritdoc IModelRegistry
    function getVersion(bytes32 modelId, uint32 version) external view returns (Version memory) {
        return _storedVersion(modelId, version);
    }

    /// @inheritdoc IModelRegistry
    function terms(bytes32 modelId, uint32 version) external view returns (Terms memory) {
        Version storage stored = _storedVersion(modelId, version);
        return Terms({
            owner: _models[modelId].owner,
            fee: stored.fee,
            decimals: stored.decimals,
            modes: stored.modes,
            deprecated: stored.deprecated,
            maxOutputBytes: stored.maxOutputBytes,
            verifier: stored.verifier,
            classId: stored.classId,
            toleranceUnits: stored.toleranceUnits,
            tolerancePpm: stored.tolerancePpm
        });
    }

    /// @inheritdoc IModelRegistry
    function toleranceOf(bytes32 modelId, uint32 version) external view returns (uint32, uint32) {
        Version storage stored = _storedVersion(modelId, version);
        return (stored.toleranceUnits, stored.tolerancePpm);
    }

    /// @inheritdoc IModelRegistry
    function classOf(bytes32 modelId, uint32 version) external view returns (bytes32) {
        return _storedVersion(modelId, version).classId;
    }

    /// @inheritdoc IModelRegistry
    function ownerOf(bytes32 modelId) external view returns (address) {
        return _models[modelId].owner;
    }

    function _storedVersion(bytes32 modelId, uint32 version) private view returns (Version storage) {
        Model storage model = _models[modelId];
        if (model.owner == address(0)) revert UnknownModel(modelId);
        if (version == 0 || version > model.versionCount) revert UnknownVersion(modelId, version);
        return _versions[modelId][version];
    }

    function _validate(bytes32 modelId, VersionParams calldata params, bytes32 artifactKey) private view {
        if (params.artifactSha256 == bytes32(0)) revert InvalidArtifactHash();
        uint32 existing = _versionOfArtifact[modelId][artifactKey];
        if (existing != 0) revert DuplicateArtifact(modelId, existing);
        if (params.uris.length == 0) revert InvalidUris();
        for (uint256 i = 0; i < params.uris.length; ++i) {
            if (bytes(params.uris[i]).length == 0) revert InvalidUris();
        }
        if (params.decimals > MAX_DECIMALS) revert InvalidDecimals(params.decimals, MAX_DECIMALS);
        if (
            params.modes == 0 || params.modes & ~ALL_MODES != 0
                || (params.modes & MODE_OPTIMISTIC != 0 && params.modes & MODE_CONSENSUS == 0)
        ) revert InvalidModes(params.modes);
        if (params.modes & MODE_ZK != 0 && params.verifier == address(0)) revert VerifierRequired();
        if (params.maxOutputBytes < MIN_OUTPUT_BYTES || params.maxOutputBytes > MAX_OUTPUT_BYTES) {
            revert InvalidMaxOutputBytes(params.maxOutputBytes, MIN_OUTPUT_BYTES, MAX_OUTPUT_BYTES);
        }
        if (
            params.tolerancePpm > MAX_TOLERANCE_PPM
                || ((params.toleranceUnits | params.tolerancePpm) != 0 && params.modes & ~TOLERANCE_MODES != 0)
        ) revert InvalidTolerance(params.tolerancePpm, params.modes);
        if (params.tensorSpec.length == 0) revert InvalidTensorSpec();
        (IOSpec[] memory inputs, IOSpec[] memory outputs) = abi.decode(params.tensorSpec, (IOSpec[], IOSpec[]));
        if (inputs.length == 0 || outputs.length == 0) revert InvalidTensorSpec();
    }

    /// @dev The id of the machine part of an execution class (everything before the last '/'), which
    ///      operators register for; zero for the empty (portable) class. The registry checks only the
    ///      shape: the canonical form is the publisher's and the relayers' to check, and a class no
    ///      relayer recognises simply has nobody to draw.
    function _classId(bytes calldata text) private pure returns (bytes32) {
        uint256 length = text.length;
        if (length == 0) return bytes32(0);
        if (length > MAX_CLASS_LENGTH) revert InvalidExecutionClass();
        uint256 cut = length;
        while (cut != 0 && text[cut - 1] != "/") --cut;
        // A machine part and a settings part, both non-empty: "m/s" at least.
        if (cut < 2 || cut == length) revert InvalidExecutionClass();
        for (uint256 i = 0; i < length; ++i) {
            if (uint8(text[i]) <= 0x20 || uint8(text[i]) >= 0x7f) revert InvalidExecutionClass();
        }
        return keccak256(text[:cut - 1]);
    }

    /// @dev The same artifact may be published once per execution class (machine and settings): each is
    ///      a different promise.
    function _artifactKey(bytes32 sha, string calldata executionClass) private pure returns (bytes32) {
        return bytes(executionClass).length == 0 ? sha : keccak256(abi.encode(sha, executionClass));
    }

    /// @dev Names are addressed as `name@version` on the command line: '@', upper case, spaces and
    ///      anything outside [a-z0-9._-] would publish a model nobody can name.
    function _checkName(bytes calldata name) private pure {
        uint256 length = name.length;
        if (length == 0 || length > MAX_NAME_LENGTH) revert InvalidModelName();
        for (uint256 i = 0; i < length; ++i) {
            bytes1 c = name[i];
            bool alnum = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);
            if (!alnum && (i == 0 || (c != 0x2d && c != 0x2e && c != 0x5f))) revert InvalidModelName();
        }
    }
}
