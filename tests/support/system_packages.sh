#!/usr/bin/env bash
# The Debian packages the tests need besides Python's: headless Chromium and its driver for the
# status page's browser tests (a browser downloaded at run time is not reachable), and a CJK
# font so the page's Chinese renders in their screenshots. Installs what is missing; given package
# names instead, those.
set -euo pipefail

needed=()
if [ $# -gt 0 ]; then
  # Named packages whose command has the package's name (docker-compose, for `make image-test`).
  for package in "$@"; do command -v "$package" >/dev/null || needed+=("$package"); done
else
  command -v chromium >/dev/null || needed+=(chromium)
  command -v chromedriver >/dev/null || needed+=(chromium-driver)
  [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || needed+=(fonts-wqy-microhei)
fi
[ ${#needed[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
  echo "The tests need the Debian packages: ${needed[*]}. Install them (apt-get install ${needed[*]}) and run again." >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "The tests need Chromium, its WebDriver (chromedriver) and a CJK font: ${needed[*]} on Debian." >&2
  exit 1
fi
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -q -y "${needed[@]}"
