// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The BPF helpers the socket hooks call, for the host tests (harness.h).
 * Maps keep the kernel's semantics as far as the hooks can tell: hash maps
 * refuse a new key when full (E2BIG) and honour BPF_NOEXIST/BPF_EXIST, LRU
 * maps evict their oldest entry instead, arrays always have every index,
 * the LPM trie answers the longest matching prefix, socket storage lives
 * per socket. Values keep their address while they exist: the programs
 * write through the pointers lookups return.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "harness.h"

struct mw_test_task mw_test_task;
int mw_test_no_sk_storage;
int mw_test_cb_flags;
void *mw_test_mptcp_sock;
void *mw_test_tcp_sock;
void *mw_test_tcp6_sock;
int mw_test_setsockopt_level, mw_test_setsockopt_name, mw_test_setsockopt_value;
int mw_test_setsockopt_error;
__u64 mw_test_socket_cookie;
__u32 mw_test_bind_ip4;
int mw_test_bind_mapped;
struct mw_event mw_test_events[16];
int mw_test_nevents;
void *mw_test_redirect_map;
unsigned char mw_test_redirect_key[64];
__u64 mw_test_redirect_flags;

struct entry {
	struct entry *next;
	unsigned char *key;
	unsigned char *value;
};

struct map {
	const void *def;
	const char *name;
	__u32 type;
	__u32 max_entries;
	__u32 limit;		/* mw_test_map_limit, until reset; else max_entries */
	size_t key_size;
	size_t value_size;
	struct entry *entries;	/* newest first */
	unsigned char *array;	/* arrays: max_entries values */
};

static struct map maps[32];
static int nmaps;

void mw_test_map_register(void *def, const char *name, __u32 type, __u32 max_entries,
			  size_t key_size, size_t value_size)
{
	struct map *m;

	if (nmaps == (int)(sizeof(maps) / sizeof(maps[0]))) {
		fprintf(stderr, "harness: more than %d maps\n", nmaps);
		abort();
	}
	m = &maps[nmaps++];
	m->def = def;
	m->name = name;
	m->type = type;
	m->max_entries = max_entries;
	m->limit = max_entries;
	/* Socket storage is kept per socket: keyed by its address here. */
	m->key_size = type == BPF_MAP_TYPE_SK_STORAGE ? sizeof(void *) : key_size;
	m->value_size = value_size;
	if (type == BPF_MAP_TYPE_ARRAY || type == BPF_MAP_TYPE_PERCPU_ARRAY)
		m->array = calloc(max_entries, value_size);
}

static struct map *map_of(const void *def)
{
	for (int i = 0; i < nmaps; i++)
		if (maps[i].def == def)
			return &maps[i];
	fprintf(stderr, "harness: the program used a map that is not registered "
		"(add it to bpf/tests/datapath.h)\n");
	abort();
}

static void free_entries(struct map *m)
{
	while (m->entries) {
		struct entry *e = m->entries;

		m->entries = e->next;
		free(e->key);
		free(e->value);
		free(e);
	}
}

void mw_test_map_limit(void *def, __u32 max_entries)
{
	struct map *m = map_of(def);

	if (max_entries > m->max_entries || m->array) {
		fprintf(stderr, "harness: %s cannot be limited to %u entries\n", m->name, max_entries);
		abort();
	}
	m->limit = max_entries;
}

void mw_test_reset(void)
{
	for (int i = 0; i < nmaps; i++) {
		free_entries(&maps[i]);
		maps[i].limit = maps[i].max_entries;
		if (maps[i].array)
			memset(maps[i].array, 0, (size_t)maps[i].max_entries * maps[i].value_size);
	}
	memset(&mw_test_task, 0, sizeof(mw_test_task));
	memset(mw_test_events, 0, sizeof(mw_test_events));
	mw_test_nevents = 0;
	mw_test_redirect_map = NULL;
	memset(mw_test_redirect_key, 0, sizeof(mw_test_redirect_key));
	mw_test_redirect_flags = 0;
	mw_test_no_sk_storage = 0;
	mw_test_cb_flags = 0;
	mw_test_mptcp_sock = NULL;
	mw_test_tcp_sock = NULL;
	mw_test_tcp6_sock = NULL;
	mw_test_setsockopt_level = mw_test_setsockopt_name = mw_test_setsockopt_value = -1;
	mw_test_setsockopt_error = 0;
	mw_test_socket_cookie = 0;
	mw_test_bind_ip4 = 0;
	mw_test_bind_mapped = 0;
}

int mw_test_map_count(void *def)
{
	int n = 0;

	for (struct entry *e = map_of(def)->entries; e; e = e->next)
		n++;
	return n;
}

static int is_array(const struct map *m)
{
	return m->array != NULL;
}

/* An LPM key: a 32-bit prefix length, then the data it applies to. */
static __u32 lpm_len(const unsigned char *key)
{
	__u32 len;

	memcpy(&len, key, sizeof(len));
	return len;
}

static int lpm_covers(const unsigned char *prefix, const unsigned char *key)
{
	__u32 bits = lpm_len(prefix);
	const unsigned char *p = prefix + 4, *k = key + 4;

	if (bits > lpm_len(key))
		return 0;
	for (__u32 i = 0; i < bits; i++) {
		unsigned char mask = 0x80 >> (i % 8);

		if ((p[i / 8] & mask) != (k[i / 8] & mask))
			return 0;
	}
	return 1;
}

static struct entry *find(struct map *m, const void *key, struct entry ***link)
{
	struct entry **l = &m->entries;

	for (; *l; l = &(*l)->next) {
		if (memcmp((*l)->key, key, m->key_size) == 0) {
			if (link)
				*link = l;
			return *l;
		}
	}
	return NULL;
}

void *bpf_map_lookup_elem(void *def, const void *key)
{
	struct map *m = map_of(def);
	struct entry *e, *best = NULL;
	__u32 index;

	if (is_array(m)) {
		memcpy(&index, key, sizeof(index));
		return index < m->max_entries ? m->array + (size_t)index * m->value_size : NULL;
	}
	if (m->type == BPF_MAP_TYPE_LPM_TRIE) {
		for (e = m->entries; e; e = e->next)
			if (lpm_covers(e->key, key) && (!best || lpm_len(e->key) > lpm_len(best->key)))
				best = e;
		return best ? best->value : NULL;
	}
	e = find(m, key, NULL);
	return e ? e->value : NULL;
}

static struct entry *insert(struct map *m, const void *key, const void *value)
{
	struct entry *e = calloc(1, sizeof(*e));

	e->key = malloc(m->key_size);
	e->value = calloc(1, m->value_size);
	memcpy(e->key, key, m->key_size);
	if (value)
		memcpy(e->value, value, m->value_size);
	e->next = m->entries;
	m->entries = e;
	return e;
}

long bpf_map_update_elem(void *def, const void *key, const void *value, __u64 flags)
{
	struct map *m = map_of(def);
	struct entry *e, **l;
	__u32 index;

	if (is_array(m)) {
		memcpy(&index, key, sizeof(index));
		if (index >= m->max_entries)
			return -E2BIG;
		if (flags == BPF_NOEXIST)
			return -EEXIST;
		memcpy(m->array + (size_t)index * m->value_size, value, m->value_size);
		return 0;
	}
	e = find(m, key, NULL);
	if (e && flags == BPF_NOEXIST)
		return -EEXIST;
	if (!e && flags == BPF_EXIST)
		return -ENOENT;
	if (e) {
		memcpy(e->value, value, m->value_size);
		return 0;
	}
	if ((__u32)mw_test_map_count(def) >= m->limit) {
		if (m->type != BPF_MAP_TYPE_LRU_HASH)
			return -E2BIG;
		/* Evict the oldest (the list's last entry). */
		for (l = &m->entries; (*l)->next; l = &(*l)->next)
			;
		e = *l;
		*l = NULL;
		free(e->key);
		free(e->value);
		free(e);
	}
	insert(m, key, value);
	return 0;
}

long bpf_map_delete_elem(void *def, const void *key)
{
	struct map *m = map_of(def);
	struct entry *e, **l;

	if (is_array(m))
		return -EINVAL;
	e = find(m, key, &l);
	if (!e)
		return -ENOENT;
	*l = e->next;
	free(e->key);
	free(e->value);
	free(e);
	return 0;
}

void *mw_test_sk_storage(void *def, const void *sk)
{
	struct entry *e = find(map_of(def), &sk, NULL);

	return e ? e->value : NULL;
}

void *bpf_sk_storage_get(void *def, void *sk, void *value, __u64 flags)
{
	struct map *m = map_of(def);
	void *found;

	if (m->type != BPF_MAP_TYPE_SK_STORAGE || !sk)
		return NULL;
	found = mw_test_sk_storage(def, sk);
	if (found || !(flags & BPF_SK_STORAGE_GET_F_CREATE) || mw_test_no_sk_storage)
		return found;
	return insert(m, &sk, value)->value;
}

long bpf_ringbuf_output(void *def, void *data, __u64 size, __u64 flags)
{
	struct map *m = map_of(def);

	(void)flags;
	if (m->type != BPF_MAP_TYPE_RINGBUF || size != sizeof(struct mw_event)) {
		fprintf(stderr, "harness: %s: a record of %llu bytes\n", m->name,
			(unsigned long long)size);
		abort();
	}
	if (mw_test_nevents == (int)(sizeof(mw_test_events) / sizeof(mw_test_events[0])))
		return -EAGAIN;	/* full, as a ring buffer nobody reads */
	memcpy(&mw_test_events[mw_test_nevents++], data, sizeof(struct mw_event));
	return 0;
}

long bpf_sock_hash_update(struct bpf_sock_ops *skops, void *def, void *key, __u64 flags)
{
	__u64 sk = (__u64)(unsigned long)skops->sk;

	return bpf_map_update_elem(def, key, &sk, flags);
}

/* Recorded; SK_DROP when the key is not in the socket map, as the kernel. */
long bpf_msg_redirect_hash(struct sk_msg_md *msg, void *def, void *key, __u64 flags)
{
	struct map *m = map_of(def);

	(void)msg;
	if (m->type != BPF_MAP_TYPE_SOCKHASH || m->key_size > sizeof(mw_test_redirect_key)) {
		fprintf(stderr, "harness: bpf_msg_redirect_hash on %s\n", m->name);
		abort();
	}
	mw_test_redirect_map = def;
	memcpy(mw_test_redirect_key, key, m->key_size);
	mw_test_redirect_flags = flags;
	return bpf_map_lookup_elem(def, key) ? SK_PASS : SK_DROP;
}

long bpf_sock_ops_cb_flags_set(struct bpf_sock_ops *skops, int argval)
{
	skops->bpf_sock_ops_cb_flags = argval;
	mw_test_cb_flags = argval;
	return 0;
}

struct tcp6_sock *bpf_skc_to_tcp6_sock(void *sk)
{
	(void)sk;
	return mw_test_tcp6_sock;
}

struct mptcp_sock *bpf_skc_to_mptcp_sock(void *sk)
{
	(void)sk;
	return mw_test_mptcp_sock;
}

/* The host's memory is the kernel's here: a plain copy. */
long bpf_probe_read_kernel(void *dst, __u32 size, const void *unsafe_ptr)
{
	memcpy(dst, unsafe_ptr, size);
	return 0;
}

struct tcp_sock *bpf_skc_to_tcp_sock(void *sk)
{
	(void)sk;
	return mw_test_tcp_sock;
}

long bpf_setsockopt(void *ctx, int level, int optname, void *optval, int optlen)
{
	(void)ctx;
	if (optlen != sizeof(int)) {
		fprintf(stderr, "harness: bpf_setsockopt with a %d-byte value\n", optlen);
		abort();
	}
	mw_test_setsockopt_level = level;
	mw_test_setsockopt_name = optname;
	memcpy(&mw_test_setsockopt_value, optval, sizeof(int));
	return mw_test_setsockopt_error;
}

__u64 bpf_get_socket_cookie(void *ctx)
{
	(void)ctx;
	return mw_test_socket_cookie;
}

long bpf_bind(struct bpf_sock_addr *ctx, struct sockaddr *addr, int addr_len)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
	static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };

	(void)ctx;
	if (addr_len == sizeof(*sin) && sin->sin_family == AF_INET && !sin->sin_port) {
		mw_test_bind_ip4 = sin->sin_addr.s_addr;
		mw_test_bind_mapped = 0;
		return 0;
	}
	if (addr_len == sizeof(*sin6) && sin6->sin6_family == AF_INET6 && !sin6->sin6_port &&
	    !memcmp(sin6->sin6_addr.s6_addr, mapped, sizeof(mapped))) {
		memcpy(&mw_test_bind_ip4, &sin6->sin6_addr.s6_addr[12], 4);
		mw_test_bind_mapped = 1;
		return 0;
	}
	fprintf(stderr, "harness: bpf_bind expects an IPv4 or v4-mapped address with port 0\n");
	abort();
}

__u64 bpf_get_netns_cookie(void *ctx)
{
	(void)ctx;
	return mw_test_task.netns_cookie;
}

__u64 bpf_get_current_uid_gid(void)
{
	return (__u64)mw_test_task.uid << 32 | mw_test_task.uid;
}

__u64 bpf_get_current_pid_tgid(void)
{
	return (__u64)mw_test_task.pid << 32 | mw_test_task.pid;
}

__u64 mw_test_ktime_ns = 1;

__u64 bpf_ktime_get_ns(void)
{
	return mw_test_ktime_ns;
}

int mw_test_spin_locks;

long bpf_spin_lock(struct bpf_spin_lock *lock)
{
	(void)lock;
	mw_test_spin_locks++;
	return 0;
}

long bpf_spin_unlock(struct bpf_spin_lock *lock)
{
	(void)lock;
	return 0;
}

long mw_test_printk(const char *fmt, ...)
{
	(void)fmt;
	return 0;
}

__u64 mw_test_stat(enum mw_stat stat)
{
	for (int i = 0; i < nmaps; i++) {
		if (strcmp(maps[i].name, "mw_stats") == 0) {
			__u64 n;

			memcpy(&n, maps[i].array + (size_t)stat * maps[i].value_size, sizeof(n));
			return n;
		}
	}
	fprintf(stderr, "harness: mw_stats is not registered\n");
	abort();
}

__u32 mw_test_ip4(const char *text)
{
	struct in_addr a;

	if (inet_pton(AF_INET, text, &a) != 1) {
		fprintf(stderr, "harness: %s is not an IPv4 address\n", text);
		abort();
	}
	return a.s_addr;
}

void mw_test_ip6(const char *text, __u32 out[4])
{
	struct in6_addr a;

	if (inet_pton(AF_INET6, text, &a) != 1) {
		fprintf(stderr, "harness: %s is not an IPv6 address\n", text);
		abort();
	}
	memcpy(out, &a, 16);
}

void mw_test_begin(struct mw_test_run *run, const char *what)
{
	run->cases++;
	run->current = what;
	run->current_failed = 0;
}

void mw_test_fail(struct mw_test_run *run, const char *fmt, ...)
{
	va_list ap;

	if (!run->current_failed) {
		run->failed++;
		printf("FAIL %s: %s\n", run->suite, run->current);
	}
	run->current_failed = 1;
	printf("    ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

void mw_test_end(struct mw_test_run *run)
{
	if (!run->current_failed)
		printf("ok   %s: %s\n", run->suite, run->current);
}

void mw_test_expect_stats(struct mw_test_run *run, __u32 mask)
{
	for (int s = 0; s < MW_STAT_MAX; s++) {
		char what[48];

		snprintf(what, sizeof(what), "counter %d of enum mw_stat", s);
		MW_EXPECT_EQ(run, mw_test_stat(s), !!(mask & MW_STAT_BIT(s)), what);
	}
}

int mw_test_summary(const struct mw_test_run *run)
{
	printf("%s: %d cases, %d failed\n", run->suite, run->cases, run->failed);
	if (run->cases == 0) {
		printf("%s: no cases ran\n", run->suite);
		return 1;
	}
	return run->failed ? 1 : 0;
}

const struct mw_event *mw_test_expect_sockops_end(struct mw_test_run *run, int want_cb, __u32 stats,
						  enum mw_decision decision)
{
	MW_EXPECT_EQ(run, mw_test_cb_flags, want_cb == 1 ? BPF_SOCK_OPS_STATE_CB_FLAG : want_cb,
		     "callback flags asked for");
	mw_test_expect_stats(run, stats);
	MW_EXPECT_EQ(run, mw_test_nevents, decision ? 1 : 0, "trace events");
	if (!decision || mw_test_nevents != 1)
		return NULL;
	MW_EXPECT_EQ(run, mw_test_events[0].hook, MW_HOOK_SOCKOPS, "event hook");
	MW_EXPECT_EQ(run, mw_test_events[0].decision, decision, "event decision");
	return &mw_test_events[0];
}
