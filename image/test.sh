#!/usr/bin/env bash
# Boots the built appliance image under qemu as a user would first meet it, and checks it works,
# upgrades, falls back and refuses to run modified:
#
#   image/test.sh OUT_DIR
#
# qemu with TCG (no KVM here), UEFI firmware (OVMF), 2 vCPUs and 1 GiB; the raw image with a test
# seed written onto its ESP; HTTPS forwarded to a loopback port. Then:
# 1. first boot: the console shows the URL, the CA's fingerprint and the admin password; nginx
#    serves HTTPS with a certificate that chains to that CA; the admin signs in, issues a
#    certificate through nginx, which chains to the CA too; the web UI's login page loads; no
#    unit failed;
# 2. upgrade: the image's own .upgrade bundle uploaded through the API goes into slot b and the
#    appliance restarts into it; the certificate issued before is there and the CA still issues;
# 3. a broken release (the same root, its daemon replaced by a program that fails, signed with
#    the release key) uploaded the same way: it boots three times, is found bad each time, and
#    slot b boots again with everything in place;
# 4. powered off by the power button: the boot entries say b is good and the broken slot spent;
#    the data partition has grown to the disk;
# 5. one byte of the running slot's root file system flipped: the next boot stops at dm-verity.
# Prints the boot time to healthy HTTPS.
set -euo pipefail

OUT="${1:?usage: image/test.sh OUT_DIR}"
RAW="$(ls "$OUT"/lemur-hsm-*.raw)"
OVMF=/usr/share/OVMF
BOOT_TIMEOUT="${LEMUR_IMAGE_BOOT_TIMEOUT:-600}"
BUNDLE="$(ls "$OUT"/lemur-hsm-*.upgrade)"
RELEASE_KEY="${LEMUR_RELEASE_KEY:-/var/tmp/lemur-development-release-key.pem}"
HERE="$(cd "$(dirname "$0")" && pwd)"

WORK="$(mktemp -d)"
QEMU_PID=""
cleanup() {
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "image test: $*" >&2
    echo "--- serial console (last 60 lines) ---" >&2
    tail -n 60 "$WORK/console.log" >&2 || true
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A copy of the image (sparse), on a disk 1 GiB larger than the image, with the test's seed on
# its ESP, which starts 1 MiB in.
prepare_disk() {
    cp --sparse=always "$RAW" "$WORK/disk.raw"
    truncate -s +1G "$WORK/disk.raw"
    cat > "$WORK/seed.toml" <<'EOF'
hostname = "lemur-test"

[admin]
email = "pki@example.com"
EOF
    MTOOLS_SKIP_CHECK=1 mcopy -o -i "$WORK/disk.raw@@1M" "$WORK/seed.toml" ::/lemur-appliance.toml
    cp "$OVMF/OVMF_VARS_4M.fd" "$WORK/vars.fd"
}

boot() {
    HTTPS_PORT="$(free_port)"
    qemu-system-x86_64 -nodefaults -machine q35 -accel tcg,tb-size=128 -smp 2 -m 1024 \
        -drive if=pflash,format=raw,unit=0,readonly=on,file="$OVMF/OVMF_CODE_4M.fd" \
        -drive if=pflash,format=raw,unit=1,file="$WORK/vars.fd" \
        -drive if=virtio,format=raw,file="$WORK/disk.raw" \
        -nic user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:"$HTTPS_PORT"-:443 \
        -serial file:"$WORK/console.log" -display none \
        -qmp unix:"$WORK/qmp.sock",server=on,wait=off &
    QEMU_PID=$!
}

# The console from byte $1 on.
console_since() {
    tail -c +"$(($1 + 1))" "$WORK/console.log" | tr -d '\r'
}

# Where the console ends now.
console_mark() {
    stat -c %s "$WORK/console.log"
}

# Waits until the console, from byte $2 on, shows the extended regular expression $1.
wait_for_console() {
    local pattern="$1" from="$2" timeout="${3:-$BOOT_TIMEOUT}" started=$SECONDS
    until console_since "$from" | grep -a -q -E "$pattern"; do
        kill -0 "$QEMU_PID" 2>/dev/null || fail "qemu exited waiting for: $pattern"
        [ $((SECONDS - started)) -lt "$timeout" ] || fail "the console never showed: $pattern"
        sleep 2
    done
}

# Fails when a unit failed on the console from byte $1 on.
no_failed_units() {
    if console_since "$1" | grep -a -q "FAILED"; then
        fail "a unit failed: $(console_since "$1" | grep -a FAILED | head -5)"
    fi
}

# Seconds until nginx answers HTTPS with the daemon healthy behind it.
wait_for_https() {
    local started=$SECONDS
    until [ "$(curl -sk --max-time 5 "https://127.0.0.1:$HTTPS_PORT/api/1/healthcheck" || true)" = ok ]; do
        kill -0 "$QEMU_PID" 2>/dev/null || fail "qemu exited"
        [ $((SECONDS - started)) -lt "$BOOT_TIMEOUT" ] || fail "no healthy HTTPS after $BOOT_TIMEOUT s"
        sleep 2
    done
    BOOT_SECONDS=$((SECONDS - started))
}

# A value the console banner shows after its label ("Password", "SHA-256"), once it is there.
banner() {
    local label="$1" value="" started=$SECONDS
    while [ -z "$value" ]; do
        value="$(tr -d '\r' < "$WORK/console.log" | grep -a -o "$label  *[0-9A-Fa-f:]*" | tail -1 |
            awk '{print $NF}')"
        [ -n "$value" ] && break
        [ $((SECONDS - started)) -lt 120 ] || fail "the console shows no $label"
        sleep 2
    done
    echo "$value"
}

# The CA that issued nginx's certificate (the last of the chain it serves) is the one whose
# fingerprint the console shows.
check_ca() {
    local fingerprint="$1"
    openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -showcerts < /dev/null 2>/dev/null |
        awk -v dir="$WORK" '/BEGIN CERT/ {n++} n {print > (dir "/served-" n ".pem")}'
    local last
    last="$(ls "$WORK"/served-*.pem | sort -V | tail -1)"
    cp "$last" "$WORK/ca.pem"
    local served
    served="$(openssl x509 -in "$WORK/ca.pem" -noout -fingerprint -sha256 | cut -d= -f2)"
    [ "$served" = "$fingerprint" ] || fail "the served CA is $served, the console says $fingerprint"
}

# The API through nginx, the certificate verified against the appliance CA by name.
api() {
    local method="$1" path="$2" body="${3:-}"
    local args=(-sS --fail-with-body --max-time 60 --cacert "$WORK/ca.pem"
        --resolve "lemur-test.local:$HTTPS_PORT:127.0.0.1" -X "$method"
        -H "Content-Type: application/json")
    [ -n "${TOKEN:-}" ] && args+=(-H "Authorization: Bearer $TOKEN")
    [ -n "$body" ] && args+=(--data "$body")
    curl "${args[@]}" "https://lemur-test.local:$HTTPS_PORT/api/1$path"
}

# A field of the JSON on stdin: json "['token']".
json() { python3 -c "import json, sys; v = json.load(sys.stdin); print(v$1)"; }

issue_a_certificate() {
    local password="$1"
    TOKEN="$(api POST /auth/login "{\"username\": \"lemur\", \"password\": \"$password\"}" | json "['token']")"
    local authority
    authority="$(api GET /authorities | python3 -c "import json, sys
print(next(a['id'] for a in json.load(sys.stdin)['items'] if a['name'] == 'appliance'))")"
    api POST /certificates "{\"owner\": \"pki@example.com\", \"commonName\": \"www.example.test\",
        \"authority\": {\"id\": $authority}, \"keyType\": \"ECCPRIME256V1\"}" > "$WORK/issued.json"
    json "['body']" < "$WORK/issued.json" > "$WORK/leaf.pem"
    json "['chain']" < "$WORK/issued.json" > "$WORK/chain.pem"
    openssl verify -CAfile "$WORK/ca.pem" -untrusted "$WORK/chain.pem" "$WORK/leaf.pem" >/dev/null ||
        fail "the issued certificate does not chain to the appliance CA"
}

# The power button, as a hypervisor presses it; waits for the guest to power off.
power_off() {
    python3 - "$WORK/qmp.sock" <<'PY'
import json, socket, sys
qmp = socket.socket(socket.AF_UNIX)
qmp.connect(sys.argv[1])
replies = qmp.makefile()
replies.readline()
for command in ("qmp_capabilities", "system_powerdown"):
    qmp.sendall(json.dumps({"execute": command}).encode())
    replies.readline()
PY
    local started=$SECONDS
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        [ $((SECONDS - started)) -lt 120 ] || fail "the guest did not power off"
        sleep 1
    done
    QEMU_PID=""
}

# The data partition reaches the end of the disk (less the backup GPT), and its file system fills
# it.
check_data_grown() {
    grep -a -q "grew the data partition" "$WORK/console.log" || fail "the data partition did not grow"
    python3 - "$WORK/disk.raw" <<'PY' || fail "the data partition does not fill the disk"
import json, os, subprocess, sys
table = json.loads(subprocess.run(["sfdisk", "--json", sys.argv[1]], check=True,
                                  capture_output=True, text=True).stdout)["partitiontable"]
data = table["partitions"][-1]
sectors = os.path.getsize(sys.argv[1]) // 512
end = data["start"] + data["size"]
assert end >= sectors - 2048, (end, sectors)
# The ext4 superblock, 1 KiB into the partition: block count (offset 4), log block size (24).
with open(sys.argv[1], "rb") as disk:
    disk.seek(data["start"] * 512 + 1024)
    superblock = disk.read(32)
blocks = int.from_bytes(superblock[4:8], "little")
block_size = 1024 << int.from_bytes(superblock[24:28], "little")
assert blocks * block_size >= (data["size"] * 512) - (4 << 20), (blocks, block_size, data["size"])
print(f"image test: the data partition and its file system fill the disk: "
      f"{blocks * block_size >> 20} MiB, ending at {end * 512 >> 20} of {sectors * 512 >> 20} MiB")
PY
}

# A bundle upload through nginx, as an administrator: 202, staged.
upload() {
    local bundle="$1"
    curl -sS --fail-with-body --max-time 900 --cacert "$WORK/ca.pem" \
        --resolve "lemur-test.local:$HTTPS_PORT:127.0.0.1" -H "Authorization: Bearer $TOKEN" \
        -H "Content-Type: application/octet-stream" --data-binary @"$bundle" \
        -o "$WORK/upload.json" -w '%{http_code}' \
        "https://lemur-test.local:$HTTPS_PORT/api/1/appliance/upgrade" > "$WORK/upload.status" ||
        fail "the upload failed: $(cat "$WORK/upload.json")"
    [ "$(cat "$WORK/upload.status")" = 202 ] || fail "the upload answered $(cat "$WORK/upload.status")"
}

# After an upgrade or a fall-back: slot $1 serves, the admin signs in again, the certificate
# issued at the first boot is there, and the CA still issues.
check_running_slot() {
    local slot="$1" password="$2" from="$3"
    wait_for_console "appliance [^ ]+, root slot $slot" "$from"
    wait_for_https
    no_failed_units "$from"
    TOKEN=""
    local serial
    serial="$(json "['serial']" < "$WORK/first.json")"
    issue_a_certificate "$password"
    api GET "/certificates?filter=serial;$serial" | json "['total']" | grep -q '^1$' ||
        fail "the certificate issued before is not listed in slot $slot"
    echo "image test: slot $slot healthy $BOOT_SECONDS s after it was seen; the earlier certificate is there, the CA issues"
}

# The image's release with its daemon replaced by a program that fails, as a signed bundle.
broken_bundle() {
    local dir="$WORK/broken"
    mkdir -p "$dir/members"
    tar -xf "$BUNDLE" -C "$dir" root.img vmlinuz initrd
    fsck.erofs --extract="$dir/tree" "$dir/root.img" >/dev/null
    printf '#!/bin/sh\necho "lemur: a deliberately broken release" >&2\nexit 1\n' > "$dir/tree/usr/bin/lemur"
    mkfs.erofs --quiet -zlz4 "$dir/members/root.img" "$dir/tree"
    rm -rf "$dir/tree" "$dir/root.img"
    mv "$dir/vmlinuz" "$dir/initrd" "$dir/members/"
    veritysetup format "$dir/members/root.img" "$dir/members/verity.img" > "$dir/verity.txt"
    local options version
    options="$(tar -xOf "$BUNDLE" upgrade.toml | sed -n 's/^options = "\(.*\)"$/\1/p')"
    version="$(tar -xOf "$BUNDLE" upgrade.toml | sed -n 's/^version = "\(.*\)"$/\1/p')"
    "$HERE/bundle.sh" --key "$RELEASE_KEY" --members "$dir/members" --version "$version+broken" \
        --source broken --roothash "$(sed -n 's/^Root hash:[[:space:]]*//p' "$dir/verity.txt")" \
        --options "$options" "$WORK/broken.upgrade"
}

# The boot entries on the ESP, as systemd-boot left them.
check_boot_entries() {
    local entries
    entries="$(MTOOLS_SKIP_CHECK=1 mdir -b -i "$WORK/disk.raw@@1M" ::/loader/entries | sort | xargs -n1 basename)"
    echo "$entries" | grep -q '^lemur-b\.conf$' || fail "slot b was not marked good: $entries"
    echo "$entries" | grep -q '^lemur-a+0-3\.conf$' || fail "the broken slot a did not spend its tries: $entries"
    echo "image test: boot entries: $(echo $entries)"
}

# One byte of the running slot's (b's) root file system flipped, in its superblock, which every
# boot reads: dm-verity must stop the boot.
check_verity_refuses() {
    python3 - "$WORK/disk.raw" <<'PY'
import json, subprocess, sys
table = json.loads(subprocess.run(["sfdisk", "--json", sys.argv[1]], check=True,
                                  capture_output=True, text=True).stdout)["partitiontable"]
root_b = next(p for p in table["partitions"] if p.get("name") == "lemur-root-b")
with open(sys.argv[1], "r+b") as disk:
    disk.seek(root_b["start"] * 512 + 1100)
    byte = disk.read(1)
    disk.seek(-1, 1)
    disk.write(bytes([byte[0] ^ 0x01]))
PY
    # A new qemu starts the console file afresh.
    local from=0
    boot
    wait_for_console "verity.*(corrupt|failed)" "$from" 300
    # Long enough for a boot that went on regardless to reach its banner and HTTPS.
    sleep 60
    if console_since "$from" | grep -a -q -E "appliance [^ ]+, root slot b"; then
        fail "the modified slot b booted to the banner"
    fi
    curl -sk --max-time 5 "https://127.0.0.1:$HTTPS_PORT/api/1/healthcheck" >/dev/null 2>&1 &&
        fail "the modified slot b serves HTTPS"
    echo "image test: a flipped byte in the root slot stops the boot: $(console_since "$from" | grep -a -m1 -E 'verity.*(corrupt|failed)')"
    kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=""
}

main() {
    prepare_disk
    local started=$SECONDS
    boot
    wait_for_https
    echo "image test: healthy HTTPS $BOOT_SECONDS s after qemu started (TCG, 2 vCPU, 1 GiB)"
    local password fingerprint
    password="$(banner Password)"
    fingerprint="$(banner SHA-256)"
    check_ca "$fingerprint"
    issue_a_certificate "$password"
    echo "image test: signed in with the console's password; issued a certificate that chains to the CA"
    curl -sS --cacert "$WORK/ca.pem" --resolve "lemur-test.local:$HTTPS_PORT:127.0.0.1" \
        "https://lemur-test.local:$HTTPS_PORT/" | grep -q "<title>Lemur-HSM</title>" ||
        fail "the web UI is not served"
    no_failed_units 0

    cp "$WORK/issued.json" "$WORK/first.json"
    local from
    from="$(console_mark)"
    upload "$BUNDLE"
    echo "image test: uploaded $(basename "$BUNDLE"): $(json "['status']" < "$WORK/upload.json")"
    check_running_slot b "$password" "$from"

    broken_bundle
    from="$(console_mark)"
    upload "$WORK/broken.upgrade"
    echo "image test: uploaded a broken release"
    # Three boots of it, each found bad; then slot b again.
    local waited=$SECONDS bad=0
    until [ "$bad" -ge 3 ]; do
        kill -0 "$QEMU_PID" 2>/dev/null || fail "qemu exited during the broken release's tries"
        [ $((SECONDS - waited)) -lt 900 ] || fail "the broken release was found bad $bad times, not 3"
        sleep 2
        bad="$(console_since "$from" | grep -a -c "this boot is bad" || true)"
    done
    from="$(console_mark)"
    check_running_slot b "$password" "$from"
    echo "image test: the broken release was found bad three times, and slot b came back"

    power_off
    check_boot_entries
    check_data_grown
    check_verity_refuses
    echo "image test: passed in $((SECONDS - started)) s"
}

main
