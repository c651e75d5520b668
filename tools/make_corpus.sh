#!/usr/bin/env bash
# Builds the real-text corpus (docs/corpus.md) from the pinned Debian packages, offline:
#   tools/make_corpus.sh [OUT (default runs/corpus)] [DEBS (default .corpus-debs, from tools/fetch-corpus-debs.sh)]
# Steps: check each .deb's SHA-256 against tools/corpus-packages.tsv, unpack with `dpkg -x` (no root,
# no apt), clean the markup to plain text and deduplicate paragraphs (tools/corpus_text.py, Python
# standard library only), train a byte-level BPE on all the training text
# (`moda tokenize train`, vocabulary $VOCAB, default 16384), encode (`moda tokenize encode`).
# Output: OUT/tokenizer.json, OUT/data/train_<package>_NNNNNN.bin (glob: train_*.bin),
# OUT/data/val_<domain>_NNNNNN.bin per held-out domain and val_indomain_NNNNNN.bin,
# OUT/stats.json (bytes and tokens per package and split), OUT/corpus.sha256 (printed at the end).
# The moda binary: $MODA (default build/moda). Nothing depends on time, locale or thread count.
set -euo pipefail
export LC_ALL=C
out=${1:-runs/corpus}
debs=${2:-.corpus-debs}
moda=${MODA:-build/moda}
vocab=${VOCAB:-16384}
here=$(cd "$(dirname "$0")" && pwd)
list=$here/corpus-packages.tsv
t0=$(date +%s)
[[ -x "$moda" ]] || { echo "make_corpus: $moda not found (build it, or set MODA)" >&2; exit 1; }

work=$out/work
rm -rf "$work/unpacked" "$out/data"
mkdir -p "$work/unpacked" "$out/data"
while IFS=$'\t' read -r pkg version _ _ sha _; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  deb="$debs/${pkg}_${version//:/%3a}_all.deb"
  [[ -f "$deb" ]] || { echo "make_corpus: $deb missing (run tools/fetch-corpus-debs.sh $debs)" >&2; exit 1; }
  echo "$sha  $deb" | sha256sum --check --status || { echo "make_corpus: $deb: SHA-256 differs from $list" >&2; exit 1; }
  dpkg -x "$deb" "$work/unpacked/$pkg"
done < "$list"
t1=$(date +%s)
echo "make_corpus: unpacked in $((t1 - t0)) s"

rm -rf "$work/text"
python3 "$here/corpus_text.py" --packages "$list" --unpacked "$work/unpacked" --out "$work/text" --jobs "$(nproc)"
t2=$(date +%s)
echo "make_corpus: text cleaned in $((t2 - t1)) s"

"$moda" tokenize train --input "$work"/text/train/*.txt --vocab-size "$vocab" --out "$out/tokenizer.json"
t3=$(date +%s)
echo "make_corpus: tokenizer trained in $((t3 - t2)) s"

# encode FILE NAME: shards data/NAME_NNNNNN.bin (encode writes PREFIX_train_NNNNNN.bin: renamed)
encode() {
  "$moda" tokenize encode --tokenizer "$out/tokenizer.json" --input "$1" --out "$work/enc/$2" \
    --shard-tokens 20000000
  for f in "$work/enc/$2"_train_*.bin; do mv "$f" "$out/data/$2_${f##*_train_}"; done
}
rm -rf "$work/enc"
for f in "$work"/text/train/*.txt; do
  name=$(basename "$f" .txt)
  encode "$f" "train_$name"
done
for f in "$work"/text/val_*.txt; do
  encode "$f" "$(basename "$f" .txt)"
done
t4=$(date +%s)
echo "make_corpus: encoded in $((t4 - t3)) s"

python3 - "$out" "$list" "$vocab" <<'PY'
import glob, json, os, re, struct, sys
out, listing, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = json.load(open(os.path.join(out, "work/text/text_stats.json")))
def tokens(pattern):
    n = 0
    for p in sorted(glob.glob(os.path.join(out, "data", pattern))):
        with open(p, "rb") as f:
            magic, version, count = struct.unpack("<iii", f.read(12))
        n += count
    return n
stats = {"vocab_size": vocab, "tokenizer": "tokenizer.json", "packages": {}, "splits": {}}
for line in open(listing):
    if not line.strip() or line.startswith("#"):
        continue
    pkg, version, role, size, sha, licence = line.rstrip("\n").split("\t")
    st = dict(text["packages"][pkg])
    st.update(version=version, deb_bytes=int(size), licence=licence)
    if role == "train":
        st["train_tokens"] = tokens(f"train_{pkg}_[0-9]*.bin")
    stats["packages"][pkg] = st
stats["splits"]["train"] = {"glob": "data/train_*.bin", "tokens": tokens("train_*.bin")}
for p in sorted(glob.glob(os.path.join(out, "data", "val_*_000000.bin"))):
    name = os.path.basename(p)[: -len("_000000.bin")]
    stats["splits"][name] = {"glob": f"data/{name}_*.bin", "tokens": tokens(name + "_*.bin")}
with open(os.path.join(out, "stats.json"), "w") as f:
    json.dump(stats, f, indent=1, sort_keys=True)
    f.write("\n")
for k, v in stats["splits"].items():
    print(f"make_corpus: {k:16s} {v['tokens']:11,d} tokens")
PY
rm -rf "$work/unpacked" "$work/enc"  # ~550 MB; the cleaned text stays in $work/text
(cd "$out" && sha256sum tokenizer.json data/*.bin > corpus.sha256)
cat "$out/corpus.sha256"
echo "make_corpus: corpus.sha256 $(sha256sum "$out/corpus.sha256" | cut -c1-64)"
echo "make_corpus: done in $(($(date +%s) - t0)) s: $out"
