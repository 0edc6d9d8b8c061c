#!/usr/bin/env bash
# Prepares everything the VM test tier needs on a Debian 12 host (run as root; idempotent):
#   - QEMU (TCG is enough: nested KVM is not available on the CI machines), busybox, iproute2
#   - a Debian generic kernel package, unpacked (never installed) into the cache directory,
#     turned into an uncompressed vmlinux that QEMU boots directly (skips xz decompression,
#     which costs seconds under TCG)
#   - a tiny initramfs: busybox + the modules needed to mount the host's / over 9p + our /init
# Cache: $AIOIXY_VM_CACHE (default ~/.cache/aioixy-vm). Prints the cache path on success.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${AIOIXY_VM_CACHE:-$HOME/.cache/aioixy-vm}"
[ "$(id -u)" = 0 ] || { echo "setup-vm.sh: needs root (apt-get, network namespaces)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

need=""
for p in qemu-system-x86 busybox-static kmod cpio iproute2 iputils-ping xz-utils zstd; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
updated=0
if [ -n "$need" ]; then
  apt-get update -qq && updated=1
  apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

mkdir -p "$CACHE"
if ! ls "$CACHE"/kernel/boot/vmlinuz-* >/dev/null 2>&1; then
  [ "$updated" = 1 ] || apt-get update -qq
  pkg="$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)"
  [ -n "$pkg" ] || { echo "setup-vm.sh: cannot find the kernel package behind linux-image-amd64" >&2; exit 1; }
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
  rm -rf "$CACHE/kernel.new"
  dpkg-deb -x "$tmp"/*.deb "$CACHE/kernel.new"
  rm -rf "$tmp" "$CACHE/kernel"
  mv "$CACHE/kernel.new" "$CACHE/kernel"
  rm -f "$CACHE/vmlinux" "$CACHE/initramfs.gz"
fi
kver="$(ls "$CACHE/kernel/lib/modules" | sort -V | tail -1)"
[ -f "$CACHE/kernel/lib/modules/$kver/modules.dep" ] || depmod -b "$CACHE/kernel" "$kver"

if [ ! -s "$CACHE/vmlinux" ]; then
  python3 "$HERE/extract_vmlinux.py" "$CACHE/kernel/boot/vmlinuz-$kver" "$CACHE/vmlinux"
fi

if [ ! -s "$CACHE/initramfs.gz" ] || [ "$HERE/guest_init.sh" -nt "$CACHE/initramfs.gz" ]; then
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,proc,sys,dev,mods,host,rw,root}
  cp "$(command -v busybox)" "$root/bin/busybox"
  cp "$HERE/guest_init.sh" "$root/init"
  chmod 755 "$root/init"
  : > "$root/modules"
  for m in virtio_pci 9pnet_virtio 9p virtio_console overlay; do
    modprobe -d "$CACHE/kernel" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
  done | awk '!seen[$0]++' | while read -r ko; do
    name="$(basename "$ko")"; name="${name%.xz}"; name="${name%.zst}"
    case "$ko" in
      *.xz) xz -dc "$ko" > "$root/mods/$name" ;;
      *.zst) zstd -qdc "$ko" > "$root/mods/$name" ;;
      *) cp "$ko" "$root/mods/$name" ;;
    esac
    echo "$name" >> "$root/modules"
  done
  (cd "$root" && find . | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$CACHE/initramfs.gz"
fi
echo "$kver" > "$CACHE/kver"
echo "$CACHE"
