/* One writer per output: an advisory lock on "<output>.lock".
 *
 * flock(2) on a lock file holding the owner's pid: the kernel drops the lock when the owner
 * dies, however it dies, so a stale lock file never blocks a later run. A second run on the
 * same output fails at once with one line naming the output and the pid holding it. */
#ifndef SB_LOCK_H
#define SB_LOCK_H

typedef struct sb_lock sb_lock;

/* Lock `output` (the file the command will write) through output.lock. */
int sb_lock_acquire(sb_lock **l, const char *output);
/* Unlock and remove the lock file; NULL is fine. */
void sb_lock_release(sb_lock *l);

#endif
