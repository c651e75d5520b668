#!/usr/bin/env bash
# Packs binaries built HERE with CUDA (-DCMAKE_CUDA_ARCHITECTURES=90a) for the GPU host, whose
# fresh machines spend ~90 s of a short budget building: prebuilt.tar.xz holds the stripped
# programs and the Debian 12 libraries they link that the host (Ubuntu 24.04) lacks, so neither
# a build nor .deps is needed there. Carry prebuilt.tar.xz; tools/gpu-host-env.sh unpacks it into
# /tmp/prebuilt and sets MODA_BUILD to it, and the tools/gpu-*.sh scripts then skip their build.
# Usage: [NAME=prebuilt-main] bash tools/pack-prebuilt.sh BUILD_DIR [programs, default: moda tests/moda_tests_gpu]
#   (~10 MB with both; `moda` alone, ~7 MB, fits beside .corpus-debs in one carry). NAME (default
#   prebuilt) names the tarball and the folder it unpacks to, /tmp/NAME: a second build (say main
#   beside a branch) can travel in the same call for an A/B in one sitting.
set -euo pipefail
build=$1; shift
programs=("$@"); [ ${#programs[@]} -eq 0 ] && programs=(moda tests/moda_tests_gpu)
name=${NAME:-prebuilt}
stage=$(mktemp -d)/$name
mkdir -p "$stage/lib" "$stage/tests"
for p in "${programs[@]}"; do cp "$build/$p" "$stage/$p"; strip "$stage/$p"; done
# Libraries from Debian's packages, resolved by the first program; CUDA's, MPI's and glibc's come
# from the host itself.
ldd "$build/${programs[0]}" | awk '/=> \// {print $3}' \
  | grep -E 'libopenblas|libspdlog|libfmt|libgfortran|libquadmath' | while read -r lib; do
  cp -L "$lib" "$stage/lib/"
done
# The test programs find their fixtures under the source folder compiled into them; the host's
# copy of the tree lives elsewhere, so tools/gpu-host-env.sh links this path to it.
grep -m1 '^CMAKE_HOME_DIRECTORY' "$build/CMakeCache.txt" | cut -d= -f2 > "$stage/source_dir"
tar -C "$(dirname "$stage")" -cJf "$name.tar.xz" "$name"
echo "$name.tar.xz: $(du -h "$name.tar.xz" | cut -f1) ($(ls "$stage/lib" | tr '\n' ' '))"
rm -rf "$(dirname "$stage")"
