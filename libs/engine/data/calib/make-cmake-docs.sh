#!/usr/bin/env bash
# Rebuilds cmake-docs.txt.gz, the built-in calibration set `cmake-docs`, from Debian's cmake-data package
# (CMake's reStructuredText documentation, BSD-3-Clause, Kitware: see NOTICE beside this file).
# Needs the package installed (apt-get install cmake-data) at the version in NOTICE for a byte-identical file.
# Output: the Help/{manual,command,policy,release,cpack_gen}/*.rst files in sorted path order, each as is,
# separated by one blank line; gzip -9 -n (no name or time stamp, so the file is reproducible).
set -euo pipefail
help=${CMAKE_HELP_DIR:-$(ls -d /usr/share/cmake-*/Help | sort -V | tail -1)}
out=$(cd "$(dirname "$0")" && pwd)/cmake-docs.txt.gz
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for d in manual command policy release cpack_gen; do
  find "$help/$d" -name '*.rst' -type f
done | LC_ALL=C sort | while read -r f; do
  cat "$f"
  echo
done > "$tmp"
gzip -9 -n -c "$tmp" > "$out.tmp"
mv "$out.tmp" "$out"
echo "$out: $(wc -c < "$tmp") bytes of text from $help, $(wc -c < "$out") gzipped"
