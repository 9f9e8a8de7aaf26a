#!/usr/bin/env bash
# The API reference generates without warnings and the core headers document every public entity
# (scripts/docs, into <build dir>/docs). Skipped only where doxygen is missing, which scripts/test
# cannot meet: its scripts/install-deps installs doxygen.
#   docs_check.sh <build dir> <source dir>
set -euo pipefail
if ! command -v doxygen > /dev/null; then
  echo "SKIP: doxygen is not installed (scripts/install-deps installs it)"
  exit 77
fi
exec "$2/scripts/docs" "$1/docs"
