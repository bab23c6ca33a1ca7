#!/usr/bin/env bash
# Build recipes on a second "host" and compare the wheels with this host's: a Debian trixie
# tree made with mmdebstrap (its own CPython 3.13, gcc 14, glibc 2.41, cmake, bubblewrap),
# entered with bubblewrap, kiln installed into it from this checkout, and kiln's own
# hermetic builds (with their nested bubblewrap) run inside it. Not part of CI: it needs
# root, the network to Debian and PyPI, and a few minutes per recipe.
#
#   sudo tools/second-host.sh WHEELHOUSE RECIPE...      # WHEELHOUSE: this host's wheels
#   sudo tools/second-host.sh wheelhouse recipes/msgpack.toml recipes/ujson.toml
#
# It builds each recipe for CPython 3.13 on linux-x86_64 with --check-repro inside the
# tree, then prints each wheel's sha256 on both hosts and exits 1 if any differ.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 WHEELHOUSE RECIPE..." >&2; exit 2; }
theirs=$(realpath "$1"); shift
root=${KILN_SECOND_ROOT:-/var/tmp/kiln-trixie-root}
python=${KILN_SECOND_PYTHON:-3.13}

if [ ! -x "$root/usr/bin/python3" ]; then
  mmdebstrap --variant=apt --include=python3,python3-venv,python3-dev,bubblewrap,ca-certificates,git,gpgv,debian-archive-keyring,faketime,gcc,g++,make,cmake,util-linux \
    trixie "$root" https://deb.debian.org/debian
fi
enter() {
  # The machine's CA bundle comes in (for a TLS-intercepting proxy); nothing else does.
  bwrap --bind "$root" / --dev /dev --proc /proc --tmpfs /tmp \
    --ro-bind /etc/resolv.conf /etc/resolv.conf \
    --ro-bind /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt \
    --clearenv --setenv PATH /usr/local/bin:/usr/bin:/bin --setenv HOME /root \
    --setenv SSL_CERT_FILE /etc/ssl/certs/ca-certificates.crt --setenv LANG C.UTF-8 \
    --hostname second-host --unshare-uts --cap-add ALL "$@"
}
rm -rf "$root/opt/kiln" "$root/opt/recipes" && mkdir -p "$root/opt/kiln" "$root/opt/recipes"
git archive HEAD | tar -x -C "$root/opt/kiln"
enter sh -c 'python3 -m venv /opt/venv && /opt/venv/bin/pip install -q /opt/kiln'
for recipe in "$@"; do
  cp "$recipe" "${recipe%.toml}.lock" "$root/opt/recipes/"
done
status=0
for recipe in "$@"; do
  name=$(basename "$recipe")
  enter /opt/venv/bin/kiln build --check-repro --no-cache -p "$python" --target linux-x86_64 \
    "/opt/recipes/$name" -o /opt/wh --cache-dir /opt/cache >/dev/null 2>&1
  project=$(basename "$recipe" .toml)
  for wheel in "$root"/opt/wh/*-cp${python/./}-*.whl; do
    case "$(basename "$wheel")" in "${project//-/_}"-*|"$project"-*) ;; *) continue ;; esac
    mine=$(sha256sum "$wheel" | cut -d' ' -f1)
    other=$(sha256sum "$theirs/$(basename "$wheel")" 2>/dev/null | cut -d' ' -f1 || true)
    verdict=$([ "$mine" = "$other" ] && echo same || echo DIFFERENT)
    [ "$verdict" = same ] || status=1
    printf '%-70s %s %s %s\n' "$(basename "$wheel")" "${mine:0:16}" "${other:0:16}" "$verdict"
  done
done
exit $status
