/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Host test harness for the socket hooks (bpf/tests/README.md). The real
 * program source is compiled into each test with include/bpf/bpf_helpers.h;
 * harness.c implements the helpers: maps in memory with the kernel's
 * semantics for the types the datapath uses, socket storage per struct
 * bpf_sock, and a scripted caller (netns cookie, uid).
 */
#ifndef MW_TEST_HARNESS_H
#define MW_TEST_HARNESS_H

#include <stddef.h>
#include <linux/types.h>

#include "../lib/meshwire_structs.h"

/* Who calls the hook: what bpf_get_netns_cookie / _uid_gid / _pid_tgid say. */
struct mw_test_task {
	__u64 netns_cookie;
	__u32 uid;
	__u32 pid;
};
extern struct mw_test_task mw_test_task;

/* bpf_sk_storage_get(..., F_CREATE) fails, as when the kernel has no memory. */
/* bpf_spin_lock calls since the test last set it to 0. */
extern int mw_test_spin_locks;
extern int mw_test_no_sk_storage;
/* The socket's MPTCP socket, for bpf_skc_to_mptcp_sock (NULL: plain TCP). */
extern void *mw_test_mptcp_sock;
/* The socket as bpf_skc_to_tcp_sock sees it (a struct sock___mw: its owner). */
extern void *mw_test_tcp_sock;
/* What bpf_ktime_get_ns() answers (1 unless a test sets it). */
extern __u64 mw_test_ktime_ns;
/* The socket as a tcp6_sock, for bpf_skc_to_tcp6_sock (NULL: not TCPv6). */
extern void *mw_test_tcp6_sock;
/* bpf_setsockopt's last call (level, optname, the int it set) and its answer. */
extern int mw_test_setsockopt_level, mw_test_setsockopt_name, mw_test_setsockopt_value;
extern int mw_test_setsockopt_error;
/* What bpf_get_socket_cookie answers. */
extern __u64 mw_test_socket_cookie;
/* bpf_bind's last address (IPv4, or an IPv6 one's last word: network order;
 * 0: no call) and whether it was a v4-mapped IPv6 address. */
extern __u32 mw_test_bind_ip4;
extern int mw_test_bind_mapped;
/* The flags the program last gave bpf_sock_ops_cb_flags_set (0: no call). */
extern int mw_test_cb_flags;
/* bpf_msg_redirect_hash's last call: the map (NULL: no call), key and flags. */
extern void *mw_test_redirect_map;
extern unsigned char mw_test_redirect_key[64];
extern __u64 mw_test_redirect_flags;
/* The trace ring buffer's records (struct mw_event), in order. */
extern struct mw_event mw_test_events[16];
extern int mw_test_nevents;

/*
 * A map of the program under test, with the definition libbpf would read
 * (its members' types encode type, capacity, key and value). Every map the
 * program touches must be registered (datapath.h), or the test aborts
 * naming it.
 */
void mw_test_map_register(void *map, const char *name, __u32 type, __u32 max_entries,
			  size_t key_size, size_t value_size);
#define MW_TEST_MAP(m)							\
	mw_test_map_register(&m, #m, sizeof(*m.type) / sizeof(int),	\
			     sizeof(*m.max_entries) / sizeof(int),	\
			     sizeof(*m.key), sizeof(*m.value))
/* Socket storage maps have no capacity; a ring buffer no key or value. */
#define MW_TEST_SK_STORAGE(m)						\
	mw_test_map_register(&m, #m, sizeof(*m.type) / sizeof(int), 0,	\
			     sizeof(*m.key), sizeof(*m.value))
#define MW_TEST_RINGBUF(m)						\
	mw_test_map_register(&m, #m, sizeof(*m.type) / sizeof(int),	\
			     sizeof(*m.max_entries) / sizeof(int), 0, 0)

/*
 * The map holds at most max_entries until the next reset (a case that needs
 * a full map fills a few entries rather than the real capacity).
 */
void mw_test_map_limit(void *map, __u32 max_entries);
/* Empty every map, socket storage, the event log and the caller. */
void mw_test_reset(void);
/* Entries in a map. */
int mw_test_map_count(void *map);
/* A counter of mw_stats. */
__u64 mw_test_stat(enum mw_stat stat);
/* The socket storage of `sk` in `map`, or NULL. */
void *mw_test_sk_storage(void *map, const void *sk);

/* "10.1.0.2" -> network order; "::ffff:10.0.0.5" -> four network-order words. */
__u32 mw_test_ip4(const char *text);
void mw_test_ip6(const char *text, __u32 out[4]);

/* One verdict per case: counts, and prints what differs. */
struct mw_test_run {
	const char *suite;
	int cases;
	int failed;
	const char *current;	/* the case being run */
	int current_failed;
};
void mw_test_begin(struct mw_test_run *run, const char *what);
void mw_test_end(struct mw_test_run *run);
void mw_test_fail(struct mw_test_run *run, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define MW_EXPECT_EQ(run, got, want, what)					\
	do {									\
		long long g_ = (long long)(got);				\
		long long w_ = (long long)(want);				\
		if (g_ != w_)							\
			mw_test_fail(run, "%s: got %lld (%#llx), want %lld (%#llx)", \
				     what, g_, (unsigned long long)g_, w_,	\
				     (unsigned long long)w_);			\
	} while (0)
/* The counters whose bit is set in `mask` are 1, every other one is 0. */
#define MW_STAT_BIT(s)	(1U << (s))
void mw_test_expect_stats(struct mw_test_run *run, __u32 mask);
/* The checks a sockops case ends with, either family: the callback flags
 * last asked for (`want_cb`: 0 none asked, 1 the state callback alone, else
 * the flags, e.g. CB_ACCEL), the counters in `stats`, and one trace event with
 * hook sockops and `decision` when there is a decision (none otherwise).
 * Returns that event for the family's address checks, NULL when none. */
const struct mw_event *mw_test_expect_sockops_end(struct mw_test_run *run, int want_cb, __u32 stats,
						  enum mw_decision decision);
/* Prints the totals; the process's exit status. */
int mw_test_summary(const struct mw_test_run *run);

#endif /* MW_TEST_HARNESS_H */
