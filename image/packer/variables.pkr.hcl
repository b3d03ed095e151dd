# Inputs of the appliance build; image/build.py passes every one of them (`make xva`).

variable "version" {
  type        = string
  description = "The Podium release the image carries."
}

variable "base_disk" {
  type        = string
  description = "The build's disk: a qcow2 over the cached base disk (Debian on its first partition), made by image/build.py."
}

variable "kernel" {
  type        = string
  description = "The base disk's kernel, booted directly the first time (GRUB is installed during the build)."
}

variable "initrd" {
  type        = string
  description = "The base disk's initramfs."
}

variable "ssh_private_key_file" {
  type        = string
  description = "The build's throwaway SSH key; its public half is in the base disk and removed at the end."
}

variable "accelerator" {
  type        = string
  default     = "tcg"
  description = "qemu's accelerator: kvm where it really boots a kernel here, else tcg."
}

variable "output_directory" {
  type        = string
  description = "Where the provisioned disk is written (disk.qcow2, over the base disk)."
}

variable "serial_log" {
  type        = string
  description = "The guest's serial console, written to this file."
}

variable "ansible_playbook" {
  type        = string
  description = "The ansible-playbook command (the project's venv)."
}

variable "ansible_config" {
  type        = string
  description = "provisioning/ansible.cfg"
}

variable "playbook" {
  type        = string
  description = "provisioning/site.yml"
}

variable "bundle" {
  type        = string
  description = "The signed update bundle whose release the image carries (make bundle)."
}

variable "keyring" {
  type        = string
  description = "The update keyring the appliance trusts."
}

variable "finish_script" {
  type        = string
  description = "image/finish.sh: GRUB on the disk, the build's traces removed, free space trimmed."
}

variable "pack_command" {
  type        = list(string)
  description = "The post-processor's command: packs the disk into the XVA (image/pack_xva.py)."
}
