#!/usr/bin/env bash
# Download the image's pinned inputs (images/inputs.lock) into images/build/dl/ (or DIR),
# checking each file's SHA-256. A file already there with the right hash is kept; one with
# another hash is refused (and left for inspection as NAME.rejected).
#
#   images/fetch.sh [--dl DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dl="$here/build/dl"
while [ $# -gt 0 ]; do
  case "$1" in
    --dl) dl="$2"; shift 2 ;;
    *) echo "fetch.sh: unknown argument $1 (usage: fetch.sh [--dl DIR])" >&2; exit 2 ;;
  esac
done
mkdir -p "$dl"
status=0
while read -r name sha url; do
  case "$name" in ''|'#'*) continue ;; esac
  file="$dl/$(basename "$url")"
  if [ -f "$file" ] && echo "$sha  $file" | sha256sum --check --status; then
    continue
  fi
  echo "fetching $name: $url" >&2
  curl --fail --silent --show-error --location --retry 3 -o "$file.part" "$url"
  if echo "$sha  $file.part" | sha256sum --check --status; then
    mv "$file.part" "$file"
  else
    mv "$file.part" "$file.rejected"
    echo "fetch.sh: $name: $url has SHA-256 $(sha256sum "$file.rejected" | cut -d' ' -f1), inputs.lock pins $sha; refused (kept as $file.rejected)" >&2
    status=1
  fi
done < "$here/inputs.lock"
exit $status
