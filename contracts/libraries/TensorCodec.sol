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

    /// @notice Whether `encoded` is exactly what `encode` gives for the tensors it decodes to: every offset
    ///         where the canonical layout puts it (no overlap, no gap, nothing after the end), zero padding,
    ///         and shape and decimals words within uint32 and uint8. Linear in the number of tensors and
    ///         shape dimensions, and never reverts: bytes whose offsets overlap can decode to far more
    ///         memory than their length, so they are refused before anything decodes them.
    function isCanonical(bytes calldata encoded) internal pure returns (bool) {
        uint256 n = encoded.length;
        if (n < 64 || n % 32 != 0 || _word(encoded, 0) != 32) return false;
        uint256 count = _word(encoded, 32);
        if (count > (n - 64) / 32) return false;
        uint256 end = count * 32; // tensor offsets count from the first head, at byte 64
        for (uint256 i = 0; i < count; ++i) {
            if (_word(encoded, 64 + 32 * i) != end) return false;
            uint256 size = _tensorSize(encoded, 64 + end);
            if (size == 0) return false;
            end += size;
        }
        return 64 + end == n;
    }

    /// @dev The canonical byte length of the tensor encoded from `start`, or 0 when it is not canonical.
    function _tensorSize(bytes calldata e, uint256 start) private pure returns (uint256) {
        uint256 n = e.length;
        if (start + 128 + 32 > n || _word(e, start) != 128 || _word(e, start + 96) > type(uint8).max) return 0;
        // The name: length, then its bytes padded with zeros to whole words.
        uint256 p = 128;
        uint256 len = _word(e, start + p);
        if (len > n) return 0;
        uint256 words = (len + 31) / 32;
        if (start + p + 32 + 32 * words > n) return 0;
        if (len % 32 != 0 && _word(e, start + p + 32 * words) << (8 * (len % 32)) != 0) return 0;
        p += 32 + 32 * words;
        // The shape: length, then one uint32 a word.
        if (_word(e, start + 32) != p || start + p + 32 > n) return 0;
        len = _word(e, start + p);
        if (len > (n - start - p - 32) / 32) return 0;
        for (uint256 i = 0; i < len; ++i) {
            if (_word(e, start + p + 32 + 32 * i) > type(uint32).max) return 0;
        }
        p += 32 + 32 * len;
        // The data: length, then one int256 a word.
        if (_word(e, start + 64) != p || start + p + 32 > n) return 0;
        len = _word(e, start + p);
        if (len > (n - start - p - 32) / 32) return 0;
        return p + 32 + 32 * len;
    }

    function _word(bytes calldata e, uint256 start) private pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := calldataload(add(e.offset, start))
        }
    }

    /// @notice Whether two decoded outputs agree under a tolerance: the same tensors (names, shapes,
    ///         decimals, lengths; each shape's product its data length) and every element pair within
    ///         |a - b| <= units + ppm * max(|a|, |b|) / 1e6 (the product rounded down). Exact comparison is
    ///         units = ppm = 0.
    function within(Tensor[] memory a, Tensor[] memory b, uint256 units, uint256 ppm) internal pure returns (bool) {
        if (a.length != b.length) return false;
        for (uint256 t = 0; t < a.length; ++t) {
            Tensor memory x = a[t];
            Tensor memory y = b[t];
            if (x.decimals != y.decimals || x.data.length != y.data.length) return false;
            if (_elements(x.shape) != x.data.length) return false;
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

    /// @dev The product of a shape's dimensions (reverts on overflow, which a comparison takes as disagreement).
    function _elements(uint32[] memory shape) private pure returns (uint256 product) {
        product = 1;
        for (uint256 i = 0; i < shape.length; ++i) {
            product *= shape[i];
        }
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
