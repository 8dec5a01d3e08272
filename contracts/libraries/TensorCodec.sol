// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title TensorCodec
/// @notice The one tensor codec of verinfer: inputs and outputs travel as `abi.encode(Tensor[])`
///         with fixed-point values (`real = data / 10**decimals`). The Python twin lives in
///         `offchain/verinfer/models/codec.py`; both must change together.
library TensorCodec {
    /// @notice A named fixed-point tensor in row-major order.
    struct Tensor {
        string name;
        uint32[] shape;
        int256[] data;
        uint8 decimals;
    }

    /// @notice Name of the single tensor of a canonical error output.
    string internal constant ERROR_NAME = "error";

    // Canonical error codes: honest operators that cannot run a model on an input all
    // produce `errorOutput(code)`, so they still agree and the request settles as Failed.
    uint8 internal constant ERR_MALFORMED_INPUT = 1; // input bytes are not abi-encoded Tensor[]
    uint8 internal constant ERR_INPUT_NAMES = 2; // input names differ from the tensor spec
    uint8 internal constant ERR_INPUT_SHAPE = 3; // shape or element count differs from the spec
    uint8 internal constant ERR_INPUT_VALUE = 4; // a value does not fit the input dtype
    uint8 internal constant ERR_NON_FINITE = 5; // the model produced NaN or Inf
    uint8 internal constant ERR_TIMEOUT = 6; // the model exceeded the per-inference time limit
    uint8 internal constant ERR_RUNTIME = 7; // the runtime rejected the input
    uint8 internal constant ERR_INPUT_UNAVAILABLE = 8; // external input missing or hash mismatch
    uint8 internal constant ERR_OUTPUT_TOO_LARGE = 9; // the encoded output exceeds the request's maxOutputBytes
    uint8 internal constant ERR_OUTPUT_SPEC = 10; // the model's outputs differ from the declared output spec

    /// @dev Byte length of `errorOutput(code)` for any code: the layout is fixed.
    uint256 internal constant ERROR_OUTPUT_LENGTH = 416;
    /// @dev keccak256(errorOutput(ERR_INPUT_UNAVAILABLE)): the answer of a member that could not get an
    ///      external input. Modes never slash it, nor anyone when it is the accepted answer (the
    ///      requester decides who gets its input; pinned by tests against errorOutput).
    bytes32 internal constant INPUT_UNAVAILABLE_DIGEST =
        0xc9e0a8cf6fe1df261ad5f38130aafed0631b5eb84fbfe02853710c0ca0b0a2b4;

    /// @notice No tensor in the list has the requested name.
    error TensorNotFound(string name);
    /// @notice An element index lies past the end of a tensor's data.
    error TensorIndexOutOfRange(uint256 index, uint256 length);

    /// @notice Encodes tensors into the wire format.
    function encode(Tensor[] memory tensors) internal pure returns (bytes memory) {
        return abi.encode(tensors);
    }

    /// @notice Decodes the wire format; reverts on malformed bytes.
    function decode(bytes memory encoded) internal pure returns (Tensor[] memory) {
        return abi.decode(encoded, (Tensor[]));
    }

    /// @notice Decodes the wire format from calldata; reverts on malformed bytes.
    function decodeCalldata(bytes calldata encoded) internal pure returns (Tensor[] memory) {
        return abi.decode(encoded, (Tensor[]));
    }

    /// @notice The canonical error output for `code`.
    function errorOutput(uint8 code) internal pure returns (bytes memory) {
        Tensor[] memory tensors = new Tensor[](1);
        uint32[] memory shape = new uint32[](1);
        shape[0] = 1;
        int256[] memory data = new int256[](1);
        data[0] = int256(uint256(code));
        tensors[0] = Tensor(ERROR_NAME, shape, data, 0);
        return abi.encode(tensors);
    }

    /// @notice Returns the error code if `encoded` is a canonical error output, else 0.
    /// @dev Cheap enough for the hub: a length check, one word read and one hash.
    function errorCodeOf(bytes memory encoded) internal pure returns (uint8) {
        if (encoded.length != ERROR_OUTPUT_LENGTH) return 0;
        uint256 last;
        assembly ("memory-safe") {
            last := mload(add(encoded, ERROR_OUTPUT_LENGTH))
        }
        if (last == 0 || last > type(uint8).max) return 0;
        uint8 code = uint8(last);
        return keccak256(encoded) == keccak256(errorOutput(code)) ? code : 0;
    }

    /// @notice Whether two decoded outputs agree under a tolerance: the same tensors (names, shapes,
    ///         decimals, lengths) and every element pair within |a - b| <= units + ppm * max(|a|, |b|) / 1e6
    ///         (the product rounded down). Exact comparison is units = ppm = 0.
    function within(Tensor[] memory a, Tensor[] memory b, uint256 units, uint256 ppm) internal pure returns (bool) {
        if (a.length != b.length) return false;
        for (uint256 t = 0; t < a.length; ++t) {
            Tensor memory x = a[t];
            Tensor memory y = b[t];
            if (x.decimals != y.decimals || x.data.length != y.data.length) return false;
            if (keccak256(bytes(x.name)) != keccak256(bytes(y.name))) return false;
            if (keccak256(abi.encodePacked(x.shape)) != keccak256(abi.encodePacked(y.shape))) return false;
            int256[] memory xs = x.data;
            int256[] memory ys = y.data;
            for (uint256 i = 0; i < xs.length; ++i) {
                if (!_close(xs[i], ys[i], units, ppm)) return false;
            }
        }
        return true;
    }

    /// @dev |p - q| <= units + floor(ppm * max(|p|, |q|) / 1e6), without overflow for any int256.
    function _close(int256 p, int256 q, uint256 units, uint256 ppm) private pure returns (bool) {
        uint256 diff;
        uint256 largest;
        unchecked {
            // Two's complement: the wrapped difference of the larger minus the smaller is exact.
            diff = p >= q ? uint256(p) - uint256(q) : uint256(q) - uint256(p);
            uint256 absP = p < 0 ? uint256(-(p + 1)) + 1 : uint256(p);
            uint256 absQ = q < 0 ? uint256(-(q + 1)) + 1 : uint256(q);
            largest = absP > absQ ? absP : absQ;
        }
        if (diff <= units) return true;
        // diff - units <= floor(largest * ppm / 1e6), the product in 512 bits.
        return ppm != 0 && diff - units <= Math.mulDiv(largest, ppm, 1e6);
    }

    /// @notice The first tensor named `name`; reverts with TensorNotFound otherwise.
    function find(Tensor[] memory tensors, string memory name) internal pure returns (Tensor memory) {
        bytes32 wanted = keccak256(bytes(name));
        for (uint256 i = 0; i < tensors.length; ++i) {
            if (keccak256(bytes(tensors[i].name)) == wanted) return tensors[i];
        }
        revert TensorNotFound(name);
    }

    /// @notice Element `index` (row-major) of a tensor as a fixed-point integer.
    function at(Tensor memory tensor, uint256 index) internal pure returns (int256) {
        if (index >= tensor.data.length) revert TensorIndexOutOfRange(index, tensor.data.length);
        return tensor.data[index];
    }
}
