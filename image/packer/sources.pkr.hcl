# The build machine: qemu booting the base disk (no ISO, no installer). The first boot is a direct kernel boot,
# because GRUB is not on the disk yet; user-mode networking with `restrict=on` lets Packer's SSH in through the
# forwarded port and nothing out.

source "qemu" "appliance" {
  disk_image        = true
  iso_url           = var.base_disk
  iso_checksum      = "none"
  format            = "qcow2"
  skip_compaction   = true
  skip_resize_disk  = true
  disk_interface    = "virtio"
  disk_discard      = "unmap"
  disk_detect_zeroes = "unmap"
  net_device        = "virtio-net"
  accelerator       = var.accelerator
  cpus              = 2
  memory            = 2048
  headless          = true
  vnc_bind_address  = "127.0.0.1"
  output_directory  = var.output_directory
  vm_name           = "disk.qcow2"

  qemuargs = [
    ["-kernel", var.kernel],
    ["-initrd", var.initrd],
    ["-append", "root=/dev/vda1 rw console=ttyS0,115200n8 net.ifnames=0"],
    ["-serial", "file:${var.serial_log}"],
    ["-netdev", "user,id=user.0,restrict=on,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"],
    ["-device", "virtio-net,netdev=user.0"],
  ]

  communicator         = "ssh"
  ssh_username         = "root"
  ssh_private_key_file = var.ssh_private_key_file
  ssh_host             = "127.0.0.1"
  ssh_timeout          = "15m"
  shutdown_command     = "systemctl poweroff"
  shutdown_timeout     = "5m"
}
