// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IModelRegistry
/// @notice Content-addressed, versioned ONNX models with their tensor spec, precision and fee.
interface IModelRegistry {
    /// @notice What a new version is published with. Versions are immutable once published.
    /// @param artifactSha256 sha256 of the ONNX artifact bytes
    /// @param uris where the artifact can be fetched (file://, http(s)://); at least one
    /// @param tensorSpec abi.encode(IOSpec[] inputs, IOSpec[] outputs), see `IOSpec`
    /// @param decimals fixed-point precision of the outputs
    /// @param modes bitmask of allowed verification modes (MODE_* constants of the hub)
    /// @param fee model owner's fee per inference, in the fee token
    /// @param maxOutputBytes largest encoded output a request settles with; a larger output is the
    ///        canonical error OUTPUT_TOO_LARGE. At least the length of an error output (416 bytes)
    /// @param verifier ZK verifier contract, required when the ZK mode is allowed
    /// @param executionClass where outputs are bit-identical: `runtime==version/cpu-class/settings`, such
    ///        as `onnxruntime==1.32.0/x86-64-fma3/t1-seq-opt_basic-prepack`. Committees are drawn only
    ///        from operators registered for the machine part (everything before the last '/'), and
    ///        every member runs the settings part. Empty: portable, the owner's word that the outputs
    ///        agree on every CPU class and runtime version under the pinned settings (drawn from every
    ///        operator registered for the model without a class)
    /// @param toleranceUnits the agreement rule's absolute part, in units of the last decimal: two outputs
    ///        agree when every element pair satisfies |a - b| <= toleranceUnits + tolerancePpm * max(|a|, |b|)
    ///        / 1e6 (and names, shapes and decimals are equal). Both zero: exact (equal digests only)
    /// @param tolerancePpm the agreement rule's relative part, in millionths (at most 1e6)
    // solhint-disable-next-line gas-struct-packing
    struct VersionParams {
        bytes32 artifactSha256;
        string[] uris;
        bytes tensorSpec;
        uint8 decimals;
        uint8 modes;
        uint96 fee;
        uint32 maxOutputBytes;
        address verifier;
        string executionClass;
        uint32 toleranceUnits;
        uint32 tolerancePpm;
    }

    /// @notice One input or output of a model: its name, ONNX element type and shape
    ///         (0 marks a dynamic dimension, such as the batch).
    struct IOSpec {
        string name;
        uint8 dtype;
        uint32[] shape;
    }

    /// @notice A published version as stored.
    struct Version {
        bytes32 artifactSha256;
        uint96 fee;
        uint8 decimals;
        uint8 modes;
        bool deprecated;
        uint32 maxOutputBytes;
        /// @dev the agreement rule (both zero: exact), packed beside the fee so `terms` reads no extra slot
        uint32 toleranceUnits;
        uint32 tolerancePpm;
        address verifier;
        uint64 publishedAt;
        /// @dev keccak256 of the machine part of `executionClass`; zero when portable
        bytes32 classId;
        string[] uris;
        bytes tensorSpec;
        string executionClass;
    }

    /// @notice The settlement-relevant terms of a version, in one call.
    struct Terms {
        address owner;
        uint96 fee;
        uint8 decimals;
        uint8 modes;
        bool deprecated;
        uint32 maxOutputBytes;
        address verifier;
        /// @dev the class operators must be registered for to be drawn; zero when portable
        bytes32 classId;
        /// @dev the agreement rule; both zero: exact
        uint32 toleranceUnits;
        uint32 tolerancePpm;
    }

    /// @notice A model name was claimed.
    /// @param modelId keccak256 of the name
    /// @param owner the model owner
    /// @param name the model name
    event ModelRegistered(bytes32 indexed modelId, address indexed owner, string name);

    /// @notice A version was published; carries everything an indexer needs.
    /// @param modelId the model
    /// @param version the new version number (1-based)
    /// @param artifactSha256 sha256 of the artifact
    /// @param params everything it was published with (artifact, URIs, spec, decimals, modes, fee, output cap,
    ///        verifier, execution class, agreement rule)
    /// @param classId keccak256 of the machine part of the execution class (zero: portable)
    event VersionPublished(
        bytes32 indexed modelId,
        uint32 indexed version,
        bytes32 indexed artifactSha256,
        VersionParams params,
        bytes32 classId
    );

    /// @notice A version was deprecated: new requests for it are refused.
    /// @param modelId the model
    /// @param version the deprecated version
    event VersionDeprecated(bytes32 indexed modelId, uint32 indexed version);

    /// @notice The owner nominated a new owner, who must accept.
    /// @param modelId the model
    /// @param currentOwner the owner now
    /// @param pendingOwner the nominated owner
    event ModelOwnershipTransferStarted(bytes32 indexed modelId, address indexed currentOwner, address indexed pendingOwner);

    /// @notice Ownership of a model changed hands.
    /// @param modelId the model
    /// @param previousOwner the former owner
    /// @param newOwner the new owner
    event ModelOwnershipTransferred(bytes32 indexed modelId, address indexed previousOwner, address indexed newOwner);

    /// @notice The name is not 1 to 64 bytes of [a-z0-9._-] starting with a letter or digit.
    error InvalidModelName();
    /// @notice `maxOutputBytes` is below an error output's length or above the registry's cap.
    error InvalidMaxOutputBytes(uint32 maxOutputBytes, uint32 min, uint32 max);
    /// @notice A model with this name exists already.
    error ModelExists(bytes32 modelId);
    /// @notice No model has this id.
    error UnknownModel(bytes32 modelId);
    /// @notice The model has no such version.
    error UnknownVersion(bytes32 modelId, uint32 version);
    /// @notice The caller does not own the model.
    error NotModelOwner(bytes32 modelId, address caller);
    /// @notice The caller is not the nominated owner.
    error NotPendingOwner(bytes32 modelId, address caller);
    /// @notice The artifact hash is zero.
    error InvalidArtifactHash();
    /// @notice The execution class is not empty and not `machine/settings` of at most 128 bytes.
    error InvalidExecutionClass();
    /// @notice The same artifact is published already as `version` of this model, in the same execution
    ///         class (machine and settings).
    error DuplicateArtifact(bytes32 modelId, uint32 version);
    /// @notice No artifact URI was given, or one is empty.
    error InvalidUris();
    /// @notice The tensor spec has no inputs or no outputs.
    error InvalidTensorSpec();
    /// @notice `decimals` is above the supported maximum.
    error InvalidDecimals(uint8 decimals, uint8 max);
    /// @notice The modes bitmask is empty, has unknown bits, or allows optimistic mode without consensus mode
    ///         (a challenge escalates to a consensus request).
    error InvalidModes(uint8 modes);
    /// @notice ZK mode was allowed without a verifier contract.
    error VerifierRequired();
    /// @notice The version is deprecated already.
    error AlreadyDeprecated(bytes32 modelId, uint32 version);
    /// @notice The relative tolerance is above 1e6 (100 %), or a tolerance was given with a mode that
    ///         cannot compare outputs (consensus and attested compare them element by element).
    error InvalidTolerance(uint32 tolerancePpm, uint8 modes);
    /// @notice The new owner is the zero address.
    error InvalidOwner();

    /// @notice Claims a model name; the caller becomes its owner.
    /// @param name unique model name, 1 to 64 bytes
    /// @return modelId keccak256 of the name
    function registerModel(string calldata name) external returns (bytes32 modelId);

    /// @notice Publishes a new immutable version of a model the caller owns.
    /// @param modelId the model
    /// @param params the version's artifact, spec, precision, modes and fee
    /// @return version the new version number (1-based)
    function publishVersion(bytes32 modelId, VersionParams calldata params) external returns (uint32 version);

    /// @notice Deprecates a version: existing requests settle, new ones are refused.
    /// @param modelId the model
    /// @param version the version to deprecate
    function deprecateVersion(bytes32 modelId, uint32 version) external;

    /// @notice Nominates a new owner for a model; takes effect when accepted.
    /// @param modelId the model
    /// @param newOwner the nominated owner
    function transferModelOwnership(bytes32 modelId, address newOwner) external;

    /// @notice Accepts a pending ownership nomination.
    /// @param modelId the model
    function acceptModelOwnership(bytes32 modelId) external;

    /// @notice The id of a model name.
    /// @param name the model name
    /// @return the model id (keccak256 of the name)
    function modelIdOf(string calldata name) external pure returns (bytes32);

    /// @notice Whether a model exists.
    /// @param modelId the model
    /// @return true when registered
    function exists(bytes32 modelId) external view returns (bool);

    /// @notice A model's owner, name and number of versions.
    /// @param modelId the model
    /// @return owner the owner
    /// @return name the name
    /// @return versionCount versions published so far
    function getModel(bytes32 modelId) external view returns (address owner, string memory name, uint32 versionCount);

    /// @notice A published version.
    /// @param modelId the model
    /// @param version the version number
    /// @return the stored version
    function getVersion(bytes32 modelId, uint32 version) external view returns (Version memory);

    /// @notice The settlement terms of a version; reverts for unknown models or versions.
    /// @param modelId the model
    /// @param version the version number
    /// @return the owner, fee, decimals, modes, deprecation flag, verifier and class
    function terms(bytes32 modelId, uint32 version) external view returns (Terms memory);

    /// @notice The execution class committees for a version are drawn within; reverts for unknown versions.
    /// @param modelId the model
    /// @param version the version number
    /// @return classId keccak256 of the machine part of the class, zero when portable
    function classOf(bytes32 modelId, uint32 version) external view returns (bytes32 classId);

    /// @notice The agreement rule of a version; reverts for unknown versions.
    /// @param modelId the model
    /// @param version the version number
    /// @return units absolute part in units of the last decimal
    /// @return ppm relative part in millionths (both zero: exact)
    function toleranceOf(bytes32 modelId, uint32 version) external view returns (uint32 units, uint32 ppm);

    /// @notice The current owner of a model.
    /// @param modelId the model
    /// @return the owner, or zero for an unknown model
    function ownerOf(bytes32 modelId) external view returns (address);
}
