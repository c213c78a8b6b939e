#!/usr/bin/env bash
# Build the Cleanroom room image from the pinned inputs (images/inputs.lock, fetched by
# images/fetch.sh) and a room binary:
#
#   images/build.sh --room PATH/cleanroom-room [--out DIR] [--dl DIR] [--cleanroom PATH/cleanroom]
#
# Writes into DIR (default images/build/out):
#   vmlinuz            the kernel (Debian's 6.12 cloud kernel, byte for byte)
#   initrd.img         uncompressed newc cpio: /init (busybox sh), busybox, the room
#                      binary and the C libraries it links, the guest modules
#   cmdline            the fixed kernel command line (measured on SEV-SNP and TDX)
#   OVMF.amdsev.fd     SEV-SNP firmware (AmdSev build: measures kernel, initrd, cmdline)
#   OVMF.inteltdx.fd   TDX firmware (TDVF)
#   manifest.txt       SHA-256 of every input and output
#   attestation.toml   (with --cleanroom) the contract's [attestation] reference values:
#                      the SNP launch digest for --vcpus/--vcpu-type (default 2 x EPYC-v4),
#                      the TDX MRTD and the TDX RTMR1-2 of a direct boot by the TDVF,
#                      computed by that `cleanroom` binary
#
# Same inputs, same bytes: file modes, owners and mtimes (SOURCE_DATE_EPOCH) are fixed,
# the archive is sorted and device-independent, nothing is compressed with a timestamp.
set -euo pipefail
export LC_ALL=C TZ=UTC

# The image's fixed configuration (changing any of it changes the measurement).
KVER=6.12.95+deb12-cloud-amd64
CMDLINE="console=ttyS0 panic=-1 quiet"
SOURCE_DATE_EPOCH=1767225600 # 2026-01-01T00:00:00Z
export SOURCE_DATE_EPOCH
MODULES="configfs tsm sev-guest tdx-guest failover net_failover virtio_net virtio_blk"
APPLETS="sh mount insmod findfs sleep ip udhcpc cat poweroff sync echo"

here="$(cd "$(dirname "$0")" && pwd)"
out="$here/build/out"
dl="$here/build/dl"
room=""
cli=""
vcpus=2
vcpu_type=EPYC-v4
usage="usage: images/build.sh --room FILE [--out DIR] [--dl DIR] [--cleanroom FILE [--vcpus N] [--vcpu-type T]]"
while [ $# -gt 0 ]; do
  case "$1" in
    --room) room="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --dl) dl="$2"; shift 2 ;;
    --cleanroom) cli="$2"; shift 2 ;;
    --vcpus) vcpus="$2"; shift 2 ;;
    --vcpu-type) vcpu_type="$2"; shift 2 ;;
    *) echo "build.sh: unknown argument $1 ($usage)" >&2; exit 2 ;;
  esac
done
[ -n "$room" ] || { echo "build.sh: --room is required ($usage)" >&2; exit 2; }
[ -f "$room" ] || { echo "build.sh: --room $room: no such file" >&2; exit 2; }
for tool in dpkg-deb cpio xz sha256sum; do
  command -v "$tool" >/dev/null || { echo "build.sh: needs $tool (apt-get install cpio xz-utils dpkg)" >&2; exit 2; }
done

# Every pinned input, hash-checked again here (fetch.sh downloads them).
declare -A input
while read -r name sha url; do
  case "$name" in ''|'#'*) continue ;; esac
  file="$dl/$(basename "$url")"
  [ -f "$file" ] || { echo "build.sh: input $name missing: $file (run images/fetch.sh)" >&2; exit 2; }
  echo "$sha  $file" | sha256sum --check --status ||
    { echo "build.sh: input $name: $file does not have the SHA-256 inputs.lock pins ($sha)" >&2; exit 2; }
  input[$name]="$file"
done < "$here/inputs.lock"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for name in "${!input[@]}"; do
  mkdir -p "$work/x/$name"
  dpkg-deb -x "${input[$name]}" "$work/x/$name"
done

root="$work/root"
mkdir -p "$root"/{bin,lib,lib64,etc,dev,proc,sys,run,tmp,data,state,lib/modules}
cp "$work/x/busybox/bin/busybox" "$root/bin/busybox"
for a in $APPLETS; do ln -s busybox "$root/bin/$a"; done
cp "$room" "$root/bin/cleanroom-room"
# The room binary's C libraries, from the pinned Debian packages (not this machine's).
mkdir -p "$root/lib/x86_64-linux-gnu"
for lib in libc.so.6 libm.so.6 ld-linux-x86-64.so.2; do
  cp "$work/x/libc6/lib/x86_64-linux-gnu/$lib" "$root/lib/x86_64-linux-gnu/$lib"
done
cp "$work/x/libgcc-s1/lib/x86_64-linux-gnu/libgcc_s.so.1" "$root/lib/x86_64-linux-gnu/"
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
moddir="$work/x/kernel/lib/modules/$KVER/kernel"
for m in $MODULES; do
  ko="$(find "$moddir" -name "$m.ko.xz" | head -n1)"
  [ -n "$ko" ] || { echo "build.sh: module $m not in the kernel package" >&2; exit 2; }
  xz --decompress --stdout "$ko" > "$root/lib/modules/$m.ko"
done
cp "$here/rootfs/init" "$root/init"
cp "$here/rootfs/udhcpc.script" "$root/etc/udhcpc.script"
ln -s ../run/resolv.conf "$root/etc/resolv.conf"
printf 'root:x:0:0:root:/:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"

# Fixed modes and times: nothing of this machine's umask or clock reaches the archive.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$root/init" "$root/etc/udhcpc.script" "$root/bin/busybox" "$root/bin/cleanroom-room" \
  "$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$root/lib/x86_64-linux-gnu/libc.so.6"
chmod 1777 "$root/tmp"
find "$root" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
(cd "$root" && find . -mindepth 1 -print0 | sort -z |
  cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) > "$out/initrd.img.part"
mv "$out/initrd.img.part" "$out/initrd.img"
cp "$work/x/kernel/boot/vmlinuz-$KVER" "$out/vmlinuz"
printf '%s' "$CMDLINE" > "$out/cmdline"
cp "$work/x/ovmf-amdsev/usr/share/ovmf/OVMF.amdsev.fd" "$out/OVMF.amdsev.fd"
cp "$work/x/ovmf-inteltdx/usr/share/ovmf/OVMF.inteltdx.ms.fd" "$out/OVMF.inteltdx.fd"

{
  echo "# Cleanroom room image, kernel $KVER, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
  echo "# cmdline: $CMDLINE"
  echo "# inputs"
  for name in $(printf '%s\n' "${!input[@]}" | sort); do
    echo "$(sha256sum < "${input[$name]}" | cut -d' ' -f1)  $name $(basename "${input[$name]}")"
  done
  echo "$(sha256sum < "$room" | cut -d' ' -f1)  room cleanroom-room"
  echo "# outputs"
  for f in vmlinuz initrd.img cmdline OVMF.amdsev.fd OVMF.inteltdx.fd; do
    echo "$(sha256sum < "$out/$f" | cut -d' ' -f1)  $f"
  done
} > "$out/manifest.txt"

if [ -n "$cli" ]; then
  snp="$("$cli" measure snp --ovmf "$out/OVMF.amdsev.fd" --kernel "$out/vmlinuz" \
    --initrd "$out/initrd.img" --append "$CMDLINE" --vcpus "$vcpus" --vcpu-type "$vcpu_type" |
    sed -n 's/^snp measurement: //p')"
  tdx="$("$cli" measure tdx --tdvf "$out/OVMF.inteltdx.fd" --kernel "$out/vmlinuz" \
    --initrd "$out/initrd.img" --append "$CMDLINE")"
  mrtd="$(sed -n 's/^tdx mrtd: *//p' <<<"$tdx")"
  rtmr1="$(sed -n 's/^tdx rtmr1: *//p' <<<"$tdx")"
  rtmr2="$(sed -n 's/^tdx rtmr2: *//p' <<<"$tdx")"
  [ -n "$snp" ] && [ -n "$mrtd" ] && [ -n "$rtmr1" ] && [ -n "$rtmr2" ] ||
    { echo "build.sh: $cli measure failed" >&2; exit 1; }
  cat > "$out/attestation.toml" <<SNIPPET
# Reference values of this image ($(sha256sum < "$out/initrd.img" | cut -c1-16)... initrd),
# computed by images/build.sh with \`cleanroom measure\`. Merge into the contract's
# [attestation] (platforms = ["snp", "tdx"]); the commented lines are the signers' choice.

[attestation.snp]
# QEMU, $vcpus x $vcpu_type vCPUs, guest features 0x1, kernel-hashes=on
measurements = ["$snp"]
# min_tcb = { bootloader = ?, tee = ?, snp = ?, microcode = ? }   # the fleet's current TCB

[attestation.tdx]
# MRTD of the TDVF, page additions single-pass (Linux KVM 6.16+; two-pass: older hosts)
mrtd = ["$mrtd"]
# RTMR1 (the kernel, then the TDVF's boot events) and RTMR2 (the command line, then the
# initrd) of a direct boot by this TDVF under QEMU 10.1 or later, which hands the kernel over
# unpatched; QEMU before 10.0: \`cleanroom measure tdx --kernel-setup qemu-patched --memory\`
# (see docs/deploy.md, which also says why this firmware's Secure Boot stops this boot today)
rtmr1 = "$rtmr1"
rtmr2 = "$rtmr2"
# rtmr0: from a reference boot on the target host configuration,
# \`cleanroom measure tdx --quote QUOTE\` (see docs/deploy.md)
SNIPPET
fi
cat "$out/manifest.txt"
