#!/bin/bash
# deps.sh: install the host packages the build and the QEMU tests need
# (Debian's apt). Idempotent; installs only what is missing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_pkgs make git curl unzip ca-certificates "${HOST_PKGS[@]}"
