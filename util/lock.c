#include "util/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"

struct sb_lock {
    int fd;
    char path[4096];
};

/* The pid recorded by the holder, for the message; 0 when unreadable. */
static long lock_owner(int fd) {
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    return n > 0 ? strtol(buf, NULL, 10) : 0;
}

int sb_lock_acquire(sb_lock **out, const char *output) {
    *out = NULL;
    sb_lock *l = calloc(1, sizeof *l);
    if (!l) return sb_error("%s: out of memory", output);
    if (snprintf(l->path, sizeof l->path, "%s.lock", output) >= (int)sizeof l->path) {
        free(l);
        return sb_error("%s: path too long", output);
    }
    /* The holder removes the file when done: a run that opened the old file just before
     * that would lock a dead inode, so retry until the locked file is the one at path. */
    for (int attempt = 0; attempt < 100; attempt++) {
        l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (l->fd < 0) {
            int e = errno;
            free(l);
            return sb_error("%s: cannot create lock file %s.lock: %s", output, output, strerror(e));
        }
        if (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            long pid = e == EWOULDBLOCK ? lock_owner(l->fd) : 0;
            close(l->fd);
            free(l);
            if (e != EWOULDBLOCK) return sb_error("%s: cannot lock %s.lock: %s", output, output, strerror(e));
            if (pid > 0)
                return sb_error("%s is being written by another run (pid %ld holds %s.lock)", output, pid, output);
            return sb_error("%s is being written by another run (%s.lock is held)", output, output);
        }
        struct stat a, b;
        if (fstat(l->fd, &a) == 0 && stat(l->path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            char pid[32];
            int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            if (ftruncate(l->fd, 0) != 0 || pwrite(l->fd, pid, (size_t)n, 0) != n) {
                /* the pid is only for the message; a full disk must not stop the run here */
            }
            *out = l;
            return SB_OK;
        }
        close(l->fd);
    }
    free(l);
    return sb_error("%s: cannot lock %s.lock (it keeps being replaced)", output, output);
}

void sb_lock_release(sb_lock *l) {
    if (!l) return;
    /* unlink while still holding the lock, so no one can lock the file we remove */
    unlink(l->path);
    close(l->fd);
    free(l);
}
