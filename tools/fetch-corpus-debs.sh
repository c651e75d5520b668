#!/usr/bin/env bash
# Downloads the pinned .deb files of the real-text corpus (tools/corpus-packages.tsv: exact versions
# and SHA-256) into DIR (default .corpus-debs/), checks every checksum and prints the total size.
# Needs Debian 12's package archive (apt-get update once); no root needed for the download itself.
# The folder is all tools/make_corpus.sh needs (docs/corpus.md: carry it to the GPU host).
set -euo pipefail
dir=${1:-.corpus-debs}
list=$(dirname "$0")/corpus-packages.tsv
mkdir -p "$dir"
total=0
while IFS=$'\t' read -r pkg version role _ sha _; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  file="$dir/${pkg}_${version//:/%3a}_all.deb"
  if [[ ! -f "$file" ]] || ! echo "$sha  $file" | sha256sum --check --status; then
    if ! (cd "$dir" && apt-get download -q "$pkg=$version") > "$dir/apt-download.log" 2>&1; then
      cat "$dir/apt-download.log" >&2
    fi
  fi
  [[ -f "$file" ]] || { echo "fetch-corpus-debs: $pkg=$version was not downloaded (still in the archive?)" >&2; exit 1; }
  echo "$sha  $file" | sha256sum --check --status \
    || { echo "fetch-corpus-debs: $file: SHA-256 differs from $list" >&2; exit 1; }
  size=$(stat -c %s "$file")
  printf '%-26s %-24s %-15s %9d bytes\n' "$pkg" "$version" "$role" "$size"
  total=$((total + size))
done < "$list"
awk -v t="$total" 'BEGIN { printf "total %d bytes = %.1f MiB in '"$dir"'\n", t, t / 1048576 }'
