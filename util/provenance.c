#include "util/provenance.h"

#include "engine/backend.h" /* the host threads of the cpu backend */

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/model.h"
#include "util/sha256.h"

extern char **environ;

/* Run argv (no shell, so paths need no quoting) and capture the first cap-1 bytes of its
 * stdout; stderr goes to /dev/null. Returns the exit status, or -1 if it could not run. */
static int run_capture(char *const argv[], char *out, size_t cap) {
    out[0] = '\0';
    int fds[2];
    if (pipe(fds) != 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (err != 0) {
        close(fds[0]);
        return -1;
    }
    size_t n = 0;
    char drain[4096];
    ssize_t r;
    for (;;) { /* read everything so the child never blocks on a full pipe */
        if (n + 1 < cap) r = read(fds[0], out + n, cap - 1 - n);
        else r = read(fds[0], drain, sizeof drain);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (n + 1 < cap) n += (size_t)r;
    }
    out[n] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t') i++;
    if (i) memmove(s, s + i, n - i + 1);
}

void sb_provenance_git_rev(const char *dir, char *out, size_t cap) {
    /* a copy of the tree without .git (a release tarball, a lent machine) names its revision */
    const char *env = getenv("SINKBENCH_GIT_REV");
    if (env && env[0]) {
        snprintf(out, cap, "%s", env);
        return;
    }
    snprintf(out, cap, "unknown");
    char rev[64];
    char *rev_argv[] = {"git", "-C", (char *)dir, "rev-parse", "--short", "HEAD", NULL};
    if (run_capture(rev_argv, rev, sizeof rev) != 0) return;
    trim(rev);
    if (!rev[0]) return;
    char st[8];
    char *st_argv[] = {"git", "-C", (char *)dir, "status", "--porcelain", "--untracked-files=no", NULL};
    int rc = run_capture(st_argv, st, sizeof st);
    snprintf(out, cap, "%s%s", rev, rc == 0 && st[0] ? "-dirty" : "");
}

static void cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        snprintf(out, cap, "%s", colon + 1);
        trim(out);
        break;
    }
    fclose(f);
}

/* The revision of the tree beside the executable, else of the working directory. */
static void exe_git_rev(char *out, size_t cap) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        sb_provenance_git_rev(dirname(exe), out, cap);
    }
    if (n <= 0 || !strcmp(out, "unknown")) sb_provenance_git_rev(".", out, cap);
}

void sb_provenance_pin_git_rev(void) {
    char rev[128];
    exe_git_rev(rev, sizeof rev); /* an SINKBENCH_GIT_REV already set comes back unchanged */
    setenv("SINKBENCH_GIT_REV", rev, 1);
}

void sb_provenance_collect(sb_provenance *p) {
    memset(p, 0, sizeof *p);
    exe_git_rev(p->git_rev, sizeof p->git_rev);
    if (gethostname(p->hostname, sizeof p->hostname) != 0 || !p->hostname[0])
        snprintf(p->hostname, sizeof p->hostname, "unknown");
    p->hostname[sizeof p->hostname - 1] = '\0';
    cpu_model(p->cpu_model, sizeof p->cpu_model);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    p->cores = cores > 0 ? (int)cores : 1;
    sb_host_thread_info(&p->blas_threads, &p->omp_threads, p->blas_config, sizeof p->blas_config);
    trim(p->blas_config);
    p->loadavg1 = -1;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf", &p->loadavg1) != 1) p->loadavg1 = -1;
        fclose(la);
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(p->date_utc, sizeof p->date_utc, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int hash_into(sb_sha256_ctx *s, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return sb_error("%s: cannot open: %s", path, strerror(errno));
    static _Thread_local unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sb_sha256_update(s, buf, n);
    int bad = ferror(f);
    fclose(f);
    return bad ? sb_error("%s: read error", path) : SB_OK;
}

static int hash_model_files(const char *dir, char hex[65]) {
    hex[0] = '\0';
    char path[4096];
    sb_sha256_ctx s;
    sb_sha256_init(&s);
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISREG(st.st_mode)) { /* a single-file checkpoint (llama2.c .bin) */
        int rc = hash_into(&s, dir);
        if (rc) return rc;
    } else {
        /* config.json, then every weight file: model.safetensors, or the index and its shards */
        if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
            return sb_error("%s: path too long", dir);
        int rc = hash_into(&s, path);
        char **files;
        int n;
        if (!rc) rc = sb_model_weight_files(dir, &files, &n);
        if (rc) return rc;
        if (n == 0) rc = sb_error("%s/model.safetensors: missing", dir);
        for (int i = 0; i < n && !rc; i++) rc = hash_into(&s, files[i]);
        sb_model_weight_files_free(files, n);
        if (rc) return rc;
    }
    uint8_t d[32];
    sb_sha256_final(&s, d);
    sb_sha256_hex(d, hex);
    return SB_OK;
}

/* The cache of model hashes: reading a 13 GB checkpoint takes half a minute, and every run
 * names its model's hash. An entry is keyed by the files' path, device, inode, size and
 * modification time (to the nanosecond), so a changed file is hashed again. Directory:
 * $SINKBENCH_CACHE, else $XDG_CACHE_HOME/sinkbench, else ~/.cache/sinkbench; SINKBENCH_CACHE=off
 * turns it off. Best effort: a cache that cannot be read or written only costs the hashing. */
static bool hash_cache_path(const char *dir, char *out, size_t cap) {
    const char *env = getenv("SINKBENCH_CACHE"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char base[2048];
    if (env && !strcmp(env, "off")) return false;
    if (env && *env) snprintf(base, sizeof base, "%s", env);
    else if (xdg && *xdg) snprintf(base, sizeof base, "%s/sinkbench", xdg);
    else if (home && *home) snprintf(base, sizeof base, "%s/.cache/sinkbench", home);
    else return false;
    char real[4096], key[8192], path[4200];
    if (!realpath(dir, real)) return false;
    size_t off = (size_t)snprintf(key, sizeof key, "%s", real);
    struct stat st;
    char **wf = NULL;
    int nw = 0;
    struct stat dst;
    if (stat(real, &dst) == 0 && S_ISDIR(dst.st_mode) && sb_model_weight_files(real, &wf, &nw)) sb_clear_error();
    for (int i = -2; i < nw && off < sizeof key; i++) {
        /* the path itself, config.json, then each weight file */
        if (i == -2) snprintf(path, sizeof path, "%s", real);
        else if (i == -1) snprintf(path, sizeof path, "%s/config.json", real);
        else snprintf(path, sizeof path, "%s", wf[i]);
        if (stat(path, &st) != 0) continue;
        off += (size_t)snprintf(key + off, sizeof key - off, "|%s:%llu:%llu:%lld:%lld.%09ld", path + strlen(real),
                                (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (long long)st.st_size,
                                (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    }
    sb_model_weight_files_free(wf, nw);
    uint8_t d[32];
    char kh[65];
    sb_sha256(key, strlen(key), d);
    sb_sha256_hex(d, kh);
    if (mkdir(base, 0755) != 0 && errno != EEXIST) {
        /* the parent (~/.cache) may not exist yet */
        char parent[2048];
        snprintf(parent, sizeof parent, "%s", base);
        char *slash = strrchr(parent, '/');
        if (slash) *slash = '\0', mkdir(parent, 0755);
        if (mkdir(base, 0755) != 0 && errno != EEXIST) return false;
    }
    return snprintf(out, cap, "%s/model-%s", base, kh) < (int)cap;
}

int sb_provenance_hash_model(const char *dir, char hex[65]) {
    char cache[4096];
    bool cached = hash_cache_path(dir, cache, sizeof cache);
    if (cached) {
        FILE *f = fopen(cache, "r");
        if (f) {
            char buf[80] = "";
            bool ok = fgets(buf, sizeof buf, f) && strlen(buf) >= 64 && strspn(buf, "0123456789abcdef") == 64;
            fclose(f);
            if (ok) {
                memcpy(hex, buf, 64);
                hex[64] = '\0';
                return SB_OK;
            }
        }
    }
    int rc = hash_model_files(dir, hex);
    if (!rc && cached) {
        char line[66];
        snprintf(line, sizeof line, "%s\n", hex);
        if (sb_write_file_atomic(cache, line, 65)) sb_clear_error();
    }
    return rc;
}

int sb_provenance_to_h5(const sb_provenance *p, sb_h5 *f) {
    int rc = 0;
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "git_rev", p->git_rev);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "hostname", p->hostname);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "cpu_model", p->cpu_model);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "cores", p->cores);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "blas_threads", p->blas_threads);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "omp_threads", p->omp_threads);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "blas_config", p->blas_config);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "date_utc", p->date_utc);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "loadavg1", p->loadavg1);
    return rc;
}

void sb_provenance_to_json(const sb_provenance *p, cJSON *obj) {
    cJSON_AddStringToObject(obj, "git_rev", p->git_rev);
    cJSON_AddStringToObject(obj, "hostname", p->hostname);
    cJSON_AddStringToObject(obj, "cpu_model", p->cpu_model);
    cJSON_AddNumberToObject(obj, "cores", p->cores);
    cJSON_AddNumberToObject(obj, "blas_threads", p->blas_threads);
    cJSON_AddNumberToObject(obj, "omp_threads", p->omp_threads);
    cJSON_AddStringToObject(obj, "blas_config", p->blas_config);
    cJSON_AddStringToObject(obj, "date_utc", p->date_utc);
    cJSON_AddNumberToObject(obj, "loadavg1", p->loadavg1);
}
