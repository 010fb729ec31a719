#!/usr/bin/env bash
# Installs the Debian packages the tests use: WSClean (the imaging peer) and Chromium (opens the
# report as a reader would). Without root or apt the tests that need them skip with a reason, so
# this never fails the build.
set -u
need=()
command -v wsclean >/dev/null 2>&1 || need+=(wsclean)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: ${need[*]} not installed and no root/apt here; tests that need them will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
for package in "${need[@]}"; do  # one at a time: one that cannot be installed does not stop the other
    apt-get install -y -qq --no-install-recommends "$package" >/dev/null 2>&1 \
        || echo "note: could not install $package; tests that need it will skip" >&2
done
exit 0
