#!/bin/sh
# Run inside the image's `rootfs` stage: copy into $1 only what Pillion runs with:
# Python and its standard library, the virtualenv, tini, a POSIX sh (for notify
# commands), iptables (for `pillion iptables`, the capture init container), the CA
# certificates, time zones, the users, and every shared library
# those programs and extension modules link (found with ldd). The final image is
# this tree on `scratch`: no package manager, no coreutils, nothing else.
set -eu
root=$1
mkdir -p "$root"

# merged /usr, as Debian 12 has it: /lib, /bin, ... are links into /usr
for top in bin sbin lib lib64; do
    mkdir -p "$root/usr/$top"
    ln -s "usr/$top" "$root/$top"
done

take() {  # paths: copied with their directories; a link also brings its target
    for path in "$@"; do
        [ -e "$path" ] || [ -L "$path" ] || continue
        real=$(readlink -f "$path")
        cp -a --parents "$real" "$root"
        place="$(readlink -f "$(dirname "$path")")/$(basename "$path")"
        if [ "$place" != "$real" ] && [ ! -e "$root$place" ]; then
            mkdir -p "$root$(dirname "$place")"
            ln -s "$real" "$root$place"
        fi
    done
}

python=$(readlink -f "$(command -v python3)")
stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
take "$(command -v python3)" "$python" "$(command -v tini)" /bin/sh "$(readlink -f /bin/sh)"
for tool in iptables-restore ip6tables-restore iptables ip6tables; do
    take "$(command -v "$tool")"
done
cp -a --parents "$stdlib" /opt/pillion "$root"
# iptables' extensions are loaded by name, not linked: all of them
for extensions in /usr/lib/*/xtables; do
    [ -d "$extensions" ] && cp -a --parents "$extensions" "$root"
done
for unused in test idlelib tkinter turtledemo ensurepip lib2to3 pydoc_data; do
    rm -rf "$root$stdlib/$unused"
done
for data in /etc/ssl /usr/lib/ssl /usr/share/ca-certificates /usr/share/zoneinfo \
    /etc/passwd /etc/group /etc/nsswitch.conf /etc/ld.so.cache /etc/ld.so.conf \
    /etc/ld.so.conf.d /etc/localtime; do
    [ -e "$data" ] && cp -a --parents "$data" "$root"
done

# the shared libraries of every program and extension module taken
find "$root" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) -print \
    | while read -r file; do
        ldd "$file" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
    done | sort -u | while read -r library; do
        take "$library"
    done

mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
