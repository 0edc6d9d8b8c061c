#!/bin/busybox sh
# /init of the aioixy test VM. The guest borrows the host's root filesystem (9p, read-only, with a
# RAM overlay so the guest can write), so it runs the very same Python, venv and compiled
# extension as the host. The repository is mounted read-write at the same path. Then the agent
# (tests/vm/agent.py) serves commands from the host over a virtio-serial port.
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "aioixy-vm: $*" > /dev/console; }
for m in $(cat /modules); do insmod "/mods/$m" || say "insmod $m failed"; done

for arg in $(cat /proc/cmdline); do
  case "$arg" in
    aioixy.python=*) PY="${arg#*=}" ;;
    aioixy.agent=*) AGENT="${arg#*=}" ;;
    aioixy.repo=*) REPO="${arg#*=}" ;;
    aioixy.modules=*) MODS="${arg#*=}" ;;
  esac
done

mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /host \
  || { say "no host root"; poweroff -f; }
mount -t tmpfs rw /rw && mkdir -p /rw/u /rw/w
mount -t overlay -o lowerdir=/host,upperdir=/rw/u,workdir=/rw/w root /root || mount --bind /host /root
for fs in "devtmpfs dev /dev" "proc proc /proc" "sysfs sys /sys" "tmpfs tmp /tmp" "tmpfs run /run"; do
  set -- $fs; mount -t "$1" "$2" "/root$3"
done
mkdir -p /root/dev/pts /root/dev/shm /root/dev/hugepages
mount -t devpts pts /root/dev/pts
mount -t tmpfs shm /root/dev/shm
mkdir -p "/root$REPO" && mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=262144 repo "/root$REPO"
[ -n "$MODS" ] && mkdir -p /root/lib/modules && mount --bind "/root$MODS" /root/lib/modules
echo aioixy-test-vm > /proc/sys/kernel/hostname

CHAN=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name")" = aioixy ] && CHAN="/dev/${p##*/}"
done
chroot /root /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  "$PY" -I -S "$AGENT" "$CHAN" "$REPO"
sync
poweroff -f
