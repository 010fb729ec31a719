#!/usr/bin/env bash
# Installs the Debian packages the comparison tests use (WSClean). Without root or apt the tests
# that need them skip with a reason, so this never fails the build.
set -u
need=()
command -v wsclean >/dev/null 2>&1 || need+=(wsclean)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: ${need[*]} not installed and no root/apt here; tests that compare with it will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || echo "note: could not install ${need[*]}; tests that compare with it will skip" >&2
exit 0
