/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Stands in for libbpf's <bpf/bpf_helpers.h> when a datapath source is
 * compiled for the host (bpf/tests): the same map-definition macros, and the
 * helpers as ordinary functions that harness.c implements over in-memory
 * maps and a scripted caller. It is first on the tests' include path, so
 * the programs' `#include <bpf/bpf_helpers.h>` finds it; <bpf/bpf_endian.h>
 * and <linux/bpf.h> are the real ones.
 */
#ifndef MW_TEST_BPF_HELPERS_H
#define MW_TEST_BPF_HELPERS_H

#include <stddef.h>	/* NULL, which libbpf's helper definitions bring */
#include <linux/bpf.h>

/* As libbpf's: a map's definition is encoded in its members' types. */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __array(name, val) typeof(val) *name[]

/* Sections mean nothing on the host: programs are plain functions. */
#define SEC(name)
/* As libbpf: not linux/stddef.h's definition. */
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))

enum libbpf_pin_type {
	LIBBPF_PIN_NONE,
	LIBBPF_PIN_BY_NAME,
};

struct mptcp_sock;
struct tcp_sock;
struct tcp6_sock;

void *bpf_map_lookup_elem(void *map, const void *key);
long bpf_map_update_elem(void *map, const void *key, const void *value, __u64 flags);
long bpf_map_delete_elem(void *map, const void *key);
void *bpf_sk_storage_get(void *map, void *sk, void *value, __u64 flags);
long bpf_ringbuf_output(void *ringbuf, void *data, __u64 size, __u64 flags);
long bpf_sock_hash_update(struct bpf_sock_ops *skops, void *map, void *key, __u64 flags);
long bpf_msg_redirect_hash(struct sk_msg_md *msg, void *map, void *key, __u64 flags);
long bpf_sock_ops_cb_flags_set(struct bpf_sock_ops *skops, int argval);
__u64 bpf_get_netns_cookie(void *ctx);
__u64 bpf_get_socket_cookie(void *ctx);
struct sockaddr;
long bpf_bind(struct bpf_sock_addr *ctx, struct sockaddr *addr, int addr_len);
__u64 bpf_get_current_uid_gid(void);
__u64 bpf_get_current_pid_tgid(void);
__u64 bpf_ktime_get_ns(void);
struct mptcp_sock *bpf_skc_to_mptcp_sock(void *sk);
struct tcp_sock *bpf_skc_to_tcp_sock(void *sk);
struct tcp6_sock *bpf_skc_to_tcp6_sock(void *sk);
long bpf_setsockopt(void *ctx, int level, int optname, void *optval, int optlen);
long bpf_spin_lock(struct bpf_spin_lock *lock);
long bpf_spin_unlock(struct bpf_spin_lock *lock);
long bpf_probe_read_kernel(void *dst, __u32 size, const void *unsafe_ptr);
long mw_test_printk(const char *fmt, ...);

#define bpf_printk(fmt, ...) mw_test_printk(fmt, ##__VA_ARGS__)

#endif /* MW_TEST_BPF_HELPERS_H */
