#!/bin/sh
# The last step inside the build machine (Packer's shell provisioner): GRUB on the disk so the appliance boots by
# BIOS on its own, then every trace of the build that must not be shared by all copies of the image removed,
# and the free space trimmed so the disk (and the XVA) carries only what is used.
set -eu

echo "podium-build: installing GRUB on /dev/vda"
grub-install --target=i386-pc /dev/vda
update-grub

echo "podium-build: removing the build's traces"
# the build's SSH key, and host keys (each copy makes its own at first boot: ssh.service.d/podium.conf)
rm -f /root/.ssh/authorized_keys
rm -f /etc/ssh/ssh_host_*
# a fresh machine id (and DHCP identity) at each copy's first boot
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /var/lib/systemd/random-seed
rm -rf /var/lib/systemd/network/* /var/tmp/* /tmp/*
rm -f /root/.bash_history /root/.python_history /root/.wget-hsts
rm -rf /root/.ansible /root/.cache
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' \) -delete
find /var/log -type f -exec truncate -s 0 {} +
rm -rf /var/log/journal/*
apt-get clean

echo "podium-build: trimming free space"
sync
fstrim -v /
