# Source on the GPU host: unpacks Debian 12's header/library packages from .deps/ (carried, not
# committed) into /tmp/deps once and sets PATH / LD_LIBRARY_PATH for building and running moda.
if [ ! -d /tmp/deps/usr ]; then
  for f in .deps/*.deb; do dpkg -x "$f" /tmp/deps; done
fi
export PATH=/usr/local/cuda/bin:/opt/torch/.venv/bin:$PATH
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:/tmp/deps/usr/lib/x86_64-linux-gnu/openblas-pthread:${LD_LIBRARY_PATH:-}
