# The build: Ansible provisions the running base system (provisioning/site.yml), a last script installs GRUB
# and removes the build's traces, and the post-processor packs the disk into the XVA.

build {
  sources = ["source.qemu.appliance"]

  provisioner "ansible" {
    playbook_file    = var.playbook
    command          = var.ansible_playbook
    user             = "root"
    use_proxy        = false
    ansible_env_vars = ["ANSIBLE_CONFIG=${var.ansible_config}", "ANSIBLE_FORCE_COLOR=0", "ANSIBLE_NOCOLOR=1"]
    extra_arguments = [
      "--extra-vars", "server_bundle=${var.bundle} server_version=${var.version} updater_keyring=${var.keyring}",
    ]
  }

  provisioner "shell" {
    script = var.finish_script
  }

  post-processor "shell-local" {
    inline = [join(" ", var.pack_command)]
  }
}
