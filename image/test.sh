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
#    the release key) uploaded the same way: it boots three times, each ending bad (found bad
#    by the boot check, or crashed before it), and slot b boots again with everything in place;
# 4. powered off by the power button: the boot entries say b is good and the broken slot spent;
#    the data partition has grown to the disk;
# 5. one byte of the running slot's root file system flipped: the next boot stops at dm-verity;
# 6. a fresh copy of the image, booted in 512 MiB: the backup taken through the API at the first boot
#    (while the daemon ran) restored onto it through the API brings back the first appliance's CA
#    (its fingerprint), admin password, certificates and signing key.
# At the first boot also: sshd (which the test seed enables) answers with the host key the
# console shows, and it and nginx are the only programs listening beyond loopback; a line logged
# reaches the seed's remote syslog server (a TLS receiver on the host's loopback); the site
# packages the manifest lists (LEMUR_IMAGE_DEBS) are installed on the verified root.
# Prints the boot time to healthy HTTPS and the guest's memory in use.
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
SYSLOG_PID=""
MEMORY=1024
cleanup() {
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
    [ -n "$SYSLOG_PID" ] && kill "$SYSLOG_PID" 2>/dev/null
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

# A syslog server over TLS (RFC 5425) on the host's loopback, which the guest reaches as
# 10.0.2.2 (qemu's user network): its own CA, and a certificate for syslog.test; what it
# receives goes to $WORK/syslog.log.
start_syslog_receiver() {
    local dir="$WORK/syslog"
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=Image test syslog CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=syslog.test" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:syslog.test\nextendedKeyUsage=serverAuth\n' > "$dir/ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/ext" -out "$dir/server.pem" 2>/dev/null
    python3 - "$dir" "$WORK/syslog.log" > "$dir/port" <<'PY' &
import socket, ssl, sys, threading
directory, log = sys.argv[1], sys.argv[2]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{directory}/server.pem", f"{directory}/server.key")
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
def receive(connection):
    try:
        with context.wrap_socket(connection, server_side=True) as tls, open(log, "ab") as out:
            while data := tls.recv(65536):
                out.write(data)
                out.flush()
    except OSError:
        pass
while True:
    connection, _ = server.accept()
    threading.Thread(target=receive, args=(connection,), daemon=True).start()
PY
    SYSLOG_PID=$!
    until [ -s "$dir/port" ]; do sleep 0.2; done
    SYSLOG_PORT="$(cat "$dir/port")"
    touch "$WORK/syslog.log"
}

# A copy of the image (sparse), on a disk 1 GiB larger than the image, with the test's seed on
# its ESP, which starts 1 MiB in: ssh on with the test's key, the journal forwarded to the
# test's syslog receiver.
prepare_disk() {
    cp --sparse=always "$RAW" "$WORK/disk.raw"
    truncate -s +1G "$WORK/disk.raw"
    [ -e "$WORK/ssh_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh_key"
    cat > "$WORK/seed.toml" <<EOF
hostname = "lemur-test"

[admin]
email = "pki@example.com"

[ssh]
enabled = true
authorized_keys = ["$(cut -d' ' -f1,2 "$WORK/ssh_key.pub")"]

[syslog]
target = "10.0.2.2:$SYSLOG_PORT"
name = "syslog.test"
ca = """
$(cat "$WORK/syslog/ca.pem")
"""
EOF
    MTOOLS_SKIP_CHECK=1 mcopy -o -i "$WORK/disk.raw@@1M" "$WORK/seed.toml" ::/lemur-appliance.toml
    cp "$OVMF/OVMF_VARS_4M.fd" "$WORK/vars.fd"
}

boot() {
    HTTPS_PORT="$(free_port)"
    SSH_PORT="$(free_port)"
    qemu-system-x86_64 -nodefaults -machine q35 -accel tcg,tb-size=128 -smp 2 -m "$MEMORY" \
        -drive if=pflash,format=raw,unit=0,readonly=on,file="$OVMF/OVMF_CODE_4M.fd" \
        -drive if=pflash,format=raw,unit=1,file="$WORK/vars.fd" \
        -drive if=virtio,format=raw,file="$WORK/disk.raw" \
        -nic user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:"$HTTPS_PORT"-:443,hostfwd=tcp:127.0.0.1:"$SSH_PORT"-:22 \
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

# What the boots on the console from byte $1 on showed, one line each: each start (the
# firmware's), what the boot check and the trial said, the banner's slot, and anything that
# failed or restarted the machine: for a count of boots that came out wrong.
boots_since() {
    console_since "$1" |
        grep -a -o -E "BdsDxe: starting Boot[0-9A-F]+|lemur-(boot-check|trial)[^ ]*: [^(]*|root slot [ab]|FAILED.*|Kernel panic.*|reboot: .*|Timed out .*" |
        cut -c1-160 | head -80 || true
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
    local args=(-sS --fail-with-body --max-time "${API_MAX_TIME:-60}" --cacert "$WORK/ca.pem"
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

# A command on the guest, as root over ssh with the test's key. The host key is learnt at the
# first connection to each disk (check_ssh compares it with the console's).
guest() {
    ssh -q -i "$WORK/ssh_key" -p "$SSH_PORT" -o BatchMode=yes -o ConnectTimeout=30 \
        -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="$WORK/known_hosts" \
        root@127.0.0.1 "$@"
}

# sshd, which the seed enabled, lets root in with the seed's key, and its host key is the one
# whose fingerprint the console shows.
check_ssh() {
    rm -f "$WORK/known_hosts"
    guest true || fail "ssh with the seed's key failed"
    local shown served
    shown="$(tr -d '\r' < "$WORK/console.log" | grep -a -o 'ssh host key (ED25519): SHA256:[A-Za-z0-9+/]*' |
        tail -1 | awk '{print $NF}')"
    served="$(ssh-keygen -l -E sha256 -f "$WORK/known_hosts" | awk '{print $2}')"
    [ -n "$shown" ] && [ "$shown" = "$served" ] ||
        fail "sshd's host key is $served, the console shows '$shown'"
    echo "image test: root signed in over ssh with the seed's key; the host key is the console's $shown"
}

# The site packages the manifest lists (LEMUR_IMAGE_DEBS: ./dev test builds one) are installed
# on the running root, which dm-verity checks.
check_site_packages() {
    local manifest package
    manifest="$(ls "$OUT"/lemur-hsm-*.manifest)"
    grep -q '^site-package ' "$manifest" || return 0
    [ "$(guest findmnt -no SOURCE /)" = /dev/mapper/root ] || fail "the root is not the verity device"
    for package in $(sed -n 's/^site-package sha256 [0-9a-f]*  \([^_]*\)_.*/\1/p' "$manifest"); do
        # One string: the guest's shell reads it, and must not expand the format itself.
        guest "dpkg-query -W -f='\${Status}' $package" | grep -q 'install ok installed' ||
            fail "the site package $package is not installed on the appliance"
        grep -q "^$package " "$manifest" || fail "the manifest lists no version of the site package $package"
    done
    if grep -q '^lemur-site-test ' "$manifest"; then
        guest test -f /usr/lib/lemur-site-test/README ||
            fail "the test's site package left no file on the verified root"
    fi
    echo "image test: the site packages are installed on the verified root: $(sed -n 's/^site-package sha256 [0-9a-f]*  //p' "$manifest" | tr '\n' ' ')"
}

# Beyond loopback, only nginx and sshd listen on TCP; on UDP, only the DHCP client and the mDNS
# responder (systemd-networkd, systemd-resolved), answered as the firewall allows.
check_listeners() {
    guest ss -Htulnp > "$WORK/listening" || fail "ss failed on the guest"
    python3 - "$WORK/listening" <<'PY' || fail "something else listens: $(cat "$WORK/listening")"
import re, sys
allowed = {"tcp": {"nginx", "sshd"}, "udp": {"systemd-network", "systemd-resolve"}}
seen, bad = set(), []
for line in open(sys.argv[1]):
    fields = line.split()
    netid, local = fields[0], fields[4]
    address = local.rsplit(":", 1)[0].strip("[]").split("%")[0]
    if address.startswith("127.") or address == "::1":
        continue
    programs = set(re.findall(r'\(\("([^"]+)"', line))
    seen.add(f"{netid} {local} {','.join(sorted(programs))}")
    if not programs or not programs <= allowed.get(netid, set()):
        bad.append(line.strip())
assert any(s.startswith("tcp") and ":443 " in s + " " and "nginx" in s for s in seen), seen
assert not bad, bad
print("image test: listening beyond loopback: " + "; ".join(sorted(seen)))
PY
}

# A line logged on the appliance reaches the seed's syslog server, over TLS with its CA pinned.
check_remote_syslog() {
    local marker="image-test-$RANDOM$RANDOM" started=$SECONDS
    guest logger -t image-test "$marker"
    until grep -a -q "$marker" "$WORK/syslog.log"; do
        [ $((SECONDS - started)) -lt 120 ] || fail "the logged line never reached the syslog receiver"
        sleep 1
    done
    echo "image test: a line logged on the appliance reached the seed's syslog server in $((SECONDS - started)) s"
}

# The guest's memory in use (total less available).
guest_memory() {
    guest "awk '/^MemTotal/ {t = \$2} /^MemAvailable/ {a = \$2} END {printf \"%d MiB in use of %d MiB\", (t - a) / 1024, t / 1024}' /proc/meminfo"
}

# The passphrase the backup is taken and restored under.
BACKUP_PASSPHRASE="image test backup passphrase $RANDOM$RANDOM"

# The daemon keeps RSA-2048 keys stocked ahead (provisioning configures 1,024), made by a thread
# at nice 19 (lemur.service lets it lower its priority), and the health details count them.
check_key_stock() {
    local started=$SECONDS stocked=0
    while [ "$SECONDS" -lt $((started + 180)) ]; do
        stocked="$(api GET /healthcheck/details | python3 -c "import json, sys
keys = {k['keyType']: k for k in json.load(sys.stdin)['readyKeys']}
assert keys['RSA2048']['stockTarget'] == 1024, keys
print(keys['RSA2048'].get('stocked', 0))")" || fail "the health details show no stock of 1,024 RSA-2048 keys"
        [ "$stocked" -gt 0 ] && break
        sleep 5
    done
    [ "$stocked" -gt 0 ] || fail "no key was stocked in 180 s: $(guest 'journalctl -b -u lemur --no-pager | grep -i stock | tail -5')"
    local nice
    nice="$(guest "ps -eL -o ni=,comm= | awk '\$2 ~ /^lemur-key-sto/ {print \$1}'")"
    [ "$nice" = 19 ] || fail "the key stock's thread runs at nice '$nice', not 19"
    echo "image test: $stocked RSA-2048 keys stocked ahead after $((SECONDS - started)) s more, made at nice 19"
}

# A backup through the API while the daemon runs (root's lemur-backup.socket makes it; the
# daemon passes it on), the archive on the host; a short passphrase is refused by name first.
take_backup() {
    local started=$SECONDS
    if api POST /appliance/backup '{"passphrase": "too short"}' > "$WORK/refused.json" 2>/dev/null; then
        fail "a backup under a short passphrase was made"
    fi
    grep -q '"passphrase"' "$WORK/refused.json" ||
        fail "the refused backup does not name the passphrase: $(cat "$WORK/refused.json")"
    API_MAX_TIME=900 api POST /appliance/backup "{\"passphrase\": \"$BACKUP_PASSPHRASE\"}" > "$WORK/backup.lemur" ||
        fail "the backup through the API failed: $(head -c 300 "$WORK/backup.lemur")"
    echo "image test: backed up through the API while the daemon ran: $(stat -c %s "$WORK/backup.lemur") bytes in $((SECONDS - started)) s"
}

# POST /appliance/restore: the form's passphrase (from a file, never an argument), then the
# archive taken at the first boot.
restore_form() {
    printf '%s' "$1" > "$WORK/restore-passphrase"
    curl -sS --fail-with-body --max-time 900 --cacert "$WORK/ca.pem" \
        --resolve "lemur-test.local:$HTTPS_PORT:127.0.0.1" -H "Authorization: Bearer $TOKEN" \
        -F "passphrase=<$WORK/restore-passphrase" \
        -F "archive=@$WORK/backup.lemur;type=application/octet-stream" \
        "https://lemur-test.local:$HTTPS_PORT/api/1/appliance/restore"
}

# A fresh copy of the image, booted in 512 MiB, gets the first appliance's backup through the
# API from its own admin: a wrong passphrase is refused by name and changes nothing; the right
# one is accepted, the appliance restarts on it, and then serves the first appliance's CA, takes
# its admin password, lists its certificate, issues with its CA key, and says how the restore
# went.
restore_onto_fresh_image() {
    local password="$1" fingerprint="$2"
    MEMORY=512
    prepare_disk
    boot
    wait_for_https
    local fresh
    fresh="$(banner SHA-256)"
    [ "$fresh" != "$fingerprint" ] || fail "the fresh image made the first one's CA"
    echo "image test: a fresh image came up in 512 MiB ($BOOT_SECONDS s) with a CA of its own"
    rm -f "$WORK/known_hosts"
    check_ca "$fresh"
    TOKEN="$(api POST /auth/login "{\"username\": \"lemur\", \"password\": \"$(banner Password)\"}" |
        json "['token']")"
    if restore_form "not the backup's passphrase" > "$WORK/refused.json"; then
        fail "a restore under the wrong passphrase was accepted"
    fi
    grep -q '"passphrase"' "$WORK/refused.json" ||
        fail "the refused restore does not name the passphrase: $(cat "$WORK/refused.json")"
    [ "$(api GET /appliance/restore | json "['state']")" = none ] ||
        fail "a refused restore left a status"
    local started=$SECONDS
    restore_form "$BACKUP_PASSPHRASE" > "$WORK/restore.json" ||
        fail "the restore through the API was refused: $(cat "$WORK/restore.json")"
    echo "image test: restore accepted after $((SECONDS - started)) s: $(json "['status']" < "$WORK/restore.json")"
    # The fresh daemon stops; healthy HTTPS again once the restored one serves the first CA.
    local served=""
    until [ "$served" = "$fingerprint" ]; do
        [ $((SECONDS - started)) -lt 300 ] || fail "the restored appliance never served the first CA"
        sleep 2
        wait_for_https
        served="$(openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -showcerts < /dev/null 2>/dev/null |
            awk '/BEGIN CERT/ {n++; c = ""} n {c = c $0 "\n"} END {printf "%s", c}' |
            openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2 || true)"
    done
    echo "image test: restored through the API in $((SECONDS - started)) s, to healthy HTTPS"
    check_ca "$fingerprint"
    first_certificate_listed "$password" "after the restore"
    api GET /appliance/restore > "$WORK/restore-status.json"
    [ "$(json "['state']" < "$WORK/restore-status.json")" = restored ] ||
        fail "the restore's status is not restored: $(cat "$WORK/restore-status.json")"
    # The restore's own audit row went into the replaced database: the restored daemon records
    # it in the one it serves, at its first start.
    guest "journalctl -b -u lemur.service --no-pager -o cat" |
        grep -q "audited the restore that brought this appliance back" ||
        fail "the restored daemon did not record the restore in its audit log"
    no_failed_units 0
    echo "image test: the restored appliance serves the first one's CA, takes its admin password, lists its certificate, issues, says it was restored and audited it; memory $(guest_memory)"
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

# The API's record of the last upgrade reaches state $1 (for release $2) within two minutes; its
# JSON is left in $WORK/upgrade-status.json.
wait_for_upgrade_state() {
    local wanted="$1" version="$2" started=$SECONDS state=""
    until [ "$state" = "$wanted" ]; do
        [ $((SECONDS - started)) -lt 120 ] ||
            fail "the upgrade's record never said $wanted: $(cat "$WORK/upgrade-status.json")"
        sleep 2
        api GET /appliance/upgrade > "$WORK/upgrade-status.json" || continue
        state="$(json "['last']['state']" < "$WORK/upgrade-status.json")"
    done
    [ "$(json "['last']['version']" < "$WORK/upgrade-status.json")" = "$version" ] ||
        fail "the upgrade's record is of another release: $(cat "$WORK/upgrade-status.json")"
}

# Signed in afresh with password $1, the certificate issued at the first boot is listed and the
# CA issues again; $2 says when, for the failure.
first_certificate_listed() {
    local password="$1" when="$2" serial
    TOKEN=""
    serial="$(json "['serial']" < "$WORK/first.json")"
    issue_a_certificate "$password"
    api GET "/certificates?filter=serial;$serial" | json "['total']" | grep -q '^1$' ||
        fail "the first boot's certificate is not listed $when"
}

# After an upgrade or a fall-back: slot $1 serves, the admin signs in again, the certificate
# issued at the first boot is there, and the CA still issues.
check_running_slot() {
    local slot="$1" password="$2" from="$3"
    wait_for_console "appliance [^ ]+, root slot $slot" "$from"
    wait_for_https
    no_failed_units "$from"
    first_certificate_listed "$password" "in slot $slot"
    echo "image test: slot $slot healthy $BOOT_SECONDS s after it was seen; the earlier certificate is there, the CA issues"
}

# After a trial (an upgrade's boot, or the boot back from a failed one), from console byte $1 on:
# lemur-trial.service said $2 and $3, and neither the trial's marker nor the database's snapshot
# is left.
check_trial() {
    local from="$1"
    for said in "$2" "$3"; do
        console_since "$from" | grep -a -q "$said" || fail "lemur-trial.service never said: $said"
    done
    # The boot check decides (and clears a passed trial's files) ten seconds after the daemon
    # and nginx are up, which is when HTTPS was seen.
    local started=$SECONDS
    until guest 'systemctl is-active --quiet lemur-boot-check.service'; do
        [ $((SECONDS - started)) -lt 300 ] || fail "the boot check did not finish"
        sleep 2
    done
    guest 'test ! -e /var/lib/lemur-upgrade/trial && test ! -e /var/lib/lemur/upgrade/before-trial.db' ||
        fail "the trial's marker or snapshot is left: $(guest 'ls -l /var/lib/lemur-upgrade /var/lib/lemur/upgrade; journalctl -b -u lemur-boot-check -u lemur-trial --no-pager | tail -20')"
    echo "image test: lemur-trial.service: $2; $3; marker and snapshot gone"
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
    echo "image test: a flipped byte in the root slot stops the boot: $(console_since "$from" |
        grep -a -o -m1 -E 'device-mapper: verity: [^[:cntrl:]]*(corrupt|failed)[a-z]*')"
    kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=""
}

main() {
    start_syslog_receiver
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
    check_ssh
    check_site_packages
    check_listeners
    check_remote_syslog
    echo "image test: memory after the first boot: $(guest_memory)"
    echo "image test: $(guest systemd-analyze | head -1)"
    echo "image test: the chain to nginx serving, and the slowest units:"
    guest 'systemd-analyze critical-chain --no-pager nginx.service; systemd-analyze blame --no-pager' |
        grep -v '\.device$' | head -30 | sed 's/^/image test:   /'

    cp "$WORK/issued.json" "$WORK/first.json"
    check_key_stock
    take_backup

    local from
    from="$(console_mark)"
    upload "$BUNDLE"
    echo "image test: uploaded $(basename "$BUNDLE"): $(json "['status']" < "$WORK/upload.json")"
    check_running_slot b "$password" "$from"
    check_trial "$from" "is on trial in slot b" "kept the database as it was before the trial"
    local version
    version="$(json "['version']" < "$WORK/upload.json")"
    wait_for_upgrade_state passed "$version"
    [ "$(json "['slot']" < "$WORK/upgrade-status.json")" = b ] ||
        fail "the API says another slot runs: $(cat "$WORK/upgrade-status.json")"
    echo "image test: the API says release $version passed its trial in slot b"

    broken_bundle
    from="$(console_mark)"
    upload "$WORK/broken.upgrade"
    echo "image test: uploaded a broken release"
    # Three boots of it, each ending bad; then slot b again. A boot ends bad when the boot check
    # says so, or when the guest's kernel crashes first (seen once under qemu's emulation: a
    # panic in the network stack): the boot loader counted the try as it started it, so a crash
    # uses it up as a bad verdict does, which is what boot counting is for.
    local waited=$SECONDS bad=0
    until [ "$bad" -ge 3 ]; do
        kill -0 "$QEMU_PID" 2>/dev/null || fail "qemu exited during the broken release's tries"
        [ $((SECONDS - waited)) -lt 900 ] ||
            fail "the broken release's boots ended bad $bad times, not 3, in $((SECONDS - waited)) s; the boots since the upload:
$(boots_since "$from")"
        sleep 2
        # A panic's own line, not the "---[ end Kernel panic" a halted kernel adds after it.
        bad="$(console_since "$from" | grep -a -o -E "this boot is bad|\] Kernel panic" | wc -l || true)"
    done
    local crashed
    crashed="$(console_since "$from" | grep -a -o "\] Kernel panic" | wc -l || true)"
    [ "$crashed" -eq 0 ] ||
        echo "image test: $crashed of the broken release's boots ended in a guest kernel panic before the boot check's verdict"
    from="$(console_mark)"
    check_running_slot b "$password" "$from"
    check_trial "$from" "failed its trial in slot a" "the trial took no snapshot"
    wait_for_upgrade_state fell_back "$(json "['version']" < "$WORK/upload.json")"
    grep -q "failed its trial in slot a" "$WORK/upgrade-status.json" ||
        fail "the API does not say why the release fell back: $(cat "$WORK/upgrade-status.json")"
    echo "image test: the broken release ended bad three times, slot b came back, and the API says it fell back"

    power_off
    check_boot_entries
    check_data_grown
    check_verity_refuses
    restore_onto_fresh_image "$password" "$fingerprint"
    echo "image test: passed in $((SECONDS - started)) s"
}

main
