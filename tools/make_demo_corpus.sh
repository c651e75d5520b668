#!/usr/bin/env bash
# Builds the demo corpus from real text in Debian packages, in three domains, and tokenizes it:
#   fortunes  the `fortunes` package (quotations, poems, jokes; /usr/share/games/fortunes)
#   jargon    the Jargon File (`jargon-text`)
#   licenses  the licence texts every Debian system has (/usr/share/common-licenses)
# Output (in $1, default runs/demo): corpus/*.txt, tokenizer.json, data/<domain>_{train,val}_*.bin
set -euo pipefail
out=${1:-runs/demo}
moda=${MODA:-build/moda}
vocab=${VOCAB:-4096}
for p in fortunes jargon-text; do
  if ! dpkg -s "$p" >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq fortunes jargon-text
    break
  fi
done
mkdir -p "$out/corpus" "$out/data"
# fortune files separate entries with lines holding a single '%'; keep the text, drop the markers.
find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort \
  | xargs cat | grep -v '^%$' > "$out/corpus/fortunes.txt"
zcat /usr/share/doc/jargon-text/jargon.txt.gz > "$out/corpus/jargon.txt"
find /usr/share/common-licenses -maxdepth 1 -type f | sort | xargs cat > "$out/corpus/licenses.txt"
if [ ! -f "$out/tokenizer.json" ]; then
  "$moda" tokenize train --input "$out"/corpus/*.txt --vocab-size "$vocab" --out "$out/tokenizer.json"
fi
for domain in fortunes jargon licenses; do
  "$moda" tokenize encode --tokenizer "$out/tokenizer.json" --input "$out/corpus/$domain.txt" \
    --out "$out/data/$domain" --val-fraction 0.1
done
ls -l "$out/data"
