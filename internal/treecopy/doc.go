// Package treecopy copies a root filesystem's tree onto another
// filesystem, keeping what an installed system needs of every file:
// owner, mode (setuid and sticky bits too), access and modification times,
// hard links, symbolic links, extended attributes (file capabilities such
// as ping's security.capability, POSIX ACLs, SELinux labels), sparse
// files, device nodes, fifos and sockets.
//
// It is the copy method's data path (issue 14): the read-only lower layer
// of an overlayfs root is copied from its own mount, then the upper layer
// is applied over it (Options.Upper), where a whiteout deletes and an
// opaque directory replaces what the lower layer had. Regular files are
// copied by several workers at once, so that a squashfs-backed source is
// decompressed on every CPU; directories are made by one walker, and
// their own metadata is set once everything in them is written (their
// times would move otherwise).
//
// It runs no other program and keeps no state but the trees themselves.
package treecopy
