/* The fastest FUSE server we can write for mount_ceiling.py: libfuse 3's low-level API,
 * multithreaded, serving a directory tree copied into memory at start (read-only).
 *
 *   memfs_ll SRC_DIR MOUNTPOINT [-f] [-o opt,...]
 *
 * Every libfuse option works (-o max_read=N, max_readahead=N, splice_read, no_auto_inval_data,
 * readdirplus=yes, ...); its own: -o direct_io (FOPEN_DIRECT_IO: no page cache),
 * -o no_keep_cache (the page cache dropped at every open), -o timeout=S (entry/attr timeout,
 * default 60). At unmount it prints to stderr what the kernel granted and the read requests
 * it sent: "init max_write=... max_readahead=... | reads=N bytes=B max=M".
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct node {
    char *name;
    fuse_ino_t parent;
    struct stat st;
    char *data;           /* a file's bytes */
    fuse_ino_t *kids;     /* a directory's entries, as inode numbers */
    size_t nkids, capkids;
    struct node *next;    /* hash chain of (parent, name) */
};

static struct node *nodes; /* inode i is nodes[i - 1]; inode 1 is the root */
static size_t nnodes, capnodes;
static struct node **table;
static size_t tablesize = 1 << 16;

static struct {
    int direct_io; int no_keep_cache; double timeout; unsigned max_read;
} cfg = {0, 0, 60.0, 0};
static struct fuse_conn_info_opts *conn_opts;
static unsigned long long n_reads, n_bytes, max_req;
static char init_line[256];

static size_t hash(fuse_ino_t parent, const char *name)
{
    size_t h = parent * 1000003u;
    for (; *name; name++)
        h = h * 31 + (unsigned char)*name;
    return h & (tablesize - 1);
}

static fuse_ino_t add(fuse_ino_t parent, const char *name, const char *path)
{
    if (nnodes == capnodes) {
        capnodes = capnodes ? capnodes * 2 : 1024;
        nodes = realloc(nodes, capnodes * sizeof *nodes);
    }
    struct node *n = &nodes[nnodes++];
    memset(n, 0, sizeof *n);
    fuse_ino_t ino = nnodes;
    n->name = strdup(name);
    n->parent = parent;
    if (lstat(path, &n->st) != 0) {
        perror(path);
        exit(1);
    }
    n->st.st_ino = ino;
    if (S_ISREG(n->st.st_mode)) {
        n->data = malloc(n->st.st_size ? n->st.st_size : 1);
        int fd = open(path, O_RDONLY);
        off_t got = 0;
        while (got < n->st.st_size) {
            ssize_t r = pread(fd, n->data + got, n->st.st_size - got, got);
            if (r <= 0) { perror(path); exit(1); }
            got += r;
        }
        close(fd);
    }
    if (parent) {
        struct node *p = &nodes[parent - 1];
        if (p->nkids == p->capkids) {
            p->capkids = p->capkids ? p->capkids * 2 : 16;
            p->kids = realloc(p->kids, p->capkids * sizeof *p->kids);
        }
        p->kids[p->nkids++] = ino;
    }
    return ino;
}

static void load(fuse_ino_t ino, const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    if (!d) { perror(path); exit(1); }
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *sub;
        if (asprintf(&sub, "%s/%s", path, e->d_name) < 0) exit(1);
        fuse_ino_t kid = add(ino, e->d_name, sub);
        if (S_ISDIR(nodes[kid - 1].st.st_mode))
            load(kid, sub);
        free(sub);
    }
    closedir(d);
}

static void index_all(void)
{
    /* nodes moved while loading (realloc): chain them once all are in place */
    table = calloc(tablesize, sizeof *table);
    for (size_t i = 1; i < nnodes; i++) {
        struct node *n = &nodes[i];
        size_t h = hash(n->parent, n->name);
        n->next = table[h];
        table[h] = n;
    }
}

static void entry_of(fuse_ino_t ino, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof *e);
    e->ino = ino;
    e->attr = nodes[ino - 1].st;
    e->attr_timeout = cfg.timeout;
    e->entry_timeout = cfg.timeout;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    fuse_apply_conn_info_opts(conn_opts, conn);
    if (cfg.max_read) /* libfuse wants it both here and as the mount option */
        conn->max_read = cfg.max_read;
    snprintf(init_line, sizeof init_line,
             "init max_write=%u max_read=%u max_readahead=%u want=0x%x capable=0x%x",
             conn->max_write, conn->max_read, conn->max_readahead, conn->want, conn->capable);
}

static void op_destroy(void *userdata)
{
    (void)userdata;
    fprintf(stderr, "%s | reads=%llu bytes=%llu max=%llu\n", init_line, n_reads, n_bytes,
            max_req);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    for (struct node *n = table[hash(parent, name)]; n; n = n->next) {
        if (n->parent == parent && !strcmp(n->name, name)) {
            struct fuse_entry_param e;
            entry_of((fuse_ino_t)(n - nodes) + 1, &e);
            fuse_reply_entry(req, &e);
            return;
        }
    }
    fuse_reply_err(req, ENOENT);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    if (ino < 1 || ino > nnodes) { fuse_reply_err(req, ENOENT); return; }
    fuse_reply_attr(req, &nodes[ino - 1].st, cfg.timeout);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
    struct node *d = &nodes[ino - 1];
    char *buf = malloc(size);
    size_t used = 0;
    /* offsets: 1 ".", 2 "..", 3 + i the i-th entry */
    for (off_t i = off; i < (off_t)d->nkids + 2; i++) {
        const char *name;
        fuse_ino_t kid;
        if (i == 0) { name = "."; kid = ino; }
        else if (i == 1) { name = ".."; kid = d->parent ? d->parent : 1; }
        else { kid = d->kids[i - 2]; name = nodes[kid - 1].name; }
        size_t len;
        if (plus) {
            struct fuse_entry_param e;
            entry_of(kid, &e);
            if (i < 2) { e.ino = 0; e.attr.st_ino = kid; e.attr_timeout = e.entry_timeout = 0; }
            len = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, i + 1);
        } else {
            len = fuse_add_direntry(req, buf + used, size - used, name, &nodes[kid - 1].st,
                                    i + 1);
        }
        if (len > size - used)
            break;
        used += len;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)fi;
    do_readdir(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    (void)fi;
    do_readdir(req, ino, size, off, 1);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fi->cache_readdir = 1;
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (S_ISDIR(nodes[ino - 1].st.st_mode)) { fuse_reply_err(req, EISDIR); return; }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) { fuse_reply_err(req, EROFS); return; }
    fi->keep_cache = !cfg.no_keep_cache;
    fi->direct_io = cfg.direct_io;
    fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)fi;
    struct node *n = &nodes[ino - 1];
    size_t len = 0;
    if (off < n->st.st_size)
        len = (size_t)(n->st.st_size - off) < size ? (size_t)(n->st.st_size - off) : size;
    __atomic_add_fetch(&n_reads, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&n_bytes, len, __ATOMIC_RELAXED);
    unsigned long long m = __atomic_load_n(&max_req, __ATOMIC_RELAXED);
    while (size > m && !__atomic_compare_exchange_n(&max_req, &m, size, 0, __ATOMIC_RELAXED,
                                                    __ATOMIC_RELAXED))
        ;
    fuse_reply_buf(req, len ? n->data + off : NULL, len);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init, .destroy = op_destroy, .lookup = op_lookup, .getattr = op_getattr,
    .opendir = op_opendir, .readdir = op_readdir, .readdirplus = op_readdirplus,
    .open = op_open, .read = op_read,
};

static const struct fuse_opt own_opts[] = {
    {"direct_io", offsetof(typeof(cfg), direct_io), 1},
    {"no_keep_cache", offsetof(typeof(cfg), no_keep_cache), 1},
    {"timeout=%lf", offsetof(typeof(cfg), timeout), 0},
    {"max_read=%u", offsetof(typeof(cfg), max_read), 0},
    FUSE_OPT_END
};

int main(int argc, char *argv[])
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SRC_DIR MOUNTPOINT [-f] [-o opt,...]\n", argv[0]);
        return 2;
    }
    const char *src = argv[1];
    argv[1] = argv[0];
    struct fuse_args args = FUSE_ARGS_INIT(argc - 1, argv + 1);
    struct fuse_cmdline_opts opts;
    if (fuse_opt_parse(&args, &cfg, own_opts, NULL) != 0)
        return 2;
    if (cfg.max_read) {
        char opt[64];
        snprintf(opt, sizeof opt, "-omax_read=%u", cfg.max_read);
        fuse_opt_add_arg(&args, opt);
    }
    conn_opts = fuse_parse_conn_info_opts(&args);
    if (fuse_parse_cmdline(&args, &opts) != 0 || !opts.mountpoint)
        return 2;

    add(0, "", src); /* the root, inode 1 */
    load(1, src);
    index_all();

    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    if (!se)
        return 1;
    if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, opts.mountpoint) != 0)
        return 1;
    fuse_daemonize(opts.foreground);
    struct fuse_loop_config *lc = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(lc, opts.clone_fd);
    fuse_loop_cfg_set_max_threads(lc, opts.max_threads);
    fuse_loop_cfg_set_idle_threads(lc, opts.max_idle_threads == UINT_MAX ? 10
                                   : opts.max_idle_threads);
    int ret = opts.singlethread ? fuse_session_loop(se) : fuse_session_loop_mt(se, lc);
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return ret ? 1 : 0;
}
