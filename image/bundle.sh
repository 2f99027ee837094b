#!/usr/bin/env bash
# Makes a signed upgrade bundle of a root slot: what `POST /api/1/appliance/upgrade` takes and
# `lemur appliance upgrade` installs (the format: daemon/core/src/upgrade/mod.rs).
#
#   image/bundle.sh --key KEY.pem --members DIR --version V --source COMMIT \
#                   --roothash HEX --options "KERNEL OPTIONS" OUT.upgrade
#
# DIR holds root.img, verity.img, vmlinuz and initrd. KEY.pem is the release key (EC P-256
# private key); the appliance holds its public half.
set -euo pipefail

while [ $# -gt 1 ]; do
    case "$1" in
        --key) KEY="$2" ;;
        --members) MEMBERS="$2" ;;
        --version) VERSION="$2" ;;
        --source) SOURCE="$2" ;;
        --roothash) ROOTHASH="$2" ;;
        --options) OPTIONS="$2" ;;
        *) echo "bundle.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
OUT="${1:?usage: image/bundle.sh --key K --members DIR --version V --source C --roothash H --options O OUT}"
for value in "$VERSION" "$SOURCE" "$ROOTHASH" "$OPTIONS"; do
    case "$value" in *'"'*|*'\'*) echo "bundle.sh: no quotes or backslashes in values" >&2; exit 2 ;; esac
done

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
{
    echo "format = 1"
    echo "product = \"lemur-hsm\""
    echo "version = \"$VERSION\""
    echo "source = \"$SOURCE\""
    echo "roothash = \"$ROOTHASH\""
    echo "options = \"$OPTIONS\""
    echo "[files]"
    for member in root.img verity.img vmlinuz initrd; do
        size="$(stat -c %s "$MEMBERS/$member")"
        digest="$(sha256sum "$MEMBERS/$member" | cut -d' ' -f1)"
        echo "\"$member\" = { size = $size, sha256 = \"$digest\" }"
    done
} > "$STAGE/upgrade.toml"
openssl dgst -sha256 -sign "$KEY" -out "$STAGE/upgrade.toml.sig" "$STAGE/upgrade.toml"
# The manifest and its signature first: the reader checks them before it uses anything else.
tar --format=ustar --owner=0 --group=0 --numeric-owner --mtime="@${SOURCE_DATE_EPOCH:-0}" \
    -cf "$OUT" -C "$STAGE" upgrade.toml upgrade.toml.sig \
    -C "$(cd "$MEMBERS" && pwd)" root.img verity.img vmlinuz initrd
