# Source on the GPU host: unpacks Debian 12's header/library packages from .deps/ (carried, not
# committed) into /tmp/deps once, or the binaries of prebuilt.tar.xz into /tmp/prebuilt, and sets
# PATH / LD_LIBRARY_PATH (and MODA_BUILD) for building and running moda.
if [ ! -d /tmp/deps/usr ] && [ -d .deps ]; then
  for f in .deps/*.deb; do dpkg -x "$f" /tmp/deps; done
fi
# Binaries built elsewhere (tools/pack-prebuilt.sh): each prebuilt*.tar.xz unpacks to /tmp/NAME;
# MODA_BUILD points the tools/gpu-*.sh scripts at /tmp/prebuilt instead of a build of their own.
for tarball in prebuilt*.tar.xz; do
  [ -f "$tarball" ] || continue
  dir=/tmp/$(basename "$tarball" .tar.xz)
  # Into /tmp/NAME whatever the folder inside is called (a renamed tarball must not land on another).
  [ -d "$dir" ] || { mkdir -p "$dir" && tar -C "$dir" --strip-components=1 -xJf "$tarball"; }
  export LD_LIBRARY_PATH=$dir/lib:${LD_LIBRARY_PATH:-}
  src=$(cat "$dir/source_dir" 2>/dev/null || true)  # where its tests look for fixtures
  if [ -n "$src" ] && [ ! -e "$src" ]; then mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"; fi
done
if [ -d /tmp/prebuilt ] && [ -f prebuilt.tar.xz ]; then export MODA_BUILD=/tmp/prebuilt; fi
export PATH=/usr/local/cuda/bin:/opt/torch/.venv/bin:$PATH
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:/tmp/deps/usr/lib/x86_64-linux-gnu/openblas-pthread:${LD_LIBRARY_PATH:-}
