#!/usr/bin/env bash
# Debian's headless Chromium for metalab's browser tests (tests/browser) and benchmarks.
#
#   bash scripts/chromium.sh   # install chromium and chromium-driver with apt if
#                              # /usr/bin/chromium is missing; print the browser's path
#
# Playwright drives this browser through executable_path; it never downloads one of its
# own (`playwright install` needs the network at test time and an unpinned binary).
# Installing needs root (apt-get); the path is printed on the last line of stdout, and
# every apt message goes to stderr so callers can read that line alone.
set -euo pipefail

BROWSER="${METALAB_CHROMIUM:-/usr/bin/chromium}"

install_browser() {
  if [ ! -x "$BROWSER" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "chromium.sh: $BROWSER is missing and installing it needs root (apt-get install chromium chromium-driver)" >&2
      exit 1
    fi
    echo "chromium.sh: installing Debian's chromium (no $BROWSER)" >&2
    # Another session may be installing at the same moment: wait for dpkg's lock.
    local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y chromium chromium-driver >&2 ||
      { "${apt[@]}" update >&2 &&
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y chromium chromium-driver >&2; }
  fi
  if [ ! -x "$BROWSER" ]; then
    echo "chromium.sh: no executable $BROWSER after installing" >&2
    exit 1
  fi
}

install_browser
echo "$BROWSER"
