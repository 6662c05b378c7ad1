package kmod

// LeanModules are the modules a container guest under QEMU needs; the lean
// kernel image holds them and their dependencies, nothing else. Names built
// into the kernel (ext4, crc32c_generic on Debian's cloud kernel) are fine:
// they need no file.
var LeanModules = []string{
	// virtio devices QEMU gives a guest
	"virtio_pci", "virtio_net", "virtio_blk", "virtio_console", "virtio_rng", "virtio_scsi",
	// container filesystems and networking
	"overlay", "veth", "bridge", "br_netfilter", "tun", "fuse", "squashfs", "loop", "ext4",
	// what iptables (nft or legacy) and CNI plugins load for NAT and filtering
	"nf_tables", "nft_chain_nat", "nft_compat", "nft_masq", "nft_ct",
	"nf_conntrack", "nf_nat", "ip_tables", "iptable_nat", "iptable_filter",
	"xt_MASQUERADE", "xt_conntrack", "xt_addrtype", "xt_comment", "xt_mark", "xt_nat",
	// host <-> guest channel
	"vsock", "vmw_vsock_virtio_transport",
	// the ACPI power button, read by PID 1 for a clean shutdown
	"button", "evdev",
	"crc32c_generic", "crc32c-intel",
}
