#!/usr/bin/env bash
# Fresh-machine check (issue 18), not run by CI: in a Debian 12 root file
# system made beforehand with
#   debootstrap --variant=minbase --include=ca-certificates,git,gcc,libc6-dev bookworm /work/rootfs3 http://deb.debian.org/debian
# (the Rust toolchain and the machine's CA certificates are copied in on
# first use), clone main and run the README's two commands, timed, from
# nothing. Run as root; outputs in $ROOTFS/root/{interop,test}.out.
set -uo pipefail
R=${ROOTFS:-/work/rootfs3}
if [ ! -e $R/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu ]; then
  mkdir -p $R/root/.rustup/toolchains $R/root/.cargo
  cp -a /root/.rustup/settings.toml /root/.rustup/update-hashes $R/root/.rustup/
  cp -a /root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu $R/root/.rustup/toolchains/
  ln -s /root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu $R/root/.rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu
  cp -a /root/.cargo/bin /root/.cargo/env $R/root/.cargo/
  rm -f $R/root/.cargo/bin/cargo-fuzz
  cp /etc/resolv.conf /etc/hosts $R/etc/
  rm -f $R/etc/apt/sources.list
  cp /etc/apt/sources.list.d/debian.sources $R/etc/apt/sources.list.d/
  cp /etc/apt/apt.conf.d/99artifact-registry $R/etc/apt/apt.conf.d/
  cp -a /usr/local/share/ca-certificates/. $R/usr/local/share/ca-certificates/
  cp /etc/ssl/certs/ca-certificates.crt $R/etc/ssl/certs/ca-certificates.crt
fi
for d in proc sys dev dev/pts; do mountpoint -q $R/$d || mount --bind /$d $R/$d; done
rm -rf $R/root/tls-session-cache
git clone -q "$(cd "$(dirname "$0")/.." && pwd)" $R/root/tls-session-cache
chroot $R /usr/bin/env -i HOME=/root PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb RUSTUP_AUTO_INSTALL=0 \
  bash -c 'cd /root/tls-session-cache && git log --oneline -1 && dpkg -l | grep -c ^ii &&
    s=$(date +%s); cargo xtask interop </dev/null > /root/interop.out 2>&1; echo "interop rc=$? $(( $(date +%s)-s )) s";
    s=$(date +%s); bash .ci/run </dev/null > /root/test.out 2>&1; echo "ci/run rc=$? $(( $(date +%s)-s )) s"'
