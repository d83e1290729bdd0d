// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_msg: hand each message of an accelerated socket straight to its peer's
 * receive queue, skipping the TCP/IP stack (both ends are on this node).
 * Runs for every sendmsg/sendfile/splice on a socket in mw_sock_hash; see
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

SEC("sk_msg")
int mw_skmsg_redirect(struct sk_msg_md *msg)
{
	struct mw_accel_state *own, *peer_state;
	struct mw_sock_key key, peer;
	int redirect = 0;

	if (msg->family != MW_AF_INET)
		return SK_PASS;

	/*
	 * Our own key, as sockops computed it: ports in host order
	 * (remote_port is network order in the upper 16 bits on little
	 * endian, as in bpf_sock_ops), the netns cookie only over loopback.
	 */
	key.local_ip4 = msg->local_ip4;
	key.remote_ip4 = msg->remote_ip4;
	key.local_port = msg->local_port;
	key.remote_port = bpf_ntohl(msg->remote_port);
	key.netns_cookie = mw_is_loopback4(key.remote_ip4) ?
			   bpf_get_netns_cookie(msg) : 0;

	own = bpf_map_lookup_elem(&mw_accel_state, &key);
	if (!own || (own->flags & MW_ACCEL_TCP_TX))
		return SK_PASS;

	/* The peer's key is ours seen from the other end. */
	peer.local_ip4 = key.remote_ip4;
	peer.remote_ip4 = key.local_ip4;
	peer.local_port = key.remote_port;
	peer.remote_port = key.local_port;
	peer.netns_cookie = key.netns_cookie;

	peer_state = bpf_map_lookup_elem(&mw_accel_state, &peer);
	if (!peer_state)
		return mw_skmsg_pass(own);
	bpf_spin_lock(&peer_state->lock);
	if (!(peer_state->flags & MW_ACCEL_CLOSING)) {
		peer_state->flags |= MW_ACCEL_RX;
		redirect = 1;
	}
	bpf_spin_unlock(&peer_state->lock);

	if (redirect &&
	    bpf_msg_redirect_hash(msg, &mw_sock_hash, &peer, BPF_F_INGRESS) == SK_PASS)
		return SK_PASS;
	/* No redirect recorded: SK_PASS sends the message the normal way. */
	return mw_skmsg_pass(own);
}
