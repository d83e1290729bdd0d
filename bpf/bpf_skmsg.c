// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_msg: hand each message of an accelerated socket straight to its peer's
 * receive queue, skipping the TCP/IP stack (both ends are on this node).
 * Runs for every sendmsg/sendfile/splice on a socket in mw_sock_hash (IPv4
 * connections, v4-mapped ones included) or mw_sock_hash6 (native IPv6); see
 * lib/meshwire_accel.h for when a message goes through TCP instead, and why.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/meshwire_config.h"
#include "lib/meshwire_policy.h"
#include "lib/meshwire_accel.h"

char _license[] SEC("license") = "Dual BSD/GPL";

/* Through TCP from now on (see MW_ACCEL_TCP_TX). */
static __always_inline int mw_skmsg_pass(struct mw_accel_state *own)
{
	bpf_spin_lock(&own->lock);
	own->flags |= MW_ACCEL_TCP_TX;
	bpf_spin_unlock(&own->lock);
	return SK_PASS;
}

/*
 * A message of an accelerated socket, in its family's maps (is6: native
 * IPv6; otherwise IPv4, v4-mapped sockets included).
 */
static __always_inline int mw_skmsg_verdict(struct sk_msg_md *msg, const int is6)
{
	struct mw_accel_state *own, *peer_state;
	union mw_accel_key key, peer;
	int redirect = 0;

	/* Our own key, as sockops computed it, and our peer's. */
	mw_accel_keys(msg, is6, &key, &peer);

	own = bpf_map_lookup_elem(mw_accel_state_map(is6), &key);
	if (!own || (own->flags & MW_ACCEL_TCP_TX))
		return SK_PASS;

	peer_state = bpf_map_lookup_elem(mw_accel_state_map(is6), &peer);
	if (!peer_state)
		return mw_skmsg_pass(own);
	/*
	 * The lock decides the peer's first redirect against its FIN. Once it
	 * has MW_ACCEL_RX (never cleared) its sockops keeps it in the map, so
	 * the later messages read the flags without the lock: a CLOSING set
	 * meanwhile is the race the lock leaves open too (it is released
	 * before the redirect).
	 */
	if ((*(volatile __u32 *)&peer_state->flags & (MW_ACCEL_RX | MW_ACCEL_CLOSING)) == MW_ACCEL_RX) {
		redirect = 1;
	} else {
		bpf_spin_lock(&peer_state->lock);
		if (!(peer_state->flags & MW_ACCEL_CLOSING)) {
			peer_state->flags |= MW_ACCEL_RX;
			redirect = 1;
		}
		bpf_spin_unlock(&peer_state->lock);
	}

	if (redirect &&
	    bpf_msg_redirect_hash(msg, mw_accel_sock_map(is6), &peer, BPF_F_INGRESS) == SK_PASS)
		return SK_PASS;
	/* No redirect recorded: SK_PASS sends the message the normal way. */
	return mw_skmsg_pass(own);
}

SEC("sk_msg")
int mw_skmsg_redirect(struct sk_msg_md *msg)
{
	if (mw_conn_is_ip4(msg))
		return mw_skmsg_verdict(msg, 0);
	if (msg->family == MW_AF_INET6)
		return mw_skmsg_verdict(msg, 1);
	return SK_PASS;
}
