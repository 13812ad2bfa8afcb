#!/usr/bin/python3
# A FUSE file system for the benchmark: it passes every call through to a directory on local
# disk, and makes each fsync wait FSYNC_MS first, as a network share does (Cloud Shell's
# clouddrive is an SMB share: every fsync is a round trip). Not used by the product or tests.
#
# Usage (root, Debian: apt-get install python3-fusepy):
#   /usr/bin/python3 bench/slow-fsync-fs.py BACKING_DIR MOUNTPOINT FSYNC_MS   (foreground; unmount: umount MOUNTPOINT)
# bench/scale.mts --slow-fsync MS starts and stops it itself.
import errno
import os
import sys
import threading
import time

from fusepy import FUSE, FuseOSError, Operations


class SlowFsync(Operations):
    def __init__(self, root, fsync_ms):
        self.root = os.path.realpath(root)
        self.delay = fsync_ms / 1000.0
        self._counted = threading.Lock()
        self.fsyncs = 0

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def access(self, path, mode):
        if not os.access(self._path(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        return os.chmod(self._path(path), mode)

    def chown(self, path, uid, gid):
        return os.chown(self._path(path), uid, gid)

    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        return {k: getattr(st, k) for k in ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def mkdir(self, path, mode):
        return os.mkdir(self._path(path), mode)

    def rmdir(self, path):
        return os.rmdir(self._path(path))

    def unlink(self, path):
        return os.unlink(self._path(path))

    def rename(self, old, new):
        return os.rename(self._path(old), self._path(new))

    def link(self, target, name):
        return os.link(self._path(name), self._path(target))

    def utimens(self, path, times=None):
        return os.utime(self._path(path), times)

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def open(self, path, flags):
        return os.open(self._path(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT, mode)

    def read(self, path, length, offset, fh):
        return os.pread(fh, length, offset)

    def write(self, path, data, offset, fh):
        # FUSE hands writes of a file opened O_APPEND with the offset of the end, as the kernel saw it.
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        with open(self._path(path), "r+") as f:
            f.truncate(length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return os.close(fh)

    def fsync(self, path, datasync, fh):
        time.sleep(self.delay)
        with self._counted:
            self.fsyncs += 1
        return os.fdatasync(fh) if datasync else os.fsync(fh)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.stderr.write("usage: slow-fsync-fs.py BACKING_DIR MOUNTPOINT FSYNC_MS\n")
        sys.exit(2)
    FUSE(SlowFsync(sys.argv[1], float(sys.argv[3])), sys.argv[2], foreground=True, nothreads=False, allow_other=False)
