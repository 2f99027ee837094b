#!/usr/bin/env bash
# Builds the Lemur-HSM appliance image without privileges: no loop device, no mount, no
# CAP_SYS_ADMIN. Called by `./dev image`, which builds the release binaries and the web UI first.
#
#   image/build.sh OUT_DIR
#
# Writes to OUT_DIR: lemur-hsm-VERSION.raw (GPT, UEFI through systemd-boot), .qcow2 (compressed),
# .ova (OVF + streamOptimized VMDK), .upgrade (the root slot as a signed bundle, for appliances
# already running: POST /api/1/appliance/upgrade), .manifest (every Debian package and version
# in the image) and SHA256SUMS.
#
# The release key signs the upgrade bundle, and its public half goes into the image, which
# installs only bundles it signed: LEMUR_RELEASE_KEY names it (EC P-256, PEM). Without it, a
# development key is made once in /var/tmp and used: fine for testing, never for a release.
#
# Disk: ESP | root A | verity A | root B | verity B | data. Each root slot is a read-only EROFS
# file system (compressed, and with no fsck to trip over a read-only device) checked block by
# block by dm-verity (its hash tree in the partition beside it, the
# root hash on the boot entry's command line); slot B stays empty until an upgrade writes it. The
# data partition is /var: the database, the token, sealed secrets, the configuration, logs; it
# grows to fill the disk at first boot and an upgrade never touches it.
#
# Everything is made as plain files: the root tree by mmdebstrap (chroot(2), no mounts), file
# systems by mkfs.erofs, mkfs.ext4 -d and mkfs.vfat + mtools, the hash trees by veritysetup on files, the
# partition table by sfdisk on the disk file, partitions copied in by dd.
set -euo pipefail
# What is copied from the checkout gets these modes, whatever the checkout's umask was.
umask 022

OUT="${1:?usage: image/build.sh OUT_DIR}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}/release"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -1)"
NAME="lemur-hsm-$VERSION"
WORK="${LEMUR_IMAGE_WORK:-/var/tmp/lemur-image}"
RELEASE_KEY="${LEMUR_RELEASE_KEY:-/var/tmp/lemur-development-release-key.pem}"
MIRROR="${LEMUR_IMAGE_MIRROR:-http://deb.debian.org/debian}"
SUITE=trixie

# Partition sizes, MiB. A root slot holds the whole system; the data partition starts small and
# grows at first boot.
ESP_MIB=192
ROOT_MIB=640
VERITY_MIB=16
DATA_MIB=256
# The qcow2's and the OVA's disk.
VIRTUAL_DISK_GIB=16

# Fixed GUIDs, so the same inputs give the same disk (the discoverable partitions types).
DISK_GUID=6c6f9d5e-8a43-4e0b-9a39-1f3c1e7d4a01
TYPE_ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
TYPE_ROOT=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709
TYPE_VERITY=2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5
TYPE_VAR=4D21B016-B534-45C2-A9FB-5C16E091FD2D
UUID_ESP=0b8d3a6e-1c2f-4e55-8a10-6a1e0e7c5b01
UUID_ROOT_A=2a6e3b7d-5c41-4f0a-9d2e-7b8c1a3f6e0a
UUID_VERITY_A=3b7f4c8e-6d52-4a1b-8e3f-8c9d2b4a7f0a
UUID_ROOT_B=2a6e3b7d-5c41-4f0a-9d2e-7b8c1a3f6e0b
UUID_VERITY_B=3b7f4c8e-6d52-4a1b-8e3f-8c9d2b4a7f0b
UUID_DATA=5d9a6e0f-8f74-4c3d-a051-0e1f4d6c9a21
FS_UUID_DATA=6e0b7f1a-9a85-4d4e-b162-1f2a5e7d0b32
FS_UUID_ROOT=7f1c8a2b-0b96-4e5f-8273-2a3b6f8e1c43
VERITY_UUID=8a2d9b3c-1ca7-4f60-9384-3b4c7a9f2d54
VERITY_SALT=4c656d75722d48534d2076657269747920726f6f742073616c742c2066697865
# The daemon's uid and gid on every appliance (Debian's dynamic system range, below where
# systemd-sysusers starts allocating).
LEMUR_UID=950
# File times inside the image: the last commit's, so the same checkout gives the same image.
EPOCH="$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)"
export SOURCE_DATE_EPOCH="$EPOCH"

# What the appliance runs, from Debian only. The generic kernel, so the raw image boots on
# hardware as well as in the hypervisors the qcow2 and the OVA go to (the cloud kernel lacks
# e1000, which VirtualBox and VMware default to); drivers no appliance uses are removed.
PACKAGES=(
    systemd-sysv systemd-resolved systemd-timesyncd systemd-boot-efi udev dbus netbase
    systemd-boot linux-image-amd64 kmod dracut systemd-cryptsetup zstd e2fsprogs fdisk cryptsetup-bin
    softhsm2 nginx-light rsyslog rsyslog-gnutls logrotate nftables ca-certificates
    openssh-server
)

log() { echo "image: $*" >&2; }

# The kernel command line of every slot's entry, less what names the slot (the verity root hash,
# the slot's partitions, lemur.slot=), which goes first. A verity mismatch panics the kernel and
# a failed initrd reboots, so a damaged slot on trial counts its tries down and the previous one
# boots again. The serial console last: it gets the login prompt and systemd's status.
KERNEL_OPTIONS="root=/dev/mapper/root ro rootfstype=erofs systemd.verity_root_options=panic-on-corruption panic=10 rd.shell=0 rd.emergency=reboot quiet console=tty0 console=ttyS0,115200"

# The release key, or a development key made once.
release_key() {
    if [ ! -e "$RELEASE_KEY" ]; then
        log "no LEMUR_RELEASE_KEY: making a development release key in $RELEASE_KEY"
        (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
            -out "$RELEASE_KEY" 2>/dev/null)
    fi
}

check_inputs() {
    for file in "$TARGET/lemur" "$TARGET/lemur-hsm" "$REPO/web/dist/index.html"; do
        [ -e "$file" ] || { echo "missing $file: run ./dev image, which builds it" >&2; exit 1; }
    done
    for tool in openssl mmdebstrap mkfs.erofs mkfs.ext4 mkfs.vfat mcopy sfdisk veritysetup qemu-img; do
        command -v "$tool" >/dev/null || { echo "missing $tool: run ./dev image, which installs it" >&2; exit 1; }
    done
}

# Site packages: LEMUR_IMAGE_DEBS names a directory of .deb files (an HSM vendor's PKCS#11
# client, say) installed into the root slots with Debian's, so that their code is verified like
# the rest and the seed's [hsm] module may name it. apt, outside the tree, hands dpkg, inside
# it, each file's path as it is, so the files are staged at the same path on both sides; copied
# in, because mmdebstrap's own hook for this bind-mounts them, which needs CAP_SYS_ADMIN.
SITE_DEBS=/run/lemur-site-debs

# mmdebstrap's options for the site packages, one per line (none without LEMUR_IMAGE_DEBS).
site_packages() {
    [ -n "${LEMUR_IMAGE_DEBS:-}" ] || return 0
    rm -rf "$SITE_DEBS"
    mkdir -p "$SITE_DEBS"
    local deb found=0
    for deb in "$LEMUR_IMAGE_DEBS"/*.deb; do
        [ -f "$deb" ] || continue
        case "$(basename "$deb")" in
            *[!A-Za-z0-9._+~-]*) echo "LEMUR_IMAGE_DEBS: $deb: name a package file with letters, digits and ._+~- only" >&2; exit 1 ;;
        esac
        cp "$deb" "$SITE_DEBS/"
        echo "--include=$SITE_DEBS/$(basename "$deb")"
        found=1
    done
    [ "$found" = 1 ] || { echo "LEMUR_IMAGE_DEBS=$LEMUR_IMAGE_DEBS holds no .deb file" >&2; exit 1; }
    echo "--setup-hook=mkdir -p \"\$1$SITE_DEBS\" && cp $SITE_DEBS/*.deb \"\$1$SITE_DEBS/\""
    echo "--customize-hook=rm -rf \"\$1$SITE_DEBS\""
}

# The root tree: Debian, then our files, then what the image must not carry.
build_tree() {
    local tree="$1" site
    rm -rf "$tree"
    site_packages > "$WORK/site-options"
    mapfile -t site < "$WORK/site-options"
    log "root tree: Debian $SUITE from $MIRROR${site:+, with the site packages in $LEMUR_IMAGE_DEBS}"
    mmdebstrap --mode=root --skip=chroot/mount --variant=apt \
        --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        "${site[@]}" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --essential-hook='mkdir -p "$1/etc/dracut.conf.d"' \
        --essential-hook="cp '$HERE/rootfs/etc/dracut.conf.d/lemur.conf' \"\$1/etc/dracut.conf.d/\"" \
        "$SUITE" "$tree" "$MIRROR"
    install_lemur "$tree"
    configure "$tree"
    manifest "$tree" > "$WORK/manifest"
    rm -rf "$SITE_DEBS"
    strip_tree "$tree"
}

# What went into the image: the source, our binaries, the UI, then every Debian package.
manifest() {
    local tree="$1" dirty=""
    git -C "$REPO" diff --quiet HEAD 2>/dev/null || dirty=" (with uncommitted changes)"
    echo "# Lemur-HSM $VERSION appliance image"
    echo "source $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)$dirty"
    echo "suite $SUITE from $MIRROR"
    (cd "$TARGET" && sha256sum lemur lemur-hsm) | sed 's/^/sha256 /'
    echo "sha256 $(cd "$REPO/web/dist" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)  web/dist"
    if [ -n "${LEMUR_IMAGE_DEBS:-}" ]; then
        (cd "$SITE_DEBS" && sha256sum -- *.deb) | sed 's/^/site-package sha256 /'
    fi
    echo "# Debian packages"
    chroot "$tree" dpkg-query -W -f='${Package} ${Version}\n'
}

install_lemur() {
    local tree="$1"
    log "installing Lemur-HSM $VERSION"
    install -m 0755 "$TARGET/lemur" "$TARGET/lemur-hsm" "$tree/usr/bin/"
    mkdir -p "$tree/usr/share/lemur-hsm"
    cp -r "$REPO/web/dist" "$tree/usr/share/lemur-hsm/web"
    install -m 0644 "$REPO"/systemd/*.service "$REPO"/systemd/*.path "$tree/usr/lib/systemd/system/"
    mkdir -p "$tree/usr/lib/systemd/system/nginx.service.d"
    install -m 0644 "$REPO"/systemd/nginx.service.d/*.conf "$tree/usr/lib/systemd/system/nginx.service.d/"
    # The daemon's user with one number in every release: its files on the data partition
    # outlive the root slot they were made under, and an upgrade must find them its own.
    sed "s/^u lemur - /u lemur $LEMUR_UID /" "$REPO"/systemd/sysusers.d/lemur.conf \
        > "$tree/usr/lib/sysusers.d/lemur.conf"
    grep -q "^u lemur $LEMUR_UID " "$tree/usr/lib/sysusers.d/lemur.conf" ||
        { echo "systemd/sysusers.d/lemur.conf changed: pin the uid anew" >&2; exit 1; }
    install -m 0644 "$REPO"/systemd/tmpfiles.d/lemur.conf "$tree/usr/lib/tmpfiles.d/lemur.conf"
    rm -f "$tree"/etc/nginx/sites-enabled/*
    install -m 0644 "$REPO/nginx/lemur.conf" "$tree/etc/nginx/sites-enabled/lemur.conf"
    install -m 0644 "$REPO/README.md" "$tree/usr/share/lemur-hsm/README.md"
    openssl pkey -in "$RELEASE_KEY" -pubout -out "$tree/usr/share/lemur-hsm/upgrade-key.pem"
    chmod 0644 "$tree/usr/share/lemur-hsm/upgrade-key.pem"
    # systemd ships an empty /etc/credstore.encrypted; ours is a link to the data partition.
    rm -rf "$tree/etc/credstore.encrypted"
    # Owned by root, modes from the umask above: not the checkout's owner or group-writable modes.
    cp -dR --no-preserve=ownership,mode "$HERE/rootfs/." "$tree/"
    chmod 0755 "$tree"/usr/lib/lemur/*
}

# What a read-only root needs, and the units the appliance starts.
configure() {
    local tree="$1"
    log "configuring"
    # The seed names the host (lemur-seed.service, at every boot).
    rm -f "$tree/etc/hostname"
    ln -sf ../run/systemd/resolve/stub-resolv.conf "$tree/etc/resolv.conf"
    # The machine ID lives on the data partition (mounted by the initrd, before systemd reads
    # it): made at the first boot, the same at every later one. It must not change: systemd binds
    # the host key that encrypts the appliance's credentials to it.
    ln -sf ../var/lib/machine-id "$tree/etc/machine-id"
    # As systemd's tmpfiles.d/credstore.conf wants it: the root cannot be changed at boot.
    chmod 0700 "$tree/etc/credstore"
    # Users before the root becomes read-only: sysusers cannot write /etc at boot.
    chroot "$tree" systemd-sysusers
    [ "$(chroot "$tree" id -u lemur):$(chroot "$tree" id -g lemur)" = "$LEMUR_UID:$LEMUR_UID" ] ||
        { echo "the lemur user did not get uid and gid $LEMUR_UID: another package took it" >&2; exit 1; }
    # Root locked: the appliance is used through the web UI and the API.
    chroot "$tree" passwd --lock root >/dev/null
    mkdir -p "$tree/efi"
    chroot "$tree" systemctl enable systemd-networkd systemd-resolved systemd-timesyncd \
        nftables lemur-machine-id.service lemur-grow-data.service lemur-seed.service lemur-provision.service lemur.service \
        lemur-frontend.path lemur-upgrade.path lemur-backup.socket lemur-restore.socket lemur-boot-check.service \
        nginx ssh.service >/dev/null 2>&1
    # sshd only as ssh.service, which the seed turns on (not socket-activated, not keyed at build).
    chroot "$tree" systemctl disable apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service \
        ssh.socket sshd-keygen.service >/dev/null 2>&1 || true
    local kernel
    kernel="$(basename "$(ls -d "$tree"/lib/modules/*)")"
    prune_modules "$tree" "$kernel"
    log "initrd for $kernel (dracut: systemd, dm-verity)"
    chroot "$tree" dracut --force --no-hostonly --kver "$kernel" /boot/initrd >/dev/null 2>&1
    cp "$tree/boot/vmlinuz-$kernel" "$WORK/vmlinuz"
    cp "$tree/boot/initrd" "$WORK/initrd"
    cp "$tree/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$WORK/systemd-bootx64.efi"
}

# Sound, video capture, graphics beyond the firmware's frame buffer, radios and exotic buses:
# nothing an appliance on a server or a VM needs.
prune_modules() {
    local modules="$1/lib/modules/$2/kernel"
    rm -rf "$modules"/sound "$modules"/drivers/media "$modules"/drivers/gpu \
        "$modules"/drivers/net/wireless "$modules"/net/wireless "$modules"/net/mac80211 \
        "$modules"/drivers/bluetooth "$modules"/net/bluetooth "$modules"/drivers/infiniband \
        "$modules"/drivers/staging "$modules"/drivers/isdn "$modules"/drivers/iio \
        "$modules"/drivers/input/joystick "$modules"/drivers/input/touchscreen \
        "$modules"/drivers/input/tablet "$modules"/drivers/net/can "$modules"/drivers/comedi \
        "$modules"/drivers/hwmon "$modules"/drivers/thunderbolt "$modules"/drivers/net/usb
    chroot "$1" depmod "$2"
}

# No compiler, package manager caches or docs in what boots. (dracut stays: the kernel package
# depends on an initrd generator, and removing one removes the kernel's modules with it.)
strip_tree() {
    local tree="$1"
    rm -rf "$tree"/var/cache/apt/* "$tree"/var/lib/apt/lists/* "$tree"/boot/* "$tree"/tmp/* \
        "$tree"/var/tmp/*
    # The build's logs, not the directories services log into.
    find "$tree/var/log" -type f -delete
    # Package scripts run without a /dev mount leave plain files there.
    find "$tree/dev" -mindepth 1 -delete
    rm -f "$tree/etc/ssh"/ssh_host_*
    # No setuid or setgid programs: nobody but root logs in (over ssh, by key), and no service
    # changes user through one.
    find "$tree" -xdev -type f -perm /6000 -print -exec chmod ug-s {} + |
        sed "s|^$tree|image: no setuid/setgid bit on |" >&2
}

# root.img (the tree without /var), data.img (/var), verity.img and its root hash.
file_systems() {
    local tree="$1"
    log "file systems"
    rm -rf "$WORK/var"
    mv "$tree/var" "$WORK/var"
    mkdir "$tree/var"
    rm -f "$WORK/root.img" "$WORK/data.img" "$WORK/verity.img"
    mkfs.erofs --quiet -zlz4hc -T0 -U "$FS_UUID_ROOT" "$WORK/root.img" "$tree"
    local size
    size=$(stat -c %s "$WORK/root.img")
    [ "$size" -le $((ROOT_MIB * 1048576)) ] || { echo "the root ($size bytes) outgrows its slot" >&2; exit 1; }
    # 4 KiB blocks and the default inode ratio, as for the large file system it grows into.
    E2FSPROGS_FAKE_TIME=$EPOCH mkfs.ext4 -q -T default -b 4096 -L lemur-data -U "$FS_UUID_DATA" \
        -E hash_seed="$FS_UUID_DATA" -d "$WORK/var" "$WORK/data.img" "${DATA_MIB}M"
    veritysetup format --salt="$VERITY_SALT" --uuid="$VERITY_UUID" "$WORK/root.img" \
        "$WORK/verity.img" > "$WORK/verity.txt"
    sed -n 's/^Root hash:[[:space:]]*//p' "$WORK/verity.txt" > "$WORK/roothash"
    [ -s "$WORK/roothash" ] || { cat "$WORK/verity.txt" >&2; exit 1; }
}

# The ESP: systemd-boot, the slot A kernel and initrd, its boot entry, and the example seed.
esp() {
    log "ESP"
    local esp="$WORK/esp.img" hash
    hash="$(cat "$WORK/roothash")"
    rm -f "$esp"
    mkfs.vfat -F 32 -n LEMUR-ESP -i 4c454d55 -C "$esp" $((ESP_MIB * 1024)) >/dev/null
    export MTOOLS_SKIP_CHECK=1
    mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries ::/a ::/b
    mcopy -i "$esp" "$WORK/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i "$esp" "$WORK/systemd-bootx64.efi" ::/EFI/systemd/systemd-bootx64.efi
    mcopy -i "$esp" "$WORK/vmlinuz" ::/a/vmlinuz
    mcopy -i "$esp" "$WORK/initrd" ::/a/initrd
    # No menu unless a key is held at power-on (space): a slot that fails falls back by itself.
    printf 'default lemur-*\ntimeout 0\neditor no\n' > "$WORK/loader.conf"
    mcopy -i "$esp" "$WORK/loader.conf" ::/loader/loader.conf
    cat > "$WORK/entry.conf" <<EOF
title Lemur-HSM $VERSION (slot a)
sort-key lemur-hsm
version 1
linux /a/vmlinuz
initrd /a/initrd
options roothash=$hash systemd.verity_root_data=PARTUUID=$UUID_ROOT_A systemd.verity_root_hash=PARTUUID=$UUID_VERITY_A lemur.slot=a $KERNEL_OPTIONS
EOF
    mcopy -i "$esp" "$WORK/entry.conf" ::/loader/entries/lemur-a.conf
    mcopy -i "$esp" "$HERE/lemur-appliance.toml" ::/lemur-appliance.toml
}

# The GPT disk, each partition copied to its place.
disk() {
    log "disk"
    local raw="$OUT/$NAME.raw"
    local total=$((1 + ESP_MIB + 2 * (ROOT_MIB + VERITY_MIB) + DATA_MIB + 1))
    rm -f "$raw"
    truncate -s "${total}M" "$raw"
    sfdisk --quiet "$raw" <<EOF
label: gpt
label-id: $DISK_GUID
unit: sectors
first-lba: 2048
start=2048, size=$((ESP_MIB * 2048)), type=$TYPE_ESP, uuid=$UUID_ESP, name=esp
size=$((ROOT_MIB * 2048)), type=$TYPE_ROOT, uuid=$UUID_ROOT_A, name=lemur-root-a
size=$((VERITY_MIB * 2048)), type=$TYPE_VERITY, uuid=$UUID_VERITY_A, name=lemur-verity-a
size=$((ROOT_MIB * 2048)), type=$TYPE_ROOT, uuid=$UUID_ROOT_B, name=lemur-root-b
size=$((VERITY_MIB * 2048)), type=$TYPE_VERITY, uuid=$UUID_VERITY_B, name=lemur-verity-b
size=$((DATA_MIB * 2048)), type=$TYPE_VAR, uuid=$UUID_DATA, name=lemur-data
EOF
    local start=1
    place "$raw" "$WORK/esp.img" $start; start=$((start + ESP_MIB))
    place "$raw" "$WORK/root.img" $start; start=$((start + ROOT_MIB))
    place "$raw" "$WORK/verity.img" $start; start=$((start + VERITY_MIB + ROOT_MIB + VERITY_MIB))
    place "$raw" "$WORK/data.img" $start
}

place() {
    dd if="$2" of="$1" bs=1M seek="$3" conv=notrunc,sparse status=none
}

# The root slot as an upgrade bundle, signed with the release key.
upgrade_bundle() {
    log "upgrade bundle"
    "$HERE/bundle.sh" --key "$RELEASE_KEY" --members "$WORK" --version "$VERSION" \
        --source "$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)" \
        --roothash "$(cat "$WORK/roothash")" --options "$KERNEL_OPTIONS" "$OUT/$NAME.upgrade"
}

# qcow2 and the OVA (OVF descriptor and streamOptimized VMDK, for VMware and VirtualBox).
conversions() {
    log "qcow2, ova"
    # A hypervisor's disk is as large as its image says: 16 GiB for the data partition to grow
    # into at first boot (sparse: the files stay small).
    local virtual="$WORK/virtual.raw"
    cp --sparse=always "$OUT/$NAME.raw" "$virtual"
    truncate -s "${VIRTUAL_DISK_GIB}G" "$virtual"
    qemu-img convert -c -O qcow2 "$virtual" "$OUT/$NAME.qcow2"
    local vmdk="$WORK/$NAME.vmdk"
    rm -f "$vmdk"
    qemu-img convert -O vmdk -o subformat=streamOptimized "$virtual" "$vmdk"
    rm -f "$virtual"
    local capacity vmdk_size
    capacity=$((VIRTUAL_DISK_GIB << 30))
    vmdk_size="$(stat -c %s "$vmdk")"
    sed -e "s/@NAME@/$NAME/g" -e "s/@VERSION@/$VERSION/g" -e "s/@CAPACITY@/$capacity/g" \
        -e "s/@VMDK_SIZE@/$vmdk_size/g" "$HERE/lemur-hsm.ovf.in" > "$WORK/$NAME.ovf"
    check_ovf "$WORK/$NAME.ovf"
    (cd "$WORK" && sha256sum --tag "$NAME.ovf" "$NAME.vmdk" | sed 's/^SHA256 (\(.*\)) = /SHA256(\1)= /' > "$NAME.mf")
    tar -C "$WORK" --format=ustar --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
        -cf "$OUT/$NAME.ova" "$NAME.ovf" "$NAME.mf" "$NAME.vmdk"
    cp "$WORK/manifest" "$OUT/$NAME.manifest"
    (cd "$OUT" && sha256sum "$NAME.raw" "$NAME.qcow2" "$NAME.ova" "$NAME.upgrade" "$NAME.manifest" > SHA256SUMS)
}

# The OVF descriptor as each hypervisor reads it: every placeholder filled; UEFI for VMware
# (vmw:Config) and for VirtualBox (vbox:Machine, which VirtualBox takes instead of the OVF's own
# hardware, so its CPUs and memory must be the OVF's, and which must attach the disk by the
# exact vbox:uuid of <Disk>, or the import fails).
check_ovf() {
    python3 - "$1" <<'PY'
import sys
import xml.etree.ElementTree as ET

path = sys.argv[1]
text = open(path, encoding="utf-8").read()
ns = {
    "ovf": "http://schemas.dmtf.org/ovf/envelope/1",
    "rasd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
    "vmw": "http://www.vmware.com/schema/ovf",
    "vbox": "http://www.virtualbox.org/ovf/machine",
}
problems = []
if "@" in text.replace("@VERSION@", ""):
    problems.append("a placeholder is left")
root = ET.fromstring(text)
disk = root.find("ovf:DiskSection/ovf:Disk", ns)
disk_uuid = disk.get(f"{{{ns['vbox']}}}uuid", "")
if disk_uuid != disk_uuid.lower() or disk_uuid.startswith("{"):
    problems.append(f"<Disk> vbox:uuid {disk_uuid!r} must be lower case without braces")
items = {
    item.findtext("rasd:ResourceType", namespaces=ns): item.findtext("rasd:VirtualQuantity", namespaces=ns)
    for item in root.iterfind("ovf:VirtualSystem/ovf:VirtualHardwareSection/ovf:Item", ns)
}
firmware = root.find("ovf:VirtualSystem/ovf:VirtualHardwareSection/vmw:Config[@vmw:key='firmware']", ns)
if firmware is None or firmware.get(f"{{{ns['vmw']}}}value") != "efi":
    problems.append("VMware's firmware is not efi")
machine = root.find("ovf:VirtualSystem/vbox:Machine", ns)
if machine is None:
    problems.append("no vbox:Machine")
else:
    # Its elements are in the envelope's default namespace, as VirtualBox writes them.
    hardware = machine.find("ovf:Hardware", ns)
    if hardware.find("ovf:Firmware", ns).get("type") != "EFI":
        problems.append("VirtualBox's firmware is not EFI")
    if hardware.find("ovf:CPU", ns).get("count") != items.get("3"):
        problems.append("vbox:Machine's CPUs are not the OVF's")
    if hardware.find("ovf:Memory", ns).get("RAMSize") != items.get("4"):
        problems.append("vbox:Machine's memory is not the OVF's")
    attached = [image.get("uuid") for image in machine.iterfind(".//ovf:AttachedDevice/ovf:Image", ns)]
    if attached != ["{" + disk_uuid + "}"]:
        problems.append(f"vbox:Machine attaches {attached}, not the disk {disk_uuid}")
for problem in problems:
    print(f"image: {path}: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}

main() {
    check_inputs
    # The seed the image ships must pass the check the appliance runs on it.
    "$TARGET/lemur" appliance seed check "$HERE/lemur-appliance.toml" >/dev/null
    mkdir -p "$WORK" "$OUT"
    OUT="$(cd "$OUT" && pwd)"
    release_key
    local started=$SECONDS
    build_tree "$WORK/tree"
    file_systems "$WORK/tree"
    esp
    disk
    upgrade_bundle
    conversions
    log "done in $((SECONDS - started)) s:"
    (cd "$OUT" && du -h --apparent-size "$NAME.qcow2" "$NAME.ova" && du -h "$NAME.raw") >&2
}

main
