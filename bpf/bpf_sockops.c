// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockops: carry a redirected connection's original destination from the
 * application's socket to the sidecar's accepted socket.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/meshwire_config.h"
#include "lib/meshwire_maps.h"

char _license[] SEC("license") = "Dual BSD/GPL";

/* The connection seen from its client (the application) side. */
static __always_inline void mw_tuple4_from_client(struct bpf_sock_ops *skops,
						  struct mw_tuple4 *key)
{
	key->netns_cookie = bpf_get_netns_cookie(skops);
	key->client_ip4 = skops->local_ip4;
	key->client_port = (__u16)skops->local_port;
	key->server_ip4 = skops->remote_ip4;
	key->server_port = (__u16)bpf_ntohl(skops->remote_port);
	key->pad = 0;
}

/* The same connection seen from the sidecar's accepted socket. */
static __always_inline void mw_tuple4_from_server(struct bpf_sock_ops *skops,
						  struct mw_tuple4 *key)
{
	key->netns_cookie = bpf_get_netns_cookie(skops);
	key->client_ip4 = skops->remote_ip4;
	key->client_port = (__u16)bpf_ntohl(skops->remote_port);
	key->server_ip4 = skops->local_ip4;
	key->server_port = (__u16)skops->local_port;
	key->pad = 0;
}

/* The app's connect() to the sidecar is established: publish its origin. */
static __always_inline void mw_sockops_publish(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct mw_orig4 *orig, val;
	struct mw_tuple4 key;

	if (!sk)
		return;
	orig = bpf_sk_storage_get(&mw_orig_sk, sk, NULL, 0);
	if (!orig || !(orig->flags & MW_ORIG_F_CONNECT))
		return;

	val = *orig;
	mw_tuple4_from_client(skops, &key);
	if (bpf_map_update_elem(&mw_orig_tuple4, &key, &val, BPF_ANY)) {
		mw_count(MW_STAT_SOCKOPS_ERROR);
		return;
	}
	bpf_sk_storage_delete(&mw_orig_sk, sk);
	/* Ask for the close callback, so an entry never accepted is removed. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
					 BPF_SOCK_OPS_STATE_CB_FLAG);
	mw_count(MW_STAT_SOCKOPS_TUPLE_ADDED);
	mw_trace("sockops published %pI4:%d", &val.ip4, bpf_ntohs(val.port));
}

/* The sidecar accepted it: bind the origin to the accepted socket. */
static __always_inline void mw_sockops_bind_accepted(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct mw_orig4 *orig, *stored;
	struct mw_tuple4 key;

	if (!sk || skops->local_port != mw_cfg.outbound_port)
		return;

	mw_tuple4_from_server(skops, &key);
	orig = bpf_map_lookup_elem(&mw_orig_tuple4, &key);
	if (!orig)
		return;

	stored = bpf_sk_storage_get(&mw_orig_sk, sk, NULL,
				    BPF_SK_STORAGE_GET_F_CREATE);
	if (!stored) {
		mw_count(MW_STAT_SOCKOPS_ERROR);
		return;
	}
	stored->ip4 = orig->ip4;
	stored->port = orig->port;
	stored->flags = MW_ORIG_F_ACCEPTED;
	bpf_map_delete_elem(&mw_orig_tuple4, &key);
	mw_count(MW_STAT_SOCKOPS_ACCEPT_BOUND);
}

/* The app's socket closed; drop an entry the sidecar never took. */
static __always_inline void mw_sockops_forget(struct bpf_sock_ops *skops)
{
	struct mw_tuple4 key;

	mw_tuple4_from_client(skops, &key);
	if (bpf_map_delete_elem(&mw_orig_tuple4, &key) == 0)
		mw_count(MW_STAT_SOCKOPS_CLOSED);
}

SEC("sockops")
int mw_sockops(struct bpf_sock_ops *skops)
{
	if (skops->family != MW_AF_INET)
		return 1;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		mw_sockops_publish(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		mw_sockops_bind_accepted(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			mw_sockops_forget(skops);
		break;
	}
	return 1;
}
