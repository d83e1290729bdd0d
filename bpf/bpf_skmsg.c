// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_msg: hand each message of an accelerated socket straight to its peer's
 * receive queue, skipping the TCP/IP stack (both ends are on this node).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/meshwire_config.h"
#include "lib/meshwire_policy.h"

char _license[] SEC("license") = "Dual BSD/GPL";

SEC("sk_msg")
int mw_skmsg_redirect(struct sk_msg_md *msg)
{
	struct mw_sock_key peer;

	if (msg->family != MW_AF_INET)
		return SK_PASS;

	/* The peer's key is ours seen from the other end. */
	peer.local_ip4 = msg->remote_ip4;
	peer.remote_ip4 = msg->local_ip4;
	peer.local_port = bpf_ntohl(msg->remote_port);
	peer.remote_port = msg->local_port;
	peer.netns_cookie = mw_is_loopback4(peer.local_ip4) ?
			    bpf_get_netns_cookie(msg) : 0;

	/*
	 * When the peer is not in the map the helper records no redirect and
	 * SK_PASS sends the message the normal way.
	 */
	bpf_msg_redirect_hash(msg, &mw_sock_hash, &peer, BPF_F_INGRESS);
	return SK_PASS;
}
