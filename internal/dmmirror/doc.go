// Package dmmirror moves a mounted root off a device-mapper snapshot
// (dmsquash-live's live-rw: a read-only origin plus a COW store in RAM)
// onto a target at run time, with no boot hook: the kernel's dm-mirror
// target is put under the running filesystem and copies the snapshot onto
// the target while the session keeps writing.
//
// The sequence (see docs/design.md, "The mirror inserted at run time"):
//
//   - Insert: a second dm device, SrcName, is created with live-rw's exact
//     snapshot table, and live-rw gets a mirror table whose legs are that
//     device and the target. With live-rw suspended, resuming SrcName makes
//     the kernel hand the snapshot's exceptions over to it (dm-snapshot's
//     handover); resuming live-rw swaps the mirror in. The filesystem is
//     frozen for the length of that swap only.
//   - The copy: dm-mirror's recovery copies region after region from leg 0
//     (the snapshot) to leg 1 (the target); writes to copied regions go to
//     both legs, writes to regions not yet copied go to the snapshot and
//     are copied later. Status reads the progress and the legs' health.
//   - Switch: once every region is in sync and both legs are healthy,
//     live-rw is reloaded as a linear map of the whole target, which is
//     what the filesystem then grows into; SrcName is removed, and the
//     snapshot's origin and COW are no longer used by anything.
//   - Abort: live-rw is loaded with the original snapshot table again and,
//     with SrcName suspended, resumed: the exceptions are handed back and
//     the session is on its snapshot as before; SrcName is removed.
//
// Without handle_errors, dm-mirror answers a write that failed on the
// target as done once it is on the snapshot, and marks the leg dead ('D'
// in its status): a dying target cannot stop the session, and the caller
// aborts. (A dm-raid raid1 table without metadata devices, the other way
// to mirror in dm, blocks every write after a leg fails, waiting for a
// metadata update it has nowhere to write: see docs/design.md.)
//
// While live-rw is suspended nothing may touch the root filesystem, the
// caller's own binary included: Insert, Switch and Abort lock the
// process's memory (mlockall) around their suspensions and do no file I/O
// in between. Find rebuilds the picture from the kernel's tables after a
// crash, and Settle finishes a transition a crash interrupted.
package dmmirror
