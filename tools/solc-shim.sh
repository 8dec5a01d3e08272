#!/usr/bin/env bash
# Installed as $SOLCX_BINARY_PATH/solc-v<version>: runs the npm compiler through node.
here="$(cd "$(dirname "$(readlink -f "$0")")" && pwd)"
exec node "$here/solc-wrapper.js" "$@"
