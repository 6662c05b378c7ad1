package bundle

// A kernel+squashfs build boots a small initrd that holds PID 1 and the
// modules below, and keeps the system as a squashfs image on a disk. The
// small initrd has SquashfsRootFile, which names the GPT partition
// holding the image by its partition name (derived from the image's
// content, so two disks attached at once are never confused): PID 1 loads
// the modules, waits for the partition, mounts it read-only under a tmpfs
// overlay and boots on from it.
const SquashfsRootFile = EtcDir + "/squashfs-root"

// SquashfsInitFile is where an init image has the small initrd's /init
// (cmd/squashfsinit): a small program that mounts the disk and runs PID 1
// from it, so that PID 1's far larger binary need not be in the small
// initrd too. The system's own tree leaves it out.
const SquashfsInitFile = "usr/lib/keel/squashfs-init"

// SquashfsModules are the modules PID 1 loads (with their dependencies,
// which the build puts in the small initrd too) to find and mount the
// squashfs partition: the virtio disk, squashfs and overlayfs.
var SquashfsModules = []string{"virtio_pci", "virtio_blk", "squashfs", "overlay"}

// SquashfsPartName is the GPT partition name of a squashfs image whose
// content digest is hex (at least 24 characters): 29 characters, within
// GPT's 36.
func SquashfsPartName(hex string) string { return "keel-" + hex[:24] }
